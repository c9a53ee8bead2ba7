-- Payouts (merchants/payouts.py over funding's cash-out rail): a merchant's money sent to a
-- verified bank account of its owner's, as an ACH credit. A payout is a funding movement of
-- purpose 'payout', made for its owner (user_id) as a cash-out is, but held from the merchant
-- account (account_id) rather than the owner's wallet; it settles and is returned as a
-- cash-out is, so a return puts the money back in the account it left. merchant_id is the
-- merchant it is for: funding lists and tells by it and knows nothing else of merchants.
-- The new columns are nullable: adding them rewrites nothing.
ALTER TABLE funding_transfers
    ADD COLUMN account_id   bigint REFERENCES accounts (id),
    ADD COLUMN merchant_id  uuid   REFERENCES merchants (id);

ALTER TABLE funding_transfers
    DROP CONSTRAINT funding_purpose_known,
    ADD CONSTRAINT funding_purpose_known
        CHECK (purpose IN ('add_funds', 'cash_out', 'micro_deposit', 'payout')),
    -- A payout names the account its money left and its merchant; no other movement does.
    ADD CONSTRAINT funding_payout_names_its_merchant CHECK (
        (purpose = 'payout') = (account_id IS NOT NULL)
        AND (purpose = 'payout') = (merchant_id IS NOT NULL)),
    -- Over ACH, its money held before its row is written: the hold's id breaks ties in time.
    ADD CONSTRAINT funding_payout_held CHECK (
        purpose <> 'payout' OR (rail = 'ach' AND hold_id IS NOT NULL));

-- A merchant's payouts, newest first (keyset on the time, then the hold id).
CREATE INDEX funding_transfers_merchant ON funding_transfers (merchant_id, created_at, hold_id)
    WHERE merchant_id IS NOT NULL;

-- The daily payouts (payout_schedule 'daily'): one row per merchant and day, claimed before the
-- payout is tried, so that of every process and every re-run one pays a merchant once a day.
-- A claim unfinished after a while belongs to a run that died; a later run takes it over (the
-- payout's own idempotency key, the merchant and the day, makes that safe).
CREATE TABLE merchant_payout_runs (
    merchant_id  uuid        NOT NULL REFERENCES merchants (id),
    day          date        NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    -- paid: payout_id; below_minimum: nothing to pay; refused: `detail` is the refusal's code.
    outcome      text        CHECK (outcome IN ('paid', 'below_minimum', 'refused')),
    detail       text        CHECK (length(detail) <= 64),
    payout_id    uuid        REFERENCES funding_transfers (id),
    PRIMARY KEY (merchant_id, day),
    CHECK ((finished_at IS NULL) = (outcome IS NULL)),
    CHECK ((outcome = 'paid') = (payout_id IS NOT NULL))
);
