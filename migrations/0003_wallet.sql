-- People and their wallets. A user has three handles (username, email, phone), each unique, each
-- stored in its normalised form; a wallet ties a user to one ledger account per currency.

CREATE TABLE users (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    username        text        NOT NULL,
    email           text        NOT NULL,
    phone           text        NOT NULL,
    password_hash   text        NOT NULL,
    is_admin        boolean     NOT NULL DEFAULT false,
    status          text        NOT NULL DEFAULT 'active',
    created_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9_.]{3,30}$'),
    CONSTRAINT users_email_normalised CHECK (email = lower(email) AND email LIKE '%_@_%'),
    CONSTRAINT users_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    CONSTRAINT users_status_known CHECK (status IN ('active', 'frozen'))
);

CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_phone_key ON users (phone);

CREATE TABLE wallets (
    user_id     uuid    NOT NULL REFERENCES users (id),
    currency    char(3) NOT NULL,
    account_id  bigint  NOT NULL UNIQUE REFERENCES accounts (id),
    PRIMARY KEY (user_id, currency)
);
