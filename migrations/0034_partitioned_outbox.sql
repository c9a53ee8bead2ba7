-- Tables that grow with traffic are partitioned by month (platform.partitions): a month's rows
-- live in `<table>_pYYYY_MM`, created ahead by every process (partition_ensure); rows of a month
-- with no partition yet go to `<table>_default`, so a write never fails for lack of one, and move
-- into their month's partition when it is created. An old month is detached into the `archive`
-- schema (`billfold partitions detach --before YYYY-MM`), to be dumped and dropped.
CREATE SCHEMA IF NOT EXISTS archive;

-- The range-partitioned table's key column (the first of its partition key).
CREATE FUNCTION partition_key_column(parent regclass) RETURNS name
LANGUAGE sql STABLE AS $$
    SELECT a.attname FROM pg_partitioned_table p
      JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
     WHERE p.partrelid = parent AND p.partstrat = 'r';
$$;

-- Create the partition of `parent` for the month of `month`, unless it exists; whether it was
-- created. Rows the default partition holds for that month move into it, in the same
-- transaction. Callers serialise on an advisory lock (platform.partitions); the check for an
-- existing partition comes first, so that the common call takes no lock on the table. It runs
-- as the tables' owner (SECURITY DEFINER): the service's role, which creates the months ahead,
-- owns no table.
CREATE FUNCTION partition_ensure(parent regclass, month date) RETURNS boolean
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
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION '% is not partitioned by range', parent;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF to_regclass(fallback) IS NOT NULL THEN
        EXECUTE format('CREATE TEMP TABLE partition_moving (LIKE %s) ON COMMIT DROP', parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) '
                       'INSERT INTO partition_moving SELECT * FROM moved',
                       fallback, key, lower, key, upper);
        GET DIAGNOSTICS stray = ROW_COUNT;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                   name, parent, lower, upper);
    IF to_regclass(fallback) IS NOT NULL THEN
        EXECUTE format('INSERT INTO %s SELECT * FROM partition_moving', parent);
        DROP TABLE partition_moving;
    END IF;
    IF stray > 0 THEN
        RAISE NOTICE '% rows moved from % into %', stray, fallback, name;
    END IF;
    RETURN true;
END;
$$;

-- The outbox, partitioned by the event's time. Its primary key takes the time (a partitioned
-- table's unique keys include the partition key); ids still come from one sequence, and
-- nothing refers to an outbox row.
ALTER TABLE outbox RENAME TO outbox_before_0034;
ALTER SEQUENCE outbox_id_seq OWNED BY NONE;

CREATE TABLE outbox (
    id           bigint NOT NULL DEFAULT nextval('outbox_id_seq'),
    event_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    type         text NOT NULL
                 CONSTRAINT outbox_type_check CHECK (type ~ '^billfold\.[a-z_.]+\.v[0-9]+$'),
    source       text NOT NULL,
    subject      text NOT NULL,
    ordering_key text NOT NULL,
    partition    smallint NOT NULL CONSTRAINT outbox_partition_check CHECK (partition >= 0),
    time         timestamptz NOT NULL,
    data         jsonb NOT NULL,
    published_at timestamptz
) PARTITION BY RANGE (time);

SELECT partition_ensure('outbox', month::date)
  FROM generate_series(
           date_trunc('month', least(now(), (SELECT min(time) FROM outbox_before_0034))),
           date_trunc('month', now()) + interval '2 months', interval '1 month') AS month;
CREATE TABLE outbox_default PARTITION OF outbox DEFAULT;

INSERT INTO outbox (id, event_id, type, source, subject, ordering_key, partition, time, data,
                    published_at)
SELECT id, event_id, type, source, subject, ordering_key, partition, time, data, published_at
  FROM outbox_before_0034;
DROP TABLE outbox_before_0034;
ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id;

ALTER TABLE outbox ADD PRIMARY KEY (id, time);
-- The relay's scan: a partition's unpublished rows in id order.
CREATE INDEX outbox_unpublished_idx ON outbox (partition, id) WHERE published_at IS NULL;
-- Pruning and replay: rows by time.
CREATE INDEX outbox_time_idx ON outbox (time);
