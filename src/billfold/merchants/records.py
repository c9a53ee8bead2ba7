"""A merchant payment's rows, written by the ledger in the transaction that moves (or holds, or
posts, or voids) its money: ledger side statements (ledger.model.SideRow), given to the app's
Ledger (SIDE_STATEMENTS). So a payment is recorded if and only if its money moved, once
whatever the retries (a replayed key writes no side row), and the session it pays is marked
paid in the same commit. The claim on the session (merchants.checkout) is what makes that
safe: only its claimer's payment reaches the ledger.
"""

from __future__ import annotations

import uuid

from billfold.ledger.model import SideRow

# A payment made (COMPLETED) or held (PENDING_*): its row, its transfer found by the payer's
# idempotency key (the ledger writes idempotency_keys in the batch's first statement), and, if
# completed, its session paid. The parameters come as text, as the ledger sends its own; the
# last is the ledger's: whether it refused the command (then nothing is written).
RECORD_NAME = "billfold_record_merchant_payments"
RECORD = """
WITH made AS (
    INSERT INTO merchant_payments (id, merchant_id, payer_id, session_id, transfer_id,
                                   amount_minor, fee_minor, currency, status, note,
                                   idempotency_key, created_at)
    SELECT u.id, u.merchant_id, u.payer_id, u.session_id, k.transfer_id, u.amount_minor,
           u.fee_minor, u.currency, u.status, u.note, u.key, t.created_at
      FROM unnest($1::text::uuid[], $2::text::uuid[], $3::text::uuid[], $4::text::uuid[],
                  $5::text::text[], $6::text::text[], $7::text::bigint[], $8::text::bigint[],
                  $9::text::text[], $10::text::text[], $11::text::text[], $12::text::boolean[])
           AS u(id, merchant_id, payer_id, session_id, client_id, key, amount_minor,
                fee_minor, currency, status, note, refused)
      JOIN idempotency_keys k ON k.client_id = u.client_id AND k.key = u.key
      -- A key's outcome and its transfer are written with one time: one month probed.
      JOIN transfers t ON t.id = k.transfer_id AND t.created_at = k.created_at
     WHERE NOT u.refused
    RETURNING id, session_id, status, created_at
)
UPDATE checkout_sessions s SET status = 'paid', payment_id = m.id, closed_at = m.created_at
  FROM made m
 WHERE s.id = m.session_id AND m.status = 'COMPLETED' AND s.status = 'open'
"""

# A held payment decided (its hold posted: COMPLETED, or voided: DECLINED): its status, and its
# session paid, or its claim on the session given up (the session is open again, for another
# payer, unless its time is up: then the next read or sweep expires it).
RESOLVE_NAME = "billfold_resolve_merchant_payments"
RESOLVE = """
WITH decided AS (
    UPDATE merchant_payments p SET status = u.status, decided_at = now()
      FROM unnest($1::text::uuid[], $2::text::text[], $3::text::boolean[])
           AS u(id, status, refused)
     WHERE p.id = u.id AND NOT u.refused
       AND p.status IN ('PENDING_VERIFICATION', 'PENDING_REVIEW')
    RETURNING p.id, p.session_id, p.status
)
UPDATE checkout_sessions s
   SET status = CASE WHEN d.status = 'COMPLETED' THEN 'paid' ELSE 'open' END,
       payment_id = CASE WHEN d.status = 'COMPLETED' THEN d.id END,
       closed_at = CASE WHEN d.status = 'COMPLETED' THEN now() END,
       claimed_by = CASE WHEN d.status = 'COMPLETED' THEN s.claimed_by END,
       claim_key = CASE WHEN d.status = 'COMPLETED' THEN s.claim_key END,
       claimed_at = CASE WHEN d.status = 'COMPLETED' THEN s.claimed_at END
  FROM decided d
 WHERE s.id = d.session_id AND s.status = 'open'
"""

SIDE_STATEMENTS = {RECORD_NAME: RECORD, RESOLVE_NAME: RESOLVE}


def recorded(
    payment_id: uuid.UUID,
    merchant_id: uuid.UUID,
    payer_id: uuid.UUID,
    session_id: uuid.UUID | None,
    client: str,
    key: str,
    amounts: tuple[int, int, str],
    status: str,
    note: str | None,
) -> SideRow:
    """The RECORD row of a payment made or held: `amounts` is (amount, fee, currency)."""
    amount_minor, fee_minor, currency = amounts
    return RECORD_NAME, (
        str(payment_id),
        str(merchant_id),
        str(payer_id),
        str(session_id) if session_id else None,
        client,
        key,
        amount_minor,
        fee_minor,
        currency,
        status,
        note,
    )


def resolved(payment_id: uuid.UUID, status: str) -> SideRow:
    """The RESOLVE row of a held payment decided: COMPLETED or DECLINED."""
    return RESOLVE_NAME, (str(payment_id), status)
