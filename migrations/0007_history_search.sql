-- History's `q` searches the words of transfer notes through this index, instead of reading
-- every entry of the account. Partial: only transfers with a note are indexed, so the many
-- without one (most P2P, every funding movement) cost nothing more to write.
CREATE INDEX transfers_note_words ON transfers
    USING gin (to_tsvector('simple', metadata ->> 'note'))
    WHERE metadata ? 'note';

-- ... and finds counterparties whose username starts with q, by this index, not a scan.
CREATE INDEX users_username_prefix ON users (username text_pattern_ops);
