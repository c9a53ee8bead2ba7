-- Money in and out: linked bank accounts, cards, and the movements over the bank rails (ACH
-- add-funds and cash-outs, micro-deposits, card funding). The ledger holds the money; these
-- tables hold what the rails need (trace numbers, return codes, statuses) and point at the
-- ledger transfers that moved it.

-- A full bank account number is stored only encrypted (AES-GCM, envelope: a data key per value,
-- wrapped by a key-encryption key named by key_id; both bound to this row by their associated
-- data). account_index is a keyed hash of routing and account number, so the same bank account
-- linked by several users is found without decrypting anything.
CREATE TABLE bank_accounts (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid        NOT NULL REFERENCES users (id),
    routing_number      char(9)     NOT NULL,
    account_last4       char(4)     NOT NULL,
    account_number_enc  bytea       NOT NULL,
    account_number_dek  bytea       NOT NULL,
    key_id              text        NOT NULL,
    account_index       bytea       NOT NULL,
    holder_name         text        NOT NULL,
    account_type        text        NOT NULL,
    status              text        NOT NULL DEFAULT 'pending_verification',
    -- The two micro-deposit amounts in cents, and the wrong answers given so far.
    micro_amounts       int[]       NOT NULL,
    verify_failures     int         NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    verified_at         timestamptz,
    unlinked_at         timestamptz,
    unlink_reason       text,

    CONSTRAINT bank_accounts_routing_digits CHECK (routing_number ~ '^[0-9]{9}$'),
    CONSTRAINT bank_accounts_last4_digits CHECK (account_last4 ~ '^[0-9]{4}$'),
    CONSTRAINT bank_accounts_type_known CHECK (account_type IN ('checking', 'savings')),
    CONSTRAINT bank_accounts_status_known
        CHECK (status IN ('pending_verification', 'verified', 'locked', 'unlinked')),
    CONSTRAINT bank_accounts_holder_name_length CHECK (length(holder_name) BETWEEN 1 AND 100),
    CONSTRAINT bank_accounts_micro_amounts CHECK (
        array_length(micro_amounts, 1) = 2 AND micro_amounts[1] BETWEEN 1 AND 99
        AND micro_amounts[2] BETWEEN 1 AND 99),
    CONSTRAINT bank_accounts_unlinked_when CHECK ((status = 'unlinked') = (unlinked_at IS NOT NULL))
);

CREATE INDEX bank_accounts_user ON bank_accounts (user_id);
CREATE INDEX bank_accounts_index ON bank_accounts (account_index);
-- A user links a bank account once (again after unlinking it).
CREATE UNIQUE INDEX bank_accounts_once_per_user ON bank_accounts (user_id, account_index)
    WHERE status <> 'unlinked';

-- Cards: only the processor's token and what may be shown. The number never reaches Billfold.
CREATE TABLE cards (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id),
    token       text        NOT NULL UNIQUE,
    brand       text        NOT NULL,
    last4       char(4)     NOT NULL,
    exp_month   int         NOT NULL,
    exp_year    int         NOT NULL,
    status      text        NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT cards_last4_digits CHECK (last4 ~ '^[0-9]{4}$'),
    CONSTRAINT cards_exp_month CHECK (exp_month BETWEEN 1 AND 12),
    CONSTRAINT cards_status_known CHECK (status IN ('active', 'removed'))
);

CREATE INDEX cards_user ON cards (user_id);

-- The sandbox card processor's own vault: what a test card number behaves like, keyed by the
-- token it gave out. The number itself is not kept even here.
CREATE TABLE sandbox_card_tokens (
    token       text        PRIMARY KEY,
    brand       text        NOT NULL,
    last4       char(4)     NOT NULL,
    exp_month   int         NOT NULL,
    exp_year    int         NOT NULL,
    behaviour   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT sandbox_card_behaviour CHECK (behaviour IN ('approve', 'decline', 'insufficient_funds'))
);

-- One row per movement over a rail. `id` is the public transfer id of add-funds and cash-out.
-- Status only moves forward: pending -> settled -> returned, or pending -> returned (failed
-- card charges are never recorded). The ledger transfers it names are the money; reconciling
-- the two is `billfold reconcile`'s job.
CREATE TABLE funding_transfers (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid        NOT NULL REFERENCES users (id),
    rail                text        NOT NULL,
    purpose             text        NOT NULL,
    bank_account_id     uuid        REFERENCES bank_accounts (id),
    card_id             uuid        REFERENCES cards (id),
    amount_minor        bigint      NOT NULL,
    fee_minor           bigint      NOT NULL DEFAULT 0,
    currency            char(3)     NOT NULL,
    -- Part of an add-funds made spendable before settlement (funds availability policy).
    advance_minor       bigint      NOT NULL DEFAULT 0,
    status              text        NOT NULL DEFAULT 'pending',
    hold_id             bigint,
    posted_id           bigint,
    estimated_completion date,
    trace_number        char(15)    UNIQUE,
    exported_at         timestamptz,
    return_code         text,
    settled_at          timestamptz,
    returned_at         timestamptz,
    -- What the claw-back of a return took from the wallet and what it left owed.
    clawed_back_minor   bigint      NOT NULL DEFAULT 0,
    owed_minor          bigint      NOT NULL DEFAULT 0,
    idempotency_key     text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT funding_rail_known CHECK (rail IN ('ach', 'card')),
    CONSTRAINT funding_purpose_known CHECK (purpose IN ('add_funds', 'cash_out', 'micro_deposit')),
    CONSTRAINT funding_status_known CHECK (status IN ('pending', 'settled', 'returned')),
    CONSTRAINT funding_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT funding_fee_not_negative CHECK (fee_minor >= 0),
    CONSTRAINT funding_advance_within CHECK (advance_minor BETWEEN 0 AND amount_minor),
    CONSTRAINT funding_source CHECK (
        (rail = 'ach' AND bank_account_id IS NOT NULL AND card_id IS NULL)
        OR (rail = 'card' AND card_id IS NOT NULL AND bank_account_id IS NULL)),
    CONSTRAINT funding_return_code CHECK ((status = 'returned') = (return_code IS NOT NULL)),
    CONSTRAINT funding_trace_for_ach CHECK ((rail = 'ach') = (trace_number IS NOT NULL))
);

CREATE UNIQUE INDEX funding_transfers_key ON funding_transfers (user_id, idempotency_key);
-- Limits sum a user's recent movements of one purpose.
CREATE INDEX funding_transfers_user_recent ON funding_transfers (user_id, purpose, created_at);
-- The day's export reads what has not gone out yet.
CREATE INDEX funding_transfers_unexported ON funding_transfers (created_at)
    WHERE rail = 'ach' AND exported_at IS NULL;

CREATE SEQUENCE ach_trace_seq MAXVALUE 9999999 CYCLE;

-- Every event the bank partner sent, stored before it is applied. The webhook id deduplicates:
-- a delivery seen before is acknowledged and not applied again. The first delivery claims the
-- row; a later one may claim it again only if the claim is old and nothing was applied (the
-- process applying it died), and then applies it again: every effect is idempotent.
CREATE TABLE webhook_inbox (
    webhook_id   text        PRIMARY KEY,
    source       text        NOT NULL,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz,
    outcome      text,

    CONSTRAINT webhook_inbox_id_length CHECK (length(webhook_id) BETWEEN 1 AND 255)
);

CREATE INDEX webhook_inbox_unapplied ON webhook_inbox (received_at) WHERE applied_at IS NULL;

-- Signals for the risk engine: an account unlinked for an unauthorised-debit return, a bank
-- account shared by several users. Append-only.
CREATE TABLE risk_flags (
    id          bigserial   PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id),
    reason      text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX risk_flags_user ON risk_flags (user_id, created_at);

-- A wallet whose owner owes money (a returned deposit already spent) can't send money out until
-- it is repaid. The ledger reads this beside `frozen`; collection transfers are let through.
ALTER TABLE accounts ADD COLUMN owes boolean NOT NULL DEFAULT false;

-- The sandbox processor's charges, by the caller's idempotency key: a retried charge is
-- answered as the first one was, never charged twice.
CREATE TABLE sandbox_card_charges (
    idempotency_key text        PRIMARY KEY,
    token           text        NOT NULL,
    amount_minor    bigint      NOT NULL,
    approved        boolean     NOT NULL,
    decline_code    text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
