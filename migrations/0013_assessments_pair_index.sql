-- The risk engine reads a user's past through one statement that serves many movements
-- (risk.serving.PAST_MANY), planned once per connection: a generic plan, made without the
-- values it will run with, perhaps before the table holds a row. The old pair index,
-- (user_id, counterparty_id), let such a plan answer "what did this person receive" by walking
-- all of that index, since counterparty_id was its second column. Keyed by the recipient first,
-- every index on the table now leads with the person a lookup names, so any plan of any lookup
-- is a range scan of that person's rows. Pair lookups (has the sender paid this recipient
-- before, and been paid by them) read it by both.
DROP INDEX risk_assessments_payee;
CREATE INDEX risk_assessments_pair ON risk_assessments (counterparty_id, user_id)
    WHERE counterparty_id IS NOT NULL;
