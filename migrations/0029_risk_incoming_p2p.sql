-- What a person received, read by the risk engine's past query (risk.serving.PAST: the user's 7
-- days, the recipient's day, the last one) is P2P transfers only, and every such read says
-- kind = 'p2p'. The incoming index of migration 0019 held every movement with a counterparty,
-- merchant payments too (their counterparty is the merchant's owner): a payment to a merchant
-- paid thousands of times a day read all of that day's payments to it, one heap row each, only
-- to find no P2P transfer among them, and each payment read more than the one before (46 ms
-- a past query at 50,000 payments; `billfold bench merchant`, docs/benchmarks.md). Holding P2P
-- transfers only, the index gives each read its rows and nothing else.
CREATE INDEX risk_assessments_incoming_p2p
    ON risk_assessments (counterparty_id, created_at, id) WHERE kind = 'p2p';
DROP INDEX risk_assessments_incoming_by_time;
