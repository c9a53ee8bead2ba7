-- The pair lookups of the risk engine's past query (risk.serving.PAST) read a sender's and a
-- recipient's payments to each other: how many times the sender paid the recipient (counted
-- up to a cap) and the recipient's last payment to the sender. With the pair index on
-- (counterparty_id, user_id) alone, "the last payment" read every payment of the pair and
-- sorted them, on every movement between two people who pay each other often (rent, payroll,
-- a daily coffee). Ordered by time within the pair, it is the first entry of a backward scan.
CREATE INDEX risk_assessments_pair_at ON risk_assessments (counterparty_id, user_id, created_at)
    WHERE counterparty_id IS NOT NULL;
DROP INDEX risk_assessments_pair;
