-- An ACH trace number is our bank's 8 digits and 7 from ach_trace_seq, which starts over after
-- 9,999,999. Until now the column was UNIQUE, so the 10,000,000th ACH entry of the database's
-- life failed to insert, and every one after it: no more add-funds, cash-outs or micro-deposits.
-- A bank names an entry by its trace number only in the returns that can still come (within
-- 60 days of settlement, for an unauthorised debit), so a number only needs to be unique among
-- the entries not yet sent and those sent recently. next_ach_trace hands out the sequence's next
-- number that no such entry holds (one sent longer than `held` ago keeps it in its row), and a
-- returns file names the holder sent last (funding.files.import_returns).
ALTER TABLE funding_transfers DROP CONSTRAINT funding_transfers_trace_number_key;
CREATE INDEX funding_transfers_trace ON funding_transfers (trace_number)
    WHERE trace_number IS NOT NULL;

CREATE FUNCTION next_ach_trace(odfi text, held interval) RETURNS char(15)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    candidate char(15);
BEGIN
    -- Two callers never get the same number from the sequence, so no lock is needed: a number
    -- is held only by an entry from a cycle before, committed long since.
    FOR attempt IN 1..1000 LOOP
        candidate := left(odfi, 8) || lpad(nextval('ach_trace_seq')::text, 7, '0');
        IF NOT EXISTS (SELECT 1 FROM funding_transfers
                        WHERE trace_number = candidate
                          AND (exported_at IS NULL OR exported_at > now() - held)) THEN
            RETURN candidate;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'no free ACH trace number: 1,000 in a row are held by entries unsent or sent within %',
        held;
END
$$;
