"""The past query: what PostgreSQL holds of a user's and a recipient's past, in one statement
(risk.serving puts its rows into the history the features read), and the statement that
remembers where a user acts from."""

from __future__ import annotations

from datetime import timedelta

from billfold.risk.history import ADDRESS_MAX_ACCOUNTS, MAX_WINDOW_ENTRIES

LOOKBACK = timedelta(days=90)
# A known place's last-seen time is written again only when this much older: the features read
# it in 30-day windows, and most movements then write nothing.
PLACE_REFRESH = 3600.0
# The lifetime count and the count of earlier payments to the recipient are read row by row;
# counting further than the model tells apart would cost a heavy user's (or a rent or payroll
# pair's) every movement reads and change no score. The shipped model splits them below 60 and
# 3; tests/risk/test_model.py fails for a model that splits either at the cap or above.
COUNT_CAP = 256
# A window of a person's movements holds at most this many, the newest, as `UserHistory`'s
# deques do in training: a payment to someone paid thousands of times a day reads as many rows
# as one to anyone else, not all of that day's.
WINDOW = MAX_WINDOW_ENTRIES
OUTGOING = ("p2p", "cash_out", "merchant_payment")
OUTGOING_SQL = ", ".join(f"'{kind}'" for kind in OUTGOING)  # as the query lists them

# An assessed movement that went ahead: not declined, and not held and then declined.
WENT_AHEAD = "action <> 'decline' AND NOT declined_later"
WENT_AHEAD_I = "i.action <> 'decline' AND NOT i.declined_later"

# $1 user, $2 recipient (or NULL), $3 device (or NULL), $4 the time of the movement,
# $5 its address block (or NULL), $6 its exact address (or NULL). Timestamps come back as epoch
# seconds, the features' unit.
#
# Each table is read once per person where one read can answer several questions. The user's
# last outgoing movement, last add-funds and last incoming transfer are usually among the rows
# already read (the 30 days of events, the 7 days received): `past_of` takes them from there,
# and the query looks further back (last_out, last_add, last_in) only for a user whose recent
# rows hold none; a subquery in a CASE branch not taken is never run.
PAST = f"""
SELECT extract(epoch FROM u.created_at)::float8 AS signup,
       u.status = 'frozen' AS frozen,
       EXISTS (SELECT 1 FROM bank_accounts
                WHERE user_id = $1 AND status = 'verified') AS verified_bank,
       c.home_country,
       ev.events,
       inc.received,
       last.at AS last_at, last.device_id AS last_device, last.country AS last_country,
       CASE WHEN NOT ev.any_out THEN (
           SELECT extract(epoch FROM max(created_at))::float8 FROM (
               SELECT created_at FROM risk_assessments
                WHERE user_id = $1 AND kind IN ({OUTGOING_SQL})
                  AND {WENT_AHEAD}
                  AND created_at > $4 - interval '{LOOKBACK.days} days' AND created_at <= $4
                ORDER BY created_at DESC LIMIT 1) o)
       END AS last_out,
       CASE WHEN inc.received IS NULL THEN (
           SELECT extract(epoch FROM created_at)::float8 FROM risk_assessments
            WHERE counterparty_id = $1 AND kind = 'p2p' AND {WENT_AHEAD}
              AND created_at <= $4
            ORDER BY created_at DESC LIMIT 1)
       END AS last_in,
       CASE WHEN NOT ev.any_add THEN (
           SELECT json_build_array(extract(epoch FROM created_at), amount_minor)
             FROM risk_assessments
            WHERE user_id = $1 AND kind = 'add_funds' AND {WENT_AHEAD}
              AND created_at > $4 - interval '{LOOKBACK.days} days' AND created_at <= $4
            ORDER BY created_at DESC LIMIT 1)
       END AS last_add,
       (SELECT count(*) FROM (SELECT 1 FROM risk_assessments
                               WHERE user_id = $1 AND {WENT_AHEAD} AND created_at <= $4
                               LIMIT {COUNT_CAP}) l) AS lifetime,
       d.has_devices,
       d.devices,
       (SELECT count(*) FROM (SELECT 1 FROM user_devices
                               WHERE device_id = $3 AND user_id <> $1
                                 AND first_seen_at <= $4 LIMIT 1000) d)
           AS device_other_users,
       c.countries,
       (SELECT extract(epoch FROM last_seen_at)::float8 FROM user_networks
         WHERE user_id = $1 AND prefix = $5 AND first_seen_at <= $4) AS network_seen,
       CASE WHEN u.created_at > $4 - interval '30 days' THEN (
           SELECT extract(epoch FROM last_seen_at)::float8 FROM user_addresses
            WHERE user_id = $1 AND address = $6 AND first_seen_at <= $4)
       END AS address_seen,
       CASE WHEN u.created_at > $4 - interval '30 days'
                 AND EXISTS (SELECT 1 FROM user_addresses
                              WHERE user_id = $1 AND address = $6
                                AND first_seen_at <= $4 - interval '1 day') THEN (
           SELECT json_build_array(
                  count(*) FILTER (WHERE a.user_id <> $1
                                     AND a.last_seen_at > $4 - interval '30 days'
                                     AND o.created_at > $4 - interval '30 days'),
                  count(*) FILTER (WHERE a.user_id <> $1 AND (
                      EXISTS (SELECT 1 FROM risk_assessments
                               WHERE user_id = $1 AND counterparty_id = a.user_id
                                 AND kind = 'p2p' AND {WENT_AHEAD} AND created_at <= $4)
                      OR EXISTS (SELECT 1 FROM risk_assessments
                                  WHERE user_id = a.user_id AND counterparty_id = $1
                                    AND kind = 'p2p' AND {WENT_AHEAD} AND created_at <= $4))),
                  count(*))
             FROM (SELECT user_id, last_seen_at FROM user_addresses
                    WHERE address = $6 AND first_seen_at <= $4
                    LIMIT {ADDRESS_MAX_ACCOUNTS + 1}) a
             JOIN users o ON o.id = a.user_id)
       END AS address_links,
       (SELECT count(*) FROM (SELECT 1 FROM risk_assessments
                               WHERE user_id = $1 AND counterparty_id = $2 AND kind = 'p2p'
                                 AND {WENT_AHEAD} AND created_at <= $4
                               LIMIT {COUNT_CAP}) p) AS times_paid,
       (SELECT json_build_array(extract(epoch FROM created_at), amount_minor)
          FROM risk_assessments
         WHERE user_id = $2 AND counterparty_id = $1 AND kind = 'p2p' AND {WENT_AHEAD}
           AND created_at <= $4
         ORDER BY created_at DESC LIMIT 1) AS paid_by_them,
       extract(epoch FROM r.created_at)::float8 AS their_signup,
       coalesce(r.flagged, false) AS their_flag,
       (SELECT json_agg(json_build_array(extract(epoch FROM i.created_at), i.amount_minor,
                        i.user_id, i.sender_new) ORDER BY i.created_at, i.id)
          FROM (SELECT * FROM risk_assessments i
                 WHERE i.counterparty_id = $2 AND i.kind = 'p2p' AND {WENT_AHEAD_I}
                   AND i.created_at > $4 - interval '1 day' AND i.created_at <= $4
                 ORDER BY i.created_at DESC, i.id DESC LIMIT {WINDOW}) i) AS their_received,
       (SELECT json_agg(extract(epoch FROM o.created_at) ORDER BY o.created_at, o.id)
          FROM (SELECT created_at, id FROM risk_assessments
                 WHERE user_id = $2 AND kind IN ({OUTGOING_SQL})
                   AND {WENT_AHEAD}
                   AND created_at > $4 - interval '1 day' AND created_at <= $4
                 ORDER BY created_at DESC, id DESC LIMIT {WINDOW}) o) AS their_sent
  FROM users u
  LEFT JOIN LATERAL (SELECT extract(epoch FROM created_at)::float8 AS at, device_id, country
                       FROM risk_assessments
                      WHERE user_id = u.id AND {WENT_AHEAD} AND created_at <= $4
                      ORDER BY created_at DESC LIMIT 1) last ON true
  CROSS JOIN LATERAL (
       SELECT json_agg(json_build_array(extract(epoch FROM e.created_at), e.kind,
                       e.counterparty_id, e.amount_minor, e.rail, e.new_payee, e.action)
                       ORDER BY e.created_at, e.id) AS events,
              coalesce(bool_or(e.kind IN ({OUTGOING_SQL})), false)
                  AS any_out,
              coalesce(bool_or(e.kind = 'add_funds'), false) AS any_add
         FROM (SELECT * FROM risk_assessments
                WHERE user_id = $1 AND {WENT_AHEAD}
                  AND created_at > $4 - interval '30 days' AND created_at <= $4
                ORDER BY created_at DESC LIMIT {WINDOW}) e) ev
  CROSS JOIN LATERAL (
       SELECT json_agg(json_build_array(extract(epoch FROM i.created_at), i.amount_minor,
                       i.user_id, i.sender_new) ORDER BY i.created_at, i.id) AS received
         FROM (SELECT * FROM risk_assessments i
                WHERE i.counterparty_id = $1 AND i.kind = 'p2p' AND {WENT_AHEAD_I}
                  AND i.created_at > $4 - interval '7 days' AND i.created_at <= $4
                ORDER BY i.created_at DESC, i.id DESC LIMIT {WINDOW}) i) inc
  CROSS JOIN LATERAL (
       SELECT count(*) > 0 AS has_devices,
              json_agg(json_build_array(device_id, extract(epoch FROM first_seen_at),
                       extract(epoch FROM last_seen_at)) ORDER BY device_id)
                  FILTER (WHERE device_id = $3 OR last_seen_at > $4 - interval '30 days')
                  AS devices
         FROM user_devices
        WHERE user_id = $1 AND first_seen_at <= $4) d
  CROSS JOIN LATERAL (
       SELECT (array_agg(country ORDER BY first_seen_at, country)
                 FILTER (WHERE first_seen_at <= $4))[1] AS home_country,
              json_agg(json_build_array(country, extract(epoch FROM last_seen_at))
                       ORDER BY last_seen_at) FILTER (WHERE first_seen_at <= $4) AS countries
         FROM user_countries WHERE user_id = $1) c
  LEFT JOIN users r ON r.id = $2
 WHERE u.id = $1
"""

# PAST for many movements at once, in one statement: row n (from 1) of the arrays is movement n,
# and a movement whose user does not exist has no row. (PAST's parameters are $1 to $6 only.)
_PAST_PER_ROW = PAST
for _parameter, _column in (
    ("$1", "uid"),
    ("$2", "rid"),
    ("$3", "dev"),
    ("$4", "ts"),
    ("$5", "net"),
    ("$6", "addr"),
):
    _PAST_PER_ROW = _PAST_PER_ROW.replace(_parameter, f"q.{_column}")
PAST_MANY = f"""
SELECT q.n, x.*
  FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
       WITH ORDINALITY AS q(uid, rid, dev, ts, net, addr, n)
 CROSS JOIN LATERAL ({_PAST_PER_ROW}) x
"""

# Known places are remembered when a movement goes ahead, and at signup: one round trip. An
# exact address only while the account is under 30 days old: the address features read no other
# (history.HistoryState.address_links).
REMEMBER = """
WITH device AS (
    INSERT INTO user_devices AS d (user_id, device_id, first_seen_at, last_seen_at)
    SELECT $1, $2::text, $5, $5 WHERE $2::text IS NOT NULL
    ON CONFLICT (user_id, device_id) DO UPDATE
       SET last_seen_at = greatest(d.last_seen_at, excluded.last_seen_at)
), country AS (
    INSERT INTO user_countries AS c (user_id, country, first_seen_at, last_seen_at)
    SELECT $1, $3::char(2), $5, $5 WHERE $3::char(2) IS NOT NULL
    ON CONFLICT (user_id, country) DO UPDATE
       SET last_seen_at = greatest(c.last_seen_at, excluded.last_seen_at)
), network AS (
    INSERT INTO user_networks AS n (user_id, prefix, first_seen_at, last_seen_at)
    SELECT $1, $4::text, $5, $5 WHERE $4::text IS NOT NULL
    ON CONFLICT (user_id, prefix) DO UPDATE
       SET last_seen_at = greatest(n.last_seen_at, excluded.last_seen_at)
)
INSERT INTO user_addresses AS a (user_id, address, first_seen_at, last_seen_at)
SELECT $1, $6::text, $5, $5
 WHERE $6::text IS NOT NULL
   AND EXISTS (SELECT 1 FROM users WHERE id = $1 AND created_at > $5 - interval '30 days')
ON CONFLICT (user_id, address) DO UPDATE
   SET last_seen_at = greatest(a.last_seen_at, excluded.last_seen_at)
"""
