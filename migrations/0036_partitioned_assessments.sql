-- Risk assessments and webhook deliveries (with their attempts) grow with traffic: partitioned
-- by month like the outbox (migration 0034, platform.partitions). A partitioned table's keys
-- include its partition key, so each key takes the time, and each reference carries it:
-- - `risk_assessments` by `created_at`, key `(id, created_at)`; `held_transfers` and
--   `funding_transfers` carry `assessment_at`, the assessment's time, filled in from the
--   assessment by a trigger when the writer does not give it, which also refuses a reference
--   to no assessment (not a foreign key: a month of assessments can then leave once the
--   movements that refer to it are settled).
-- - `webhook_deliveries` by `event_time`, the event's own time, fixed per event (the outbox
--   row's, in every copy the stream delivers): one delivery per (endpoint, event) is the unique
--   key `(endpoint_id, event_id, event_time)`.
-- - `webhook_attempts` by its delivery's `event_time`, so that a delivery and its attempts
--   share a month; they refer to `(delivery_id, event_time)`.

-- Risk assessments.
ALTER TABLE held_transfers DROP CONSTRAINT held_transfers_assessment_id_fkey;
ALTER TABLE funding_transfers DROP CONSTRAINT funding_transfers_assessment_id_fkey;
ALTER TABLE risk_assessments RENAME TO risk_assessments_before_0036;
ALTER SEQUENCE risk_assessments_id_seq OWNED BY NONE;

CREATE TABLE risk_assessments (
    id              bigint      NOT NULL DEFAULT nextval('risk_assessments_id_seq'),
    user_id         uuid        NOT NULL REFERENCES users (id),
    kind            text        NOT NULL,
    ref             text        NOT NULL,
    counterparty_id uuid,
    amount_minor    bigint      NOT NULL,
    score           real        NOT NULL,
    action          text        NOT NULL,
    reasons         text[]      NOT NULL,
    aml             text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    device_id       text,
    country         char(2),
    ip_prefix       text,
    rail            text,
    new_payee       boolean,
    sender_new      boolean,
    declined_later  boolean     NOT NULL DEFAULT false,
    model_version   text,
    top_features    jsonb,
    CONSTRAINT risk_assessments_action_known
        CHECK (action IN ('allow', 'step_up', 'review', 'decline'))
) PARTITION BY RANGE (created_at);

SELECT partition_ensure('risk_assessments', month::date)
  FROM generate_series(
           date_trunc('month', least(now(), (SELECT min(created_at)
                                               FROM risk_assessments_before_0036))),
           date_trunc('month', now()) + interval '2 months', interval '1 month') AS month;
CREATE TABLE risk_assessments_default PARTITION OF risk_assessments DEFAULT;

INSERT INTO risk_assessments
SELECT id, user_id, kind, ref, counterparty_id, amount_minor, score, action, reasons, aml,
       created_at, device_id, country, ip_prefix, rail, new_payee, sender_new, declined_later,
       model_version, top_features
  FROM risk_assessments_before_0036;

ALTER TABLE held_transfers ADD COLUMN assessment_at timestamptz;
UPDATE held_transfers h SET assessment_at = a.created_at
  FROM risk_assessments_before_0036 a WHERE a.id = h.assessment_id;
ALTER TABLE held_transfers ALTER COLUMN assessment_at SET NOT NULL;
ALTER TABLE funding_transfers ADD COLUMN assessment_at timestamptz;
UPDATE funding_transfers f SET assessment_at = a.created_at
  FROM risk_assessments_before_0036 a WHERE a.id = f.assessment_id;

DROP TABLE risk_assessments_before_0036;
ALTER SEQUENCE risk_assessments_id_seq OWNED BY risk_assessments.id;

ALTER TABLE risk_assessments ADD PRIMARY KEY (id, created_at);
-- The indexes of migrations 0013-0029, on every month.
CREATE INDEX risk_assessments_by_time ON risk_assessments (created_at, id);
CREATE INDEX risk_assessments_user_by_time ON risk_assessments (user_id, created_at, id);
CREATE INDEX risk_assessments_held_by_time ON risk_assessments (created_at, id)
    WHERE action <> 'allow';
CREATE INDEX risk_assessments_pair_at ON risk_assessments (counterparty_id, user_id, created_at)
    WHERE counterparty_id IS NOT NULL;
CREATE INDEX risk_assessments_incoming_p2p
    ON risk_assessments (counterparty_id, created_at, id) WHERE kind = 'p2p';
CREATE INDEX risk_assessments_aml ON risk_assessments (created_at) WHERE aml <> '{}';

-- A held movement's assessment, by its key, checked when the movement is written: a trigger, not
-- a foreign key, so that a month of assessments can leave (billfold partitions detach) once the
-- movements that refer to it are settled, while those rows stay. Writers that know only the
-- assessment's id get its time here (one probe of each month's key; held movements are few);
-- an id with no assessment, or a time that is not its assessment's, is refused.
CREATE FUNCTION assessment_at_of_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.assessment_id IS NULL THEN
        IF NEW.assessment_at IS NOT NULL THEN
            RAISE EXCEPTION 'an assessment time without its id'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.assessment_at IS NULL THEN
        NEW.assessment_at := (SELECT created_at FROM risk_assessments
                               WHERE id = NEW.assessment_id);
    ELSIF NOT EXISTS (SELECT 1 FROM risk_assessments
                       WHERE id = NEW.assessment_id AND created_at = NEW.assessment_at) THEN
        NEW.assessment_at := NULL;
    END IF;
    IF NEW.assessment_at IS NULL THEN
        RAISE EXCEPTION 'assessment % does not exist', NEW.assessment_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER held_transfer_assessment_at BEFORE INSERT OR UPDATE OF assessment_id, assessment_at
    ON held_transfers FOR EACH ROW EXECUTE FUNCTION assessment_at_of_id();
CREATE TRIGGER funding_transfer_assessment_at
    BEFORE INSERT OR UPDATE OF assessment_id, assessment_at
    ON funding_transfers FOR EACH ROW EXECUTE FUNCTION assessment_at_of_id();

-- Migration 0012's mark, by the assessment's key: one month read.
CREATE OR REPLACE FUNCTION risk_assessment_declined_later() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE risk_assessments SET declined_later = true
     WHERE id = NEW.assessment_id AND created_at = NEW.assessment_at;
    RETURN NEW;
END;
$$;

-- Webhook deliveries and their attempts.
ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_before_0036;
ALTER TABLE webhook_attempts RENAME TO webhook_attempts_before_0036;
ALTER SEQUENCE webhook_deliveries_id_seq OWNED BY NONE;
ALTER SEQUENCE webhook_attempts_id_seq OWNED BY NONE;

CREATE TABLE webhook_deliveries (
    id              bigint      NOT NULL DEFAULT nextval('webhook_deliveries_id_seq'),
    endpoint_id     uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    retry_from      timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    -- The event's time (its `time`): the partition key, fixed per event.
    event_time      timestamptz NOT NULL,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
) PARTITION BY RANGE (event_time);

CREATE TABLE webhook_attempts (
    id           bigint      NOT NULL DEFAULT nextval('webhook_attempts_id_seq'),
    delivery_id  bigint      NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer     CHECK (status_code BETWEEN 100 AND 999),
    error        text        CHECK (length(error) <= 200),
    duration_ms  integer     NOT NULL CHECK (duration_ms >= 0),
    -- Its delivery's event_time: the partition key, and half the reference to the delivery.
    event_time   timestamptz NOT NULL,
    CHECK ((status_code IS NULL) <> (error IS NULL))
) PARTITION BY RANGE (event_time);

CREATE TEMP TABLE webhook_times ON COMMIT DROP AS
SELECT id, coalesce(CASE WHEN body::jsonb->>'time' IS NOT NULL
                         THEN (body::jsonb->>'time')::timestamptz END, created_at) AS event_time
  FROM webhook_deliveries_before_0036;

SELECT partition_ensure(parent, month::date)
  FROM unnest(ARRAY['webhook_deliveries', 'webhook_attempts']::regclass[]) AS parent,
       generate_series(
           date_trunc('month', least(now(), (SELECT min(event_time) FROM webhook_times))),
           date_trunc('month', now()) + interval '2 months', interval '1 month') AS month;
CREATE TABLE webhook_deliveries_default PARTITION OF webhook_deliveries DEFAULT;
CREATE TABLE webhook_attempts_default PARTITION OF webhook_attempts DEFAULT;

INSERT INTO webhook_deliveries
SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.body, d.status, d.attempts,
       d.next_attempt_at, d.retry_from, d.created_at, d.delivered_at, t.event_time
  FROM webhook_deliveries_before_0036 d JOIN webhook_times t USING (id);
INSERT INTO webhook_attempts
SELECT a.id, a.delivery_id, a.attempted_at, a.status_code, a.error, a.duration_ms, t.event_time
  FROM webhook_attempts_before_0036 a JOIN webhook_times t ON t.id = a.delivery_id;
DROP TABLE webhook_attempts_before_0036;
DROP TABLE webhook_deliveries_before_0036;
ALTER SEQUENCE webhook_deliveries_id_seq OWNED BY webhook_deliveries.id;
ALTER SEQUENCE webhook_attempts_id_seq OWNED BY webhook_attempts.id;

ALTER TABLE webhook_deliveries ADD PRIMARY KEY (id, event_time);
-- One delivery per (endpoint, event): the event's time is the event's, so the key with it is
-- the key without it (fan-out's ON CONFLICT names it).
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_endpoint_event_key
    UNIQUE (endpoint_id, event_id, event_time);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);

ALTER TABLE webhook_attempts ADD PRIMARY KEY (id, event_time);
ALTER TABLE webhook_attempts ADD CONSTRAINT webhook_attempts_delivery_fkey
    FOREIGN KEY (delivery_id, event_time) REFERENCES webhook_deliveries (id, event_time)
    ON DELETE CASCADE;
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
