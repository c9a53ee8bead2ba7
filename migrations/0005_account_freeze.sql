-- A frozen account can't be debited by a transfer or a hold: the ledger refuses, whatever path
-- the money takes (P2P today; cash-out and merchant payments later). Posting or voiding an
-- existing hold and reversals still run, so that held money can be released and operators can
-- correct. Credits still arrive.
--
-- A user's status drives their wallets' flag, in the same transaction, so the two can't
-- disagree whichever code (or operator, by hand) changes the status.

ALTER TABLE accounts ADD COLUMN frozen boolean NOT NULL DEFAULT false;

CREATE FUNCTION billfold_user_status_to_wallets() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a
       SET frozen = (NEW.status = 'frozen')
      FROM wallets w
     WHERE w.user_id = NEW.id AND a.id = w.account_id AND a.frozen <> (NEW.status = 'frozen');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_status_to_wallets
    AFTER UPDATE OF status ON users
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION billfold_user_status_to_wallets();
