-- The outbox (events/): every event a change of money or of an account makes, written in the
-- change's own transaction, so that an event exists if and only if its change committed. The
-- relay (events.relay) publishes the rows to the broker and marks them; published rows are
-- pruned after the retention period. `id` is the order of writing: a key's rows (an account's)
-- are written under that account's lock, so their ids follow their commits.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    type         text NOT NULL CHECK (type ~ '^billfold\.[a-z_.]+\.v[0-9]+$'),
    source       text NOT NULL,
    subject      text NOT NULL,
    ordering_key text NOT NULL,
    partition    smallint NOT NULL CHECK (partition >= 0),
    time         timestamptz NOT NULL,
    data         jsonb NOT NULL,
    published_at timestamptz
);

-- The relay's scan: a partition's unpublished rows in id order.
CREATE INDEX outbox_unpublished_idx ON outbox (partition, id) WHERE published_at IS NULL;
-- Pruning and replay: published rows by time.
CREATE INDEX outbox_time_idx ON outbox (time);
