-- The exact addresses a user acts from (user_networks keeps only their /16 blocks): accounts
-- opened together and trading among themselves from one address are a synthetic-identity ring
-- (risk.rules address_ring). Written at sign-up and when a movement goes ahead, as the other
-- places are; read by address for a new account's movement (risk.past_sql.PAST).
CREATE TABLE user_addresses (
    user_id        uuid        NOT NULL REFERENCES users (id),
    address        text        NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address),
    CONSTRAINT user_addresses_address_length CHECK (length(address) BETWEEN 1 AND 64)
);
CREATE INDEX user_addresses_by_address ON user_addresses (address, first_seen_at);
