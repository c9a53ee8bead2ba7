-- The ledger's two append-only tables, transfers and entries, are partitioned by month on
-- created_at, like the outbox (0034): a month's rows live in `<table>_pYYYY_MM`, created ahead by
-- every process; an old month can be detached into `archive` once its accounts' positions are
-- carried forward in ledger_archived (platform.partitions, ledger.archive).
--
-- A transfer and its entries carry the same created_at (the batch's time, read after the account
-- locks), so they fall in the same month, and a join from an entry to its transfer (or to the
-- other legs) on (transfer_id, created_at) reads one partition. A partitioned table's unique keys
-- must include the partition key, so two guarantees the old keys gave are kept another way:
--   - an account's entries are numbered 1..n once each: every INSERT's new entries of an account
--     must be the top of its sequence, ending at its version, which never decreases
--     (ledger_note_new_entries, accounts_version_never_decreases);
--   - a hold is resolved once: a post or void writes its hold's id into hold_resolutions, whose
--     primary key refuses a second (ledger_note_new_transfers), race-proof like the old unique
--     index on transfers.pending_id.
-- The foreign keys from pending_id and reverses_id to transfers (id) go (a key on id alone no
-- longer exists): the engine reads the hold or the original under its account locks before it
-- writes a resolution or reversal (load_targets), and reconcile checks both.

-- Moving rows between a table's partitions (partition_ensure, when a month's partition is made
-- for rows the default one holds) deletes and re-inserts them: the append-only triggers let the
-- tables' owner do that, and only inside partition_ensure, which says so in a transaction-local
-- setting, which counts only for the tables' owner (anyone may set it; the service's role owns
-- no table).
CREATE OR REPLACE FUNCTION ledger_moving_partitions() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('billfold.partition_moving', true), '') = 'on'
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class
                                       WHERE oid = 'accounts'::regclass), 'USAGE');
$$;

CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND ledger_moving_partitions() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% on % is not allowed: the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE OR REPLACE FUNCTION partition_ensure(parent regclass, month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    -- Months begin at midnight UTC, whatever the session's time zone.
    lower timestamptz := first::timestamp AT TIME ZONE 'UTC';
    upper timestamptz := (first + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    name text := format('%s_p%s', parent::text, to_char(first, 'YYYY_MM'));
    fallback text := format('%s_default', parent::text);
    key name := partition_key_column(parent);
    stray bigint := 0;
    guard record;
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION '% is not partitioned by range', parent;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM set_config('billfold.partition_moving', 'on', true);
    IF to_regclass(fallback) IS NOT NULL THEN
        EXECUTE format('CREATE TEMP TABLE partition_moving (LIKE %s) ON COMMIT DROP', parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) '
                       'INSERT INTO partition_moving SELECT * FROM moved',
                       fallback, key, lower, key, upper);
        GET DIAGNOSTICS stray = ROW_COUNT;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                   name, parent, lower, upper);
    -- Statement triggers are not cloned to partitions: a TRUNCATE of the month itself must be
    -- refused as one of its parent is.
    FOR guard IN
        SELECT t.tgname, p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE t.tgrelid = parent AND NOT t.tgisinternal AND (t.tgtype & 32) <> 0
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION %I()', guard.tgname, name, guard.proname);
    END LOOP;
    IF to_regclass(fallback) IS NOT NULL THEN
        EXECUTE format('INSERT INTO %s SELECT * FROM partition_moving', parent);
        DROP TABLE partition_moving;
    END IF;
    PERFORM set_config('billfold.partition_moving', 'off', true);
    IF stray > 0 THEN
        RAISE NOTICE '% rows moved from % into %', stray, fallback, name;
    END IF;
    RETURN true;
END;
$$;

-- Who may use the ledger now (billfold_grant_service_role's roles): given the same on the new
-- tables at the end.
CREATE TEMP TABLE ledger_grantees ON COMMIT DROP AS
SELECT DISTINCT grantee::text AS role FROM information_schema.role_table_grants
 WHERE table_schema = current_schema() AND table_name = 'entries' AND privilege_type = 'INSERT'
   AND grantee::text <> (SELECT tableowner FROM pg_tables
                          WHERE schemaname = current_schema() AND tablename = 'entries');

ALTER TABLE entries RENAME TO entries_before_0035;
ALTER TABLE transfers RENAME TO transfers_before_0035;
DROP TRIGGER transfers_note_new ON transfers_before_0035;
DROP TRIGGER entries_note_new ON entries_before_0035;

CREATE TABLE transfers (
    id              bigint      NOT NULL,
    -- transfer: moves money now; hold: reserves it (pending); post / void: resolve a hold;
    -- reversal: moves money back along an earlier transfer.
    kind            text        NOT NULL,
    -- The business type (p2p, add_funds, cash_out, ...), chosen by the caller.
    code            text        NOT NULL,
    pending_id      bigint,
    reverses_id     bigint,
    amount_minor    bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    expires_at      timestamptz,
    metadata        jsonb,
    created_at      timestamptz NOT NULL,

    CONSTRAINT transfers_kind_known
        CHECK (kind IN ('transfer', 'hold', 'post', 'void', 'reversal')),
    CONSTRAINT transfers_resolution_names_hold
        CHECK ((kind IN ('post', 'void')) = (pending_id IS NOT NULL)),
    CONSTRAINT transfers_reversal_names_original
        CHECK ((kind = 'reversal') = (reverses_id IS NOT NULL)),
    CONSTRAINT transfers_only_holds_expire CHECK (kind = 'hold' OR expires_at IS NULL),
    CONSTRAINT transfers_amount_nonnegative CHECK (amount_minor >= 0),
    CONSTRAINT transfers_code_length CHECK (length(code) BETWEEN 1 AND 64)
) PARTITION BY RANGE (created_at);

CREATE TABLE entries (
    account_id          bigint      NOT NULL,
    -- Position of this entry in its account's history: 1, 2, 3, ... without gaps.
    account_seq         bigint      NOT NULL,
    transfer_id         bigint      NOT NULL,
    amount_minor        bigint      NOT NULL,
    currency            char(3)     NOT NULL,
    -- A pending entry reserves money (a hold's leg); it changes no posted balance.
    pending             boolean     NOT NULL,
    -- The account's posted balance right after this entry.
    balance_after_minor bigint      NOT NULL,
    -- Its transfer's created_at.
    created_at          timestamptz NOT NULL,

    CONSTRAINT entries_amount_nonzero CHECK (amount_minor <> 0),
    CONSTRAINT entries_account_seq_positive CHECK (account_seq > 0)
) PARTITION BY RANGE (created_at);

-- A hold's resolution (its post or void), one per hold: the primary key refuses a second.
CREATE TABLE hold_resolutions (
    hold_id         bigint      PRIMARY KEY,
    transfer_id     bigint      NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('post', 'void')),
    created_at      timestamptz NOT NULL
);
INSERT INTO hold_resolutions
SELECT pending_id, id, kind, created_at FROM transfers_before_0035 WHERE pending_id IS NOT NULL;

SELECT partition_ensure(parent, month::date)
  FROM (VALUES ('transfers'::regclass), ('entries'::regclass)) AS t(parent),
       generate_series(
           date_trunc('month', least(now(), (SELECT min(created_at) FROM transfers_before_0035))),
           date_trunc('month', now()) + interval '2 months', interval '1 month') AS month;
CREATE TABLE transfers_default PARTITION OF transfers DEFAULT;
CREATE TABLE entries_default PARTITION OF entries DEFAULT;

INSERT INTO transfers (id, kind, code, pending_id, reverses_id, amount_minor, currency,
                       expires_at, metadata, created_at)
SELECT id, kind, code, pending_id, reverses_id, amount_minor, currency, expires_at, metadata,
       created_at
  FROM transfers_before_0035;
INSERT INTO entries (account_id, account_seq, transfer_id, amount_minor, currency, pending,
                     balance_after_minor, created_at)
SELECT account_id, account_seq, transfer_id, amount_minor, currency, pending,
       balance_after_minor, created_at
  FROM entries_before_0035;
DROP TABLE entries_before_0035;
DROP TABLE transfers_before_0035;

ALTER TABLE transfers ADD PRIMARY KEY (id, created_at);
ALTER TABLE entries ADD PRIMARY KEY (account_id, account_seq, created_at);
CREATE INDEX entries_transfer_id_idx ON entries (transfer_id);
CREATE INDEX transfers_pending_id_idx ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_reverses_id_idx ON transfers (reverses_id) WHERE reverses_id IS NOT NULL;
CREATE INDEX transfers_holds_idx ON transfers (expires_at, id) WHERE kind = 'hold';
CREATE INDEX transfers_note_words ON transfers
    USING gin (to_tsvector('simple', metadata ->> 'note'))
    WHERE metadata ? 'note';

CREATE TRIGGER transfers_append_only
    BEFORE UPDATE OR DELETE ON transfers FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER transfers_no_truncate
    BEFORE TRUNCATE ON transfers FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entries_append_only
    BEFORE UPDATE OR DELETE ON entries FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entries_no_truncate
    BEFORE TRUNCATE ON entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER hold_resolutions_append_only
    BEFORE UPDATE OR DELETE ON hold_resolutions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER hold_resolutions_no_truncate
    BEFORE TRUNCATE ON hold_resolutions FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
-- The months made before these triggers existed get their TRUNCATE guard now.
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname, p.relname AS parent FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname IN ('transfers', 'entries')
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION ledger_refuse_change()',
                       part.parent || '_no_truncate', part.relname);
    END LOOP;
END;
$$;

-- An account's version (the number of its entries) only grows, and whoever raises it says from
-- what and in which transaction: version_before must be the version it had, version_xact the
-- transaction. With the check in ledger_note_new_entries (a statement's new entries of an
-- account are exactly the places version_before + 1 .. version, raised by this transaction) no
-- place in an account's history is written twice, in any month, but by one transaction that
-- writes its newest places again without raising the version in between (reconcile finds
-- that). The WHEN clause is evaluated without calling a plpgsql function: the engine's updates
-- cost nothing more.
ALTER TABLE accounts ADD COLUMN version_before bigint NOT NULL DEFAULT 0,
                     ADD COLUMN version_xact xid8;

CREATE FUNCTION ledger_refuse_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account %: its version goes from % to % with version_before %: a version '
                    'only grows, from the version it had, in the transaction that says so',
                    OLD.id, OLD.version, NEW.version, NEW.version_before
        USING ERRCODE = 'check_violation';
END;
$$;

CREATE TRIGGER accounts_version_only_grows
    BEFORE UPDATE OF version ON accounts FOR EACH ROW
    WHEN (NEW.version <> OLD.version
          AND (NEW.version < OLD.version OR NEW.version_before <> OLD.version
               OR NEW.version_xact IS DISTINCT FROM pg_current_xact_id()))
    EXECUTE FUNCTION ledger_refuse_version();

CREATE OR REPLACE FUNCTION ledger_note_new_transfers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF ledger_moving_partitions() THEN
        RETURN NULL;
    END IF;
    PERFORM ledger_append_setting('billfold.new_transfers',
        (SELECT string_agg(id::text || ',', '') FROM new_rows WHERE kind <> 'void'));
    INSERT INTO hold_resolutions (hold_id, transfer_id, kind, created_at)
    SELECT pending_id, id, kind, created_at FROM new_rows WHERE pending_id IS NOT NULL;
    INSERT INTO ledger_commit_checks VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

-- The SET clauses keep the planner from hashing a whole table to find a batch's rows by key.
CREATE OR REPLACE FUNCTION ledger_note_new_entries() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    bad record;
BEGIN
    IF ledger_moving_partitions() THEN
        RETURN NULL;
    END IF;
    SELECT n.account_id, n.currency, a.currency AS account_currency INTO bad
      FROM new_rows n JOIN accounts a ON a.id = n.account_id
     WHERE a.currency <> n.currency
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'an entry in % on account %, which holds %',
            bad.currency, bad.account_id, bad.account_currency
            USING ERRCODE = 'check_violation';
    END IF;
    -- The statement's entries of an account are the places it took, each once: from the
    -- version it had to the version this statement left it.
    SELECT s.account_id, s.first, s.last, a.version_before, a.version INTO bad
      FROM (SELECT account_id, min(account_seq) AS first, max(account_seq) AS last,
                   count(*) AS n, count(DISTINCT account_seq) AS places
              FROM new_rows GROUP BY account_id) s
      JOIN accounts a ON a.id = s.account_id
     WHERE s.first <> a.version_before + 1 OR s.last <> a.version OR s.places <> s.n
        OR s.last - s.first + 1 <> s.n OR a.version_xact IS DISTINCT FROM pg_current_xact_id()
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entries % to % on account % are not the places this transaction '
                        'took (its version went from % to %)', bad.first, bad.last,
                        bad.account_id, bad.version_before, bad.version
            USING ERRCODE = 'unique_violation';
    END IF;
    PERFORM ledger_append_setting('billfold.transfers_with_entries',
        (SELECT string_agg(DISTINCT transfer_id::text || ',', '') FROM new_rows));
    PERFORM ledger_append_setting('billfold.open_sums',
        (SELECT string_agg(transfer_id::text || ':' || currency || ':' || total::text || ',', '')
           FROM (SELECT transfer_id, currency, sum(amount_minor) AS total
                   FROM new_rows GROUP BY transfer_id, currency) s
          WHERE total <> 0));
    INSERT INTO ledger_commit_checks VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER transfers_note_new
    AFTER INSERT ON transfers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_note_new_transfers();
CREATE TRIGGER entries_note_new
    AFTER INSERT ON entries REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_note_new_entries();

-- Each account's position where its archived months end: its entries up to `seq` (its balance
-- then `balance_minor`) were detached with months ending at `through` (ledger.archive).
CREATE TABLE ledger_archived (
    account_id      bigint      PRIMARY KEY,
    seq             bigint      NOT NULL CHECK (seq > 0),
    balance_minor   bigint      NOT NULL,
    through         timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION billfold_grant_service_role(service_role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', service_role);
    EXECUTE format('REVOKE ALL ON transfers, entries, hold_resolutions, ledger_archived, '
                   'idempotency_keys, accounts FROM %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT ON transfers, entries, hold_resolutions TO %I',
                   service_role);
    EXECUTE format('GRANT SELECT ON ledger_archived TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON idempotency_keys TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON accounts TO %I', service_role);
    EXECUTE format('GRANT USAGE ON SEQUENCE transfer_ids, accounts_id_seq TO %I', service_role);
    EXECUTE format('GRANT SELECT ON schema_migrations TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON ledger_commit_checks TO %I', service_role);
END;
$$;

SELECT billfold_grant_service_role(role) FROM ledger_grantees;

-- History's time bounds (wallet.history): the last place of an account's history before a
-- moment. Times never decrease along an account's places (the engine reads the clock after the
-- account's lock), so the newest entry before the moment has it: the months after the moment are
-- pruned, the others each give their newest entry of the account. Archived places count.
CREATE OR REPLACE FUNCTION ledger_last_seq_before(account bigint, moment timestamptz,
                                                  inclusive boolean)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    found bigint;
BEGIN
    IF inclusive THEN
        SELECT account_seq INTO found FROM entries
         WHERE account_id = account AND created_at <= moment
         ORDER BY account_seq DESC LIMIT 1;
    ELSE
        SELECT account_seq INTO found FROM entries
         WHERE account_id = account AND created_at < moment
         ORDER BY account_seq DESC LIMIT 1;
    END IF;
    RETURN greatest(coalesce(found, 0),
                    coalesce((SELECT seq FROM ledger_archived WHERE account_id = account), 0));
END;
$$;
