-- Notifications (notifications/): what each person is told of the events the stream carries
-- (the consumer group `notifications`), in their in-app feed and by email. One row per event
-- and person: the unique key makes an event delivered twice (delivery is at least once) tell
-- them once. The row is also the email's queue entry: its state says whether it went out.
CREATE TABLE notifications (
    seq            bigserial   PRIMARY KEY,  -- the feed's order (newest first) and its cursor
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    event_id       uuid        NOT NULL,
    user_id        uuid        NOT NULL REFERENCES users (id),
    kind           text        NOT NULL,
    category       text        NOT NULL,
    subject        text        NOT NULL,
    body           text        NOT NULL,
    about          text,                     -- the event's subject: `transfer/12`, `funding/<id>`
    happened_at    timestamptz NOT NULL,     -- the event's time
    created_at     timestamptz NOT NULL DEFAULT now(),
    in_feed        boolean     NOT NULL,     -- false: the person turned the category's feed off
    read_at        timestamptz,
    -- none: no email (not wanted); pending: to send (again at email_next_at); sent; failed:
    -- refused for good by the server, or still failing after the last attempt.
    email_status   text        NOT NULL,
    email_to       text,
    email_attempts integer     NOT NULL DEFAULT 0,
    email_next_at  timestamptz,
    email_sent_at  timestamptz,
    email_error    text,

    CONSTRAINT notifications_id_key UNIQUE (id),
    CONSTRAINT notifications_event_user_key UNIQUE (event_id, user_id),
    CONSTRAINT notifications_kind_format CHECK (kind ~ '^[a-z][a-z_]{0,62}$'),
    CONSTRAINT notifications_category_format CHECK (category ~ '^[a-z][a-z_]{0,62}$'),
    CONSTRAINT notifications_subject_length CHECK (length(subject) BETWEEN 1 AND 200),
    CONSTRAINT notifications_body_length CHECK (length(body) BETWEEN 1 AND 4000),
    CONSTRAINT notifications_email_status_known
        CHECK (email_status IN ('none', 'pending', 'sent', 'failed')),
    CONSTRAINT notifications_email_has_address CHECK (email_status = 'none' OR email_to IS NOT NULL),
    CONSTRAINT notifications_pending_is_due CHECK (email_status <> 'pending' OR email_next_at IS NOT NULL),
    CONSTRAINT notifications_sent_when CHECK ((email_status = 'sent') = (email_sent_at IS NOT NULL)),
    CONSTRAINT notifications_attempts_bounded CHECK (email_attempts BETWEEN 0 AND 1000),
    CONSTRAINT notifications_read_after CHECK (read_at IS NULL OR in_feed)
);

-- A person's feed, newest first; and its unread part (the `unread` filter and the count).
CREATE INDEX notifications_feed_idx ON notifications (user_id, seq DESC) WHERE in_feed;
CREATE INDEX notifications_unread_idx ON notifications (user_id, seq DESC)
    WHERE in_feed AND read_at IS NULL;
-- The mailer's scan: emails due.
CREATE INDEX notifications_mail_due_idx ON notifications (email_next_at)
    WHERE email_status = 'pending';
-- Pruning past the retention period.
CREATE INDEX notifications_created_idx ON notifications (created_at);

-- What each person wants to be told, by category (notifications.preferences.CATEGORIES); a
-- category without a row has the defaults (feed and email on).
CREATE TABLE notification_preferences (
    user_id    uuid        NOT NULL REFERENCES users (id),
    category   text        NOT NULL,
    feed       boolean     NOT NULL,
    email      boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, category),
    CONSTRAINT notification_preferences_category_format
        CHECK (category ~ '^[a-z][a-z_]{0,62}$')
);
