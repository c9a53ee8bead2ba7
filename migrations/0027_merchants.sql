-- Merchants (merchants/): a person's business profiles, each with a merchant account in the
-- ledger; the API keys its server signs in with; checkout sessions (in-app and dynamic QR);
-- payments to it; refunds from it. Every money movement is a ledger transfer; the rows here
-- say what it was for, and are written in the ledger's own transaction (SideRow) where they
-- record one.
CREATE TABLE merchants (
    id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id                uuid        NOT NULL REFERENCES users (id),
    account_id              bigint      NOT NULL UNIQUE REFERENCES accounts (id),
    -- As the QR code's fields 59 and 60 hold them (EMV QRCPS-MPM).
    name                    text        NOT NULL CHECK (length(name) BETWEEN 1 AND 25),
    mcc                     text        NOT NULL CHECK (mcc ~ '^[0-9]{4}$'),
    city                    text        NOT NULL CHECK (length(city) BETWEEN 1 AND 15),
    country                 text        NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    status                  text        NOT NULL DEFAULT 'active'
                                        CHECK (status IN ('active', 'suspended')),
    -- Payouts: by hand, or each day to payout_bank_account_id (one of the owner's, verified).
    payout_schedule         text        NOT NULL DEFAULT 'manual'
                                        CHECK (payout_schedule IN ('manual', 'daily')),
    payout_bank_account_id  uuid        REFERENCES bank_accounts (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (payout_schedule = 'manual' OR payout_bank_account_id IS NOT NULL)
);
CREATE INDEX merchants_owner_idx ON merchants (owner_id, created_at);

-- A merchant server's keys. The secret (`sk_` and 43 characters of 32 random bytes) is shown
-- once; only its SHA-256 is kept, so a copy of the table signs nobody in.
CREATE TABLE merchant_api_keys (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id   uuid        NOT NULL REFERENCES merchants (id),
    -- The secret's first characters, to tell keys apart in a list ("sk_4f9a...").
    prefix        text        NOT NULL,
    secret_hash   bytea       NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX merchant_api_keys_merchant_idx ON merchant_api_keys (merchant_id, created_at);

-- A checkout session: an amount to be paid once, before it expires. open -> paid | expired |
-- canceled, each once. A payer claims an open session for the time its payment runs
-- (claimed_by, claim_key, claimed_at: a claim older than the claim window is void), so that of
-- concurrent payers one pays; a payment held by the risk engine keeps its claim until it is
-- decided.
CREATE TABLE checkout_sessions (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id      uuid        NOT NULL REFERENCES merchants (id),
    amount_minor     bigint      NOT NULL CHECK (amount_minor > 0),
    currency         text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reference        text        CHECK (length(reference) BETWEEN 1 AND 64),
    status           text        NOT NULL DEFAULT 'open'
                                 CHECK (status IN ('open', 'paid', 'expired', 'canceled')),
    idempotency_key  text        NOT NULL,
    request_hash     bytea       NOT NULL,
    expires_at       timestamptz NOT NULL,
    claimed_by       uuid        REFERENCES users (id),
    claim_key        text,
    claimed_at       timestamptz,
    payment_id       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    UNIQUE (merchant_id, idempotency_key),
    CHECK ((status = 'open') = (closed_at IS NULL)),
    CHECK ((status = 'paid') = (payment_id IS NOT NULL))
);
-- The expiry sweep: open sessions, soonest first.
CREATE INDEX checkout_sessions_open_idx ON checkout_sessions (expires_at) WHERE status = 'open';

-- A payment to a merchant: the ledger transfer (or, held by the risk engine, its hold) that
-- moved the payer's money to the merchant account, the fee to fee revenue in the same transfer.
CREATE TABLE merchant_payments (
    id               uuid        PRIMARY KEY,
    merchant_id      uuid        NOT NULL REFERENCES merchants (id),
    payer_id         uuid        NOT NULL REFERENCES users (id),
    session_id       uuid        REFERENCES checkout_sessions (id),
    transfer_id      bigint      NOT NULL UNIQUE,
    amount_minor     bigint      NOT NULL CHECK (amount_minor > 0),
    fee_minor        bigint      NOT NULL CHECK (fee_minor >= 0 AND fee_minor < amount_minor),
    currency         text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    refunded_minor   bigint      NOT NULL DEFAULT 0
                                 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    status           text        NOT NULL CHECK (status IN
                         ('COMPLETED', 'PENDING_VERIFICATION', 'PENDING_REVIEW', 'DECLINED')),
    note             text        CHECK (length(note) <= 280),
    idempotency_key  text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_at       timestamptz,
    UNIQUE (payer_id, idempotency_key)
);
-- A session is paid by one payment at most.
CREATE UNIQUE INDEX merchant_payments_session_idx ON merchant_payments (session_id)
    WHERE session_id IS NOT NULL AND status <> 'DECLINED';
-- The merchant's list, newest first, paged by keyset on (created_at, transfer id) (a batch's
-- payments share one created_at); a day's settlement report, by when the money moved (a held
-- payment's when it was decided).
CREATE INDEX merchant_payments_merchant_idx
    ON merchant_payments (merchant_id, created_at, transfer_id);
CREATE INDEX merchant_payments_moved_idx ON merchant_payments ((coalesce(decided_at, created_at)))
    WHERE status = 'COMPLETED';
CREATE INDEX merchant_payments_payer_idx ON merchant_payments (payer_id, created_at);

-- A refund: a ledger transfer from the merchant account back to the payer. It is reserved
-- first (PENDING, its amount added to merchant_payments.refunded_minor under the payment's row
-- lock, so that refunds of one payment never sum past it, concurrent ones included), then the
-- ledger's transaction that moves the money completes it, or fails it and gives the amount
-- back (merchants.refunds.COMPLETE, a ledger side statement): refunded_minor counts PENDING and
-- COMPLETED refunds.
CREATE TABLE merchant_refunds (
    id               uuid        PRIMARY KEY,
    payment_id       uuid        NOT NULL REFERENCES merchant_payments (id),
    merchant_id      uuid        NOT NULL REFERENCES merchants (id),
    transfer_id      bigint      UNIQUE,
    amount_minor     bigint      NOT NULL CHECK (amount_minor > 0),
    currency         text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reason           text        CHECK (length(reason) <= 280),
    status           text        NOT NULL DEFAULT 'PENDING'
                                 CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
    idempotency_key  text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (merchant_id, idempotency_key),
    CHECK ((status = 'COMPLETED') = (transfer_id IS NOT NULL)),
    CHECK ((status = 'PENDING') = (completed_at IS NULL))
);
CREATE INDEX merchant_refunds_payment_idx ON merchant_refunds (payment_id, created_at);
-- A day's settlement report: the refunds completed that day.
CREATE INDEX merchant_refunds_completed_idx ON merchant_refunds (completed_at)
    WHERE status = 'COMPLETED';
