"""Funding movements against the ledger: each status must match what the ledger did.

`funding_transfers` is a projection of the ledger's holds, posts, voids and claw-backs (see
funding.rails). These checks find a row whose status says one thing while the ledger did
another, and ledger holds of a movement that has no row. A movement the risk engine holds or
declined is checked too: a held cash-out reserves its money, a declined one gave it back, and a
held or declined add-funds is in the ledger not at all. An event being applied at the moment
of the check can show up once (its ledger step done, its status not yet): run it again, or when
the service is quiet, before acting on a single finding.
"""

from __future__ import annotations

import asyncpg

# Each query returns (id, what is wrong) for the rows breaking one rule.
CHECKS = [
    # Pending ACH movements hold their money (unless an add-funds was advanced in full, or is
    # held by risk and so not booked yet).
    """
    SELECT f.id, 'pending, but its hold ' ||
           CASE WHEN f.hold_id IS NULL THEN 'was never booked' ELSE 'is resolved' END
      FROM funding_transfers f
     WHERE f.rail = 'ach' AND f.status = 'pending'
       AND f.purpose IN ('add_funds', 'cash_out', 'payout')
       AND f.amount_minor > f.advance_minor
       AND (f.purpose IN ('cash_out', 'payout') OR f.risk_status IS NULL)
       AND (f.hold_id IS NULL
            OR EXISTS (SELECT 1 FROM hold_resolutions r WHERE r.hold_id = f.hold_id))
    """,
    # Settled movements have their hold posted.
    """
    SELECT f.id, 'settled, but its hold was not posted'
      FROM funding_transfers f
     WHERE f.status = 'settled' AND f.hold_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM hold_resolutions r
                        WHERE r.hold_id = f.hold_id AND r.kind = 'post')
    """,
    # Returned movements: nothing still pending, and money that arrived was taken back.
    """
    SELECT f.id, 'returned, but its hold is still pending'
      FROM funding_transfers f
     WHERE f.status = 'returned' AND f.hold_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM hold_resolutions r WHERE r.hold_id = f.hold_id)
    """,
    """
    SELECT f.id, 'returned after reaching the wallet, but nothing was clawed back'
      FROM funding_transfers f
     WHERE f.status = 'returned' AND f.purpose = 'add_funds'
       AND (f.rail = 'card' OR f.advance_minor > 0
            OR EXISTS (SELECT 1 FROM hold_resolutions r
                        WHERE r.hold_id = f.hold_id AND r.kind = 'post'))
       AND NOT EXISTS (SELECT 1 FROM idempotency_keys k
                        WHERE k.client_id = 'funding' AND k.key = f.id || ':clawback'
                          AND k.transfer_id IS NOT NULL)
    """,
    """
    SELECT f.id, 'a ' || f.purpose || ' returned after it was paid, but its money was not put back'
      FROM funding_transfers f
     WHERE f.status = 'returned' AND f.purpose IN ('cash_out', 'payout')
       AND EXISTS (SELECT 1 FROM hold_resolutions r WHERE r.hold_id = f.hold_id AND r.kind = 'post')
       AND NOT EXISTS (SELECT 1 FROM idempotency_keys k
                        WHERE k.client_id = 'funding' AND k.key = f.id || ':reverse'
                          AND k.transfer_id IS NOT NULL)
    """,
    # A payout's hold took its money from the account the payout names, for its amount.
    """
    SELECT f.id, 'a payout whose hold is not from its merchant account for its amount'
      FROM funding_transfers f
     WHERE f.purpose = 'payout'
       AND NOT EXISTS (SELECT 1 FROM entries e
                        WHERE e.transfer_id = f.hold_id AND e.account_id = f.account_id
                          AND e.amount_minor = -f.amount_minor)
    """,
    # Card add-funds credited the wallet once charged.
    """
    SELECT f.id, 'a card add-funds the ledger never credited'
      FROM funding_transfers f
     WHERE f.rail = 'card' AND f.status NOT IN ('pending', 'declined')
       AND (f.posted_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = f.posted_id))
    """,
    # A declined cash-out gave its money back.
    """
    SELECT f.id, 'a declined ' || f.purpose || ' whose hold was not voided'
      FROM funding_transfers f
     WHERE f.status = 'declined' AND f.purpose IN ('cash_out', 'payout')
       AND NOT EXISTS (SELECT 1 FROM hold_resolutions r
                        WHERE r.hold_id = f.hold_id AND r.kind = 'void')
    """,
    # An add-funds the risk engine holds or declined moved nothing in the ledger.
    """
    SELECT f.id, 'a held or declined add-funds the ledger booked'
      FROM funding_transfers f
     WHERE f.purpose = 'add_funds' AND (f.risk_status IS NOT NULL OR f.status = 'declined')
       AND (f.hold_id IS NOT NULL OR f.posted_id IS NOT NULL
            OR EXISTS (SELECT 1 FROM idempotency_keys k
                        WHERE k.client_id = 'funding' AND k.transfer_id IS NOT NULL
                          AND k.key IN (f.id || ':hold', f.id || ':advance', f.id || ':capture')))
    """,
    # Every hold of a movement belongs to a recorded movement.
    """
    SELECT (t.metadata ->> 'funding_id')::uuid,
           'a ledger hold (' || t.id || ') of no recorded movement'
      FROM transfers t
     WHERE t.kind = 'hold' AND t.code IN ('add_funds', 'cash_out', 'payout')
       AND t.metadata ? 'funding_id'
       AND NOT EXISTS (SELECT 1 FROM funding_transfers f
                        WHERE f.id = (t.metadata ->> 'funding_id')::uuid)
    """,
]
MAX_LISTED = 1000


async def check_funding(pool: asyncpg.Pool) -> list[str]:
    """One line per discrepancy (at most MAX_LISTED), naming the movement and the rule."""
    problems: list[str] = []
    async with pool.acquire() as conn:
        for check in CHECKS:
            rows = await conn.fetch(f"{check} LIMIT {MAX_LISTED}")
            problems += [f"funding transfer {row[0]}: {row[1]}" for row in rows]
    return problems[:MAX_LISTED]
