-- What the learned model reads online (risk.serving): each assessment keeps the context it was
-- made in, so that a user's recent assessments are the history the model's features are computed
-- from, exactly as training computes them from a replayed history. All new columns are nullable
-- without a default: adding them rewrites nothing.
ALTER TABLE risk_assessments
    ADD COLUMN device_id  text,
    ADD COLUMN country    char(2),
    ADD COLUMN ip_prefix  text,
    ADD COLUMN rail       text,
    -- A P2P transfer to someone the sender had never paid before.
    ADD COLUMN new_payee  boolean,
    -- The sender's account was under 7 days old (mule fan-in counts these senders).
    ADD COLUMN sender_new boolean;

-- Money a user received: the recipient's side of a P2P transfer.
CREATE INDEX risk_assessments_incoming ON risk_assessments (counterparty_id, created_at)
    WHERE counterparty_id IS NOT NULL;

-- How many users act from one device.
CREATE INDEX user_devices_device ON user_devices (device_id);

-- The address blocks (/16, or the first four groups of IPv6) a user acted from.
CREATE TABLE user_networks (
    user_id        uuid        NOT NULL REFERENCES users (id),
    prefix         text        NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, prefix),
    CONSTRAINT user_networks_prefix_length CHECK (length(prefix) BETWEEN 1 AND 64)
);
