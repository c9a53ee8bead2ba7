-- The outcome of each reconciliation of the ledger (ledger.reconcile): `billfold reconcile` and
-- the operator console's "reconcile now" each write one row when they finish, so that operators
-- see when the ledger was last checked, how long it took and whether it balanced. The ledger's.
CREATE TABLE reconcile_runs (
    id           bigserial        PRIMARY KEY,
    started_at   timestamptz      NOT NULL,
    seconds      double precision NOT NULL CHECK (seconds >= 0),
    transfers    bigint           NOT NULL CHECK (transfers >= 0),
    entries      bigint           NOT NULL CHECK (entries >= 0),
    accounts     bigint           NOT NULL CHECK (accounts >= 0),
    -- Per currency: [debits, credits] in minor units.
    totals       jsonb            NOT NULL,
    -- Every difference found (the ledger's and the other contexts' checks), at most 200.
    problems     text[]           NOT NULL CHECK (cardinality(problems) <= 200),
    balanced     boolean          NOT NULL,
    source       text             NOT NULL CHECK (source IN ('cli', 'console')),
    CHECK (balanced = (cardinality(problems) = 0))
);
