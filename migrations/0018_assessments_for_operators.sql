-- Operators see every decision (issue 24): each assessment keeps the model version that scored
-- it and, for a verdict that held or declined the movement, the features that pushed its score
-- most (risk.model.Scorer.top_features). Rows written before this migration, unscored ones
-- (risk_timeout) and those scored with the model off have neither. Both columns are nullable
-- without a default: adding them rewrites nothing.
ALTER TABLE risk_assessments
    ADD COLUMN model_version text,
    -- [{"name": ..., "value": ..., "contribution": ...}, ...], at most 5, largest first.
    ADD COLUMN top_features  jsonb;

-- The operators' listing (risk.listing) reads newest first, by (created_at, id), with the
-- cursor a position in that order, and no more rows than a page whatever the filters:
-- - everyone's newest page and a time range: by time;
-- - one user's: the user index gains id, so ties in time are ordered in the index too (the
--   past query, which reads it by user and time, reads it as before);
-- - the rare verdicts (step_up, review, decline) of everyone: a partial index of those alone,
--   so that a page of declines does not read the allowed movements between them.
CREATE INDEX risk_assessments_by_time ON risk_assessments (created_at, id);
CREATE INDEX risk_assessments_user_by_time ON risk_assessments (user_id, created_at, id);
DROP INDEX risk_assessments_user;
CREATE INDEX risk_assessments_held_by_time ON risk_assessments (created_at, id)
    WHERE action <> 'allow';

-- The users the risk engine froze wait in the operators' review queue (risk.lockout): the
-- queue starts from the users frozen now, a few, never from all users.
CREATE INDEX users_frozen ON users (id) WHERE status = 'frozen';
