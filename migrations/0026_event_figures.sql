-- Daily figures of the event stream (events.figures), kept by the consumer group `figures` for
-- the operator console: per day (UTC, of the event's time), event type and currency, how many
-- events and their volume in minor units. `decisions` counts, among them, the risk gate's first
-- decision on a person-to-person transfer (completed at once, held, or declined before any
-- hold): the denominator of the day's hold and decline rates.
CREATE TABLE event_figures (
    day          date NOT NULL,
    type         text NOT NULL CHECK (type ~ '^billfold\.[a-z_.]+\.v[0-9]+$'),
    currency     text NOT NULL CHECK (currency ~ '^([A-Z]{3})?$'),
    count        bigint NOT NULL CHECK (count >= 0),
    volume_minor bigint NOT NULL,
    decisions    bigint NOT NULL CHECK (decisions >= 0 AND decisions <= count),
    PRIMARY KEY (day, type, currency)
);

-- The events the figures count, by id: delivery is at least once, and an event seen again is
-- not counted again. Kept for a while past the outbox's retention (what a relay may publish
-- again); an event older than that is not counted at all (events.figures.HORIZON).
CREATE TABLE event_figures_seen (
    event_id uuid PRIMARY KEY,
    time     timestamptz NOT NULL
);
CREATE INDEX event_figures_seen_time_idx ON event_figures_seen (time);
