-- Webhooks to apps (webhooks/): the endpoints a person registers, the deliveries of the events
-- that concern them, and each attempt at one. The signing secret is sealed like a bank account
-- number (platform.crypto: AES-GCM, a data key per value wrapped by the key named by key_id,
-- both bound to the row and column); after a rotation the previous secret also signs until
-- previous_expires_at, so a receiver can switch secrets without dropping a delivery.
CREATE TABLE webhook_endpoints (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid        NOT NULL REFERENCES users (id),
    url                 text        NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    -- Catalogue kinds (docs/events.md), or '*' for every kind.
    event_types         text[]      NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 64),
    description         text        NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    enabled             boolean     NOT NULL DEFAULT true,
    secret_enc          bytea       NOT NULL,
    secret_dek          bytea       NOT NULL,
    key_id              text        NOT NULL,
    previous_enc        bytea,
    previous_dek        bytea,
    previous_key_id     text,
    previous_expires_at timestamptz,
    -- The first failure since the last success (NULL while deliveries succeed).
    failing_since       timestamptz,
    last_success_at     timestamptz,
    disabled_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_enc IS NULL) = (previous_expires_at IS NULL)
       AND (previous_enc IS NULL) = (previous_dek IS NULL)
       AND (previous_enc IS NULL) = (previous_key_id IS NULL))
);
-- An owner's endpoints; and the fan-out's match of an event's person to their endpoints.
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, created_at);

-- One event to one endpoint: at most one row per pair, so the fan-out is idempotent. `body` is
-- the CloudEvent JSON as sent (every attempt sends the same bytes). A pending delivery is due
-- at next_attempt_at; a dispatcher that takes one moves that to the end of its lease first, so
-- that a dispatcher that dies leaves it to the next. retry_from starts its retry window (a
-- resend starts a new one).
CREATE TABLE webhook_deliveries (
    id              bigserial   PRIMARY KEY,
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
    UNIQUE (endpoint_id, event_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- The dispatchers' scan: what is due, soonest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
-- An endpoint's deliveries, newest first (the listing's pages); pruning by age.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);

-- Each attempt: a status code, or an error (no answer: a timeout, a refused connection).
CREATE TABLE webhook_attempts (
    id           bigserial   PRIMARY KEY,
    delivery_id  bigint      NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL,
    status_code  integer     CHECK (status_code BETWEEN 100 AND 999),
    error        text        CHECK (length(error) <= 200),
    duration_ms  integer     NOT NULL CHECK (duration_ms >= 0),
    CHECK ((status_code IS NULL) <> (error IS NULL))
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
