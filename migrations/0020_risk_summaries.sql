-- The risk engine's past query (risk.serving.PAST) read, on every movement, the user's lifetime
-- count of movements (up to 256 rows), their last movement, their last outgoing movement and
-- add-funds (a scan back up to 90 days when the last 30 hold none), how many times they paid
-- the recipient (up to 256 rows) and the recipient's last payment to them. These summaries
-- keep those answers current as assessments are written, so each is one indexed row:
-- - per user: the movements that went ahead, and the last one of any kind, outgoing and
--   add-funds;
-- - per pair (sender, recipient) of P2P transfers that went ahead: how many, and the last.
-- "Went ahead" is the past query's: not declined, and not held (or refused) and declined
-- later. Money that never moved is no history, here as there.
--
-- They are kept by triggers on risk_assessments, so they are exactly as current as the table:
-- every statement that writes assessments (one, a batch, the ledger's side rows, COPY) updates
-- them in the same transaction, and any snapshot that sees an assessment sees it counted. The
-- past query reads an answer from a summary only when the summary's last movement is no later
-- than the movement scored (otherwise it counts rows as before: a past read as of an earlier
-- time). Summaries hold derived data only: no foreign keys (their rows' assessments reference
-- users), and no code writes them but these triggers.

CREATE TABLE risk_user_summaries (
    user_id                uuid        PRIMARY KEY,
    movements              bigint      NOT NULL,
    last_at                timestamptz NOT NULL,
    last_id                bigint      NOT NULL,
    last_device_id         text,
    last_country           char(2),
    last_out_at            timestamptz,
    last_out_id            bigint,
    last_add_at            timestamptz,
    last_add_id            bigint,
    last_add_amount_minor  bigint,
    CONSTRAINT risk_user_summaries_movements_positive CHECK (movements > 0),
    CONSTRAINT risk_user_summaries_out_whole CHECK ((last_out_at IS NULL) = (last_out_id IS NULL)),
    CONSTRAINT risk_user_summaries_add_whole CHECK ((last_add_at IS NULL) = (last_add_id IS NULL))
) WITH (fillfactor = 80);  -- room on the page for HOT updates: only the key is indexed

CREATE TABLE risk_pair_summaries (
    user_id            uuid        NOT NULL,
    counterparty_id    uuid        NOT NULL,
    payments           bigint      NOT NULL,
    last_at            timestamptz NOT NULL,
    last_id            bigint      NOT NULL,
    last_amount_minor  bigint      NOT NULL,
    PRIMARY KEY (user_id, counterparty_id),
    CONSTRAINT risk_pair_summaries_payments_positive CHECK (payments > 0)
) WITH (fillfactor = 80);

-- The assessments a statement added that went ahead, folded into the summaries. Rows are
-- upserted in key order, so concurrent statements lock the summaries they share in the same
-- order and cannot deadlock on them; a second movement of a user waits for the first's
-- transaction and then adds to what it wrote (ON CONFLICT reads the latest committed row).
-- The last movement is the latest by (created_at, id), whatever order rows arrive in.
CREATE FUNCTION risk_summaries_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO risk_user_summaries AS s
           (user_id, movements, last_at, last_id, last_device_id, last_country,
            last_out_at, last_out_id, last_add_at, last_add_id, last_add_amount_minor)
    SELECT l.user_id, c.movements, l.created_at, l.id, l.device_id, l.country,
           o.created_at, o.id, a.created_at, a.id, a.amount_minor
      FROM (SELECT DISTINCT ON (user_id) user_id, created_at, id, device_id, country
              FROM added WHERE action <> 'decline' AND NOT declined_later
             ORDER BY user_id, created_at DESC, id DESC) l
      JOIN (SELECT user_id, count(*) AS movements
              FROM added WHERE action <> 'decline' AND NOT declined_later
             GROUP BY user_id) c USING (user_id)
      LEFT JOIN (SELECT DISTINCT ON (user_id) user_id, created_at, id
                   FROM added WHERE action <> 'decline' AND NOT declined_later
                                AND kind IN ('p2p', 'cash_out', 'merchant_payment')
                  ORDER BY user_id, created_at DESC, id DESC) o USING (user_id)
      LEFT JOIN (SELECT DISTINCT ON (user_id) user_id, created_at, id, amount_minor
                   FROM added WHERE action <> 'decline' AND NOT declined_later
                                AND kind = 'add_funds'
                  ORDER BY user_id, created_at DESC, id DESC) a USING (user_id)
     ORDER BY l.user_id
        ON CONFLICT (user_id) DO UPDATE SET
           movements = s.movements + excluded.movements,
           last_at = CASE WHEN (excluded.last_at, excluded.last_id) > (s.last_at, s.last_id)
                          THEN excluded.last_at ELSE s.last_at END,
           last_id = CASE WHEN (excluded.last_at, excluded.last_id) > (s.last_at, s.last_id)
                          THEN excluded.last_id ELSE s.last_id END,
           last_device_id = CASE WHEN (excluded.last_at, excluded.last_id) > (s.last_at, s.last_id)
                                 THEN excluded.last_device_id ELSE s.last_device_id END,
           last_country = CASE WHEN (excluded.last_at, excluded.last_id) > (s.last_at, s.last_id)
                               THEN excluded.last_country ELSE s.last_country END,
           (last_out_at, last_out_id) =
               (SELECT CASE WHEN newer THEN excluded.last_out_at ELSE s.last_out_at END,
                       CASE WHEN newer THEN excluded.last_out_id ELSE s.last_out_id END
                  FROM (SELECT excluded.last_out_id IS NOT NULL
                               AND (s.last_out_id IS NULL
                                    OR (excluded.last_out_at, excluded.last_out_id)
                                       > (s.last_out_at, s.last_out_id)) AS newer) n),
           (last_add_at, last_add_id, last_add_amount_minor) =
               (SELECT CASE WHEN newer THEN excluded.last_add_at ELSE s.last_add_at END,
                       CASE WHEN newer THEN excluded.last_add_id ELSE s.last_add_id END,
                       CASE WHEN newer THEN excluded.last_add_amount_minor
                            ELSE s.last_add_amount_minor END
                  FROM (SELECT excluded.last_add_id IS NOT NULL
                               AND (s.last_add_id IS NULL
                                    OR (excluded.last_add_at, excluded.last_add_id)
                                       > (s.last_add_at, s.last_add_id)) AS newer) n);

    INSERT INTO risk_pair_summaries AS p
           (user_id, counterparty_id, payments, last_at, last_id, last_amount_minor)
    SELECT l.user_id, l.counterparty_id, c.payments, l.created_at, l.id, l.amount_minor
      FROM (SELECT DISTINCT ON (user_id, counterparty_id)
                   user_id, counterparty_id, created_at, id, amount_minor
              FROM added WHERE action <> 'decline' AND NOT declined_later
                           AND kind = 'p2p' AND counterparty_id IS NOT NULL
             ORDER BY user_id, counterparty_id, created_at DESC, id DESC) l
      JOIN (SELECT user_id, counterparty_id, count(*) AS payments
              FROM added WHERE action <> 'decline' AND NOT declined_later
                           AND kind = 'p2p' AND counterparty_id IS NOT NULL
             GROUP BY user_id, counterparty_id) c USING (user_id, counterparty_id)
     ORDER BY l.user_id, l.counterparty_id
        ON CONFLICT (user_id, counterparty_id) DO UPDATE SET
           payments = p.payments + excluded.payments,
           last_at = CASE WHEN (excluded.last_at, excluded.last_id) > (p.last_at, p.last_id)
                          THEN excluded.last_at ELSE p.last_at END,
           last_id = CASE WHEN (excluded.last_at, excluded.last_id) > (p.last_at, p.last_id)
                          THEN excluded.last_id ELSE p.last_id END,
           last_amount_minor =
               CASE WHEN (excluded.last_at, excluded.last_id) > (p.last_at, p.last_id)
                    THEN excluded.last_amount_minor ELSE p.last_amount_minor END;
    RETURN NULL;
END;
$$;

CREATE TRIGGER risk_summaries_add
    AFTER INSERT ON risk_assessments
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION risk_summaries_add();

-- An assessment that went ahead is declined later (migration 0012's triggers, never_moved):
-- it leaves the counts, and the last movements are found again among the rows that remain
-- (rare: a held movement declined, a movement refused after scoring). A last outgoing
-- movement or add-funds more than 90 days before the last movement is not kept: the past
-- query reads the summary only as of a time after its last movement, and looks back 90 days.
-- Nothing turns a declined assessment into one that went ahead: that is refused.
CREATE FUNCTION risk_summaries_remove() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.action <> 'decline' AND NOT NEW.declined_later THEN
        RAISE EXCEPTION 'risk assessment % was declined and cannot go ahead', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    DELETE FROM risk_user_summaries WHERE user_id = OLD.user_id AND movements = 1;
    UPDATE risk_user_summaries s
       SET movements = s.movements - 1,
           last_at = l.created_at, last_id = l.id,
           last_device_id = l.device_id, last_country = l.country,
           last_out_at = o.created_at, last_out_id = o.id,
           last_add_at = a.created_at, last_add_id = a.id, last_add_amount_minor = a.amount_minor
      FROM (SELECT created_at, id, device_id, country FROM risk_assessments
             WHERE user_id = OLD.user_id AND action <> 'decline' AND NOT declined_later
             ORDER BY created_at DESC, id DESC LIMIT 1) l
      LEFT JOIN LATERAL (
           SELECT created_at, id FROM risk_assessments
            WHERE user_id = OLD.user_id AND action <> 'decline' AND NOT declined_later
              AND kind IN ('p2p', 'cash_out', 'merchant_payment')
              AND created_at > l.created_at - interval '90 days'
            ORDER BY created_at DESC, id DESC LIMIT 1) o ON true
      LEFT JOIN LATERAL (
           SELECT created_at, id, amount_minor FROM risk_assessments
            WHERE user_id = OLD.user_id AND action <> 'decline' AND NOT declined_later
              AND kind = 'add_funds'
              AND created_at > l.created_at - interval '90 days'
            ORDER BY created_at DESC, id DESC LIMIT 1) a ON true
     WHERE s.user_id = OLD.user_id;

    IF OLD.kind = 'p2p' AND OLD.counterparty_id IS NOT NULL THEN
        DELETE FROM risk_pair_summaries
         WHERE user_id = OLD.user_id AND counterparty_id = OLD.counterparty_id
           AND payments = 1;
        UPDATE risk_pair_summaries p
           SET payments = p.payments - 1,
               last_at = l.created_at, last_id = l.id, last_amount_minor = l.amount_minor
          FROM (SELECT created_at, id, amount_minor FROM risk_assessments
                 WHERE counterparty_id = OLD.counterparty_id AND user_id = OLD.user_id
                   AND kind = 'p2p' AND action <> 'decline' AND NOT declined_later
                 ORDER BY created_at DESC, id DESC LIMIT 1) l
         WHERE p.user_id = OLD.user_id AND p.counterparty_id = OLD.counterparty_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER risk_summaries_remove
    AFTER UPDATE OF action, declined_later ON risk_assessments
    FOR EACH ROW
    WHEN ((OLD.action <> 'decline' AND NOT OLD.declined_later)
          IS DISTINCT FROM (NEW.action <> 'decline' AND NOT NEW.declined_later))
    EXECUTE FUNCTION risk_summaries_remove();

-- The summaries of the assessments already stored.
INSERT INTO risk_user_summaries
       (user_id, movements, last_at, last_id, last_device_id, last_country,
        last_out_at, last_out_id, last_add_at, last_add_id, last_add_amount_minor)
SELECT l.user_id, c.movements, l.created_at, l.id, l.device_id, l.country,
       o.created_at, o.id, a.created_at, a.id, a.amount_minor
  FROM (SELECT DISTINCT ON (user_id) user_id, created_at, id, device_id, country
          FROM risk_assessments WHERE action <> 'decline' AND NOT declined_later
         ORDER BY user_id, created_at DESC, id DESC) l
  JOIN (SELECT user_id, count(*) AS movements
          FROM risk_assessments WHERE action <> 'decline' AND NOT declined_later
         GROUP BY user_id) c USING (user_id)
  LEFT JOIN (SELECT DISTINCT ON (user_id) user_id, created_at, id
               FROM risk_assessments WHERE action <> 'decline' AND NOT declined_later
                                      AND kind IN ('p2p', 'cash_out', 'merchant_payment')
              ORDER BY user_id, created_at DESC, id DESC) o USING (user_id)
  LEFT JOIN (SELECT DISTINCT ON (user_id) user_id, created_at, id, amount_minor
               FROM risk_assessments WHERE action <> 'decline' AND NOT declined_later
                                      AND kind = 'add_funds'
              ORDER BY user_id, created_at DESC, id DESC) a USING (user_id);

INSERT INTO risk_pair_summaries
       (user_id, counterparty_id, payments, last_at, last_id, last_amount_minor)
SELECT l.user_id, l.counterparty_id, c.payments, l.created_at, l.id, l.amount_minor
  FROM (SELECT DISTINCT ON (user_id, counterparty_id)
               user_id, counterparty_id, created_at, id, amount_minor
          FROM risk_assessments WHERE action <> 'decline' AND NOT declined_later
                                  AND kind = 'p2p' AND counterparty_id IS NOT NULL
         ORDER BY user_id, counterparty_id, created_at DESC, id DESC) l
  JOIN (SELECT user_id, counterparty_id, count(*) AS payments
          FROM risk_assessments WHERE action <> 'decline' AND NOT declined_later
                                  AND kind = 'p2p' AND counterparty_id IS NOT NULL
         GROUP BY user_id, counterparty_id) c USING (user_id, counterparty_id);
