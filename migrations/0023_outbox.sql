-- The outbox (events/): every event a change of money or of an account makes, written in the
-- change's own transaction, so that an event exists if and only if its change committed. The
-- relay (events.relay) publishes the rows to the broker and marks them; published rows are
-- pruned after the retention period. `id` is the order of writing: a key's rows (an account's)
-- are written under that account's lock, so their ids follow their commits.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    type         text NOT NULL CHECK (type ~ '^billfold\.[a-z_.]+\.v[0-9]+$'),
    source       text NOT NULL,
    subject      text NOT NULL,
    ordering_key text NOT NULL,
    partition    smallint NOT NULL CHECK (partition >= 0),
    time         timestamptz NOT NULL,
    data         jsonb NOT NULL,
    published_at timestamptz
);

-- The relay partition of an ordering key (events.relay): one relay at a time publishes one.
CREATE FUNCTION outbox_partition(ordering_key text, partitions integer) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN partitions > 1 THEN (abs(hashtext(ordering_key)::bigint) % partitions)
                ELSE 0 END;

-- The relay's scan: a partition's unpublished rows in id order.
CREATE INDEX outbox_unpublished_idx ON outbox (partition, id) WHERE published_at IS NULL;
-- Pruning and replay: rows by time (appended at its end, as time grows). No index on event_id:
-- a random key's index costs every write, and nothing looks an event up by its id.
CREATE INDEX outbox_time_idx ON outbox (time);
