-- The risk engine's state in PostgreSQL: the devices and countries each user is known from, the
-- verdict given to every scored movement, and transfers held for a second factor or a review.

CREATE TABLE user_devices (
    user_id        uuid        NOT NULL REFERENCES users (id),
    device_id      text        NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id),
    CONSTRAINT user_devices_id_length CHECK (length(device_id) BETWEEN 1 AND 128)
);

CREATE TABLE user_countries (
    user_id        uuid        NOT NULL REFERENCES users (id),
    country        char(2)     NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, country)
);

-- One row per scored movement: the score, the verdict and its reasons, for operators.
CREATE TABLE risk_assessments (
    id            bigserial   PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id),
    kind          text        NOT NULL,
    ref           text        NOT NULL,
    counterparty_id uuid,
    amount_minor  bigint      NOT NULL,
    score         real        NOT NULL,
    action        text        NOT NULL,
    reasons       text[]      NOT NULL,
    aml           text[]      NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT risk_assessments_action_known
        CHECK (action IN ('allow', 'step_up', 'review', 'decline'))
);

CREATE INDEX risk_assessments_user ON risk_assessments (user_id, created_at);
CREATE INDEX risk_assessments_payee ON risk_assessments (user_id, counterparty_id)
    WHERE counterparty_id IS NOT NULL;
CREATE INDEX risk_assessments_aml ON risk_assessments (created_at) WHERE aml <> '{}';

-- A P2P transfer the engine held: its money is reserved by a ledger hold (its id is the
-- transfer's id) until the sender confirms with their PIN or an analyst decides. The ledger
-- posts or voids the hold exactly once, whoever asks first.
CREATE TABLE held_transfers (
    hold_id        bigint      PRIMARY KEY,
    sender_id      uuid        NOT NULL REFERENCES users (id),
    recipient_id   uuid        NOT NULL REFERENCES users (id),
    amount_minor   bigint      NOT NULL,
    status         text        NOT NULL,
    assessment_id  bigint      NOT NULL REFERENCES risk_assessments (id),
    device_id      text,
    country        char(2),
    pin_failures   int         NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    resolved_by    uuid        REFERENCES users (id),
    CONSTRAINT held_transfers_status_known CHECK (status IN
        ('PENDING_VERIFICATION', 'PENDING_REVIEW', 'COMPLETED', 'DECLINED'))
);

CREATE INDEX held_transfers_review_queue ON held_transfers (created_at)
    WHERE status = 'PENDING_REVIEW';

ALTER TABLE users ADD COLUMN pin_hash text;

-- The risk engine acts too (a freeze on two strong signals): an action with no operator is
-- the engine's.
ALTER TABLE operator_actions ALTER COLUMN operator_id DROP NOT NULL;
