-- What a person received, read newest first to the window's bound (risk.serving.PAST: the
-- user's 7 days, the recipient's day), was ordered by (created_at, id), which the incoming
-- index (counterparty_id, created_at) could not give in full. A generic plan made on a young
-- table (a new deployment, every benchmark's scratch database) then walked the operators'
-- index on (created_at, id) of migration 0018 backwards and kept the rows of this person:
-- every row of the last 7 days, for every movement, ever more as the table grows. With id in
-- the incoming index too, the person's own range gives the order, and any plan reads it.
CREATE INDEX risk_assessments_incoming_by_time
    ON risk_assessments (counterparty_id, created_at, id) WHERE counterparty_id IS NOT NULL;
DROP INDEX risk_assessments_incoming;

