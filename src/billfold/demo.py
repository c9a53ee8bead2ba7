"""Demo data: alice, bob and carol, each with a wallet holding $500.00, and an ordinary past.

The risk engine's model judges a movement against the user's past; an account minutes old that
pays at once looks like fraud to it. So the demo users come with what two months of paying each
other would have left in the risk engine's memory (risk.past), and the demo's first transfer is
judged as an established user's would be. Their money is only the opening $500."""

from __future__ import annotations

import asyncpg

from billfold.config import Settings
from billfold.ledger.accounts import open_clearing_account
from billfold.ledger.engine import Ledger
from billfold.wallet.handles import Handle
from billfold.wallet.users import check_sign_up, do_create_user, find_user

DEMO_PASSWORD = "billfold-demo"  # noqa: S105 - a published demo password, demo data only
DEMO_PEOPLE = {
    "alice": "+14155550101",
    "bob": "+14155550102",
    "carol": "+14155550103",
}
OPENING_BALANCE_MINOR = 500_00


async def seed(pool: asyncpg.Pool, settings: Settings) -> None:
    """Open the demo users and fund them once; running it again changes nothing."""
    bank = await open_clearing_account(pool, "USD")
    ledger = Ledger(pool, settings)
    await ledger.start()
    try:
        for name, phone in DEMO_PEOPLE.items():
            user = await find_user(pool, Handle("username", name))
            if user is None:
                user = await do_create_user(
                    pool, check_sign_up(name, f"{name}@example.com", phone, DEMO_PASSWORD)
                )
            # The idempotency key makes a second seed replay this instead of paying again.
            await ledger.move(
                "demo",
                f"fund-{name}",
                debit_account_id=bank.id,
                credit_account_id=user.account_id,
                amount_minor=OPENING_BALANCE_MINOR,
                currency="USD",
                code="add_funds",
            )
    finally:
        await ledger.stop()
    await _give_past(pool, settings)


async def _give_past(pool: asyncpg.Pool, settings: Settings) -> None:
    from billfold.platform.redis import create_redis
    from billfold.risk.engine import RulesEngine
    from billfold.risk.past import give_ordinary_past

    if settings.redis_url is None:
        raise ValueError("demo data needs a Redis URL; run _prepare first")
    redis = await create_redis(settings.redis_url)
    try:
        people = [await find_user(pool, Handle("username", name)) for name in DEMO_PEOPLE]
        ids = [str(user.id) for user in people if user is not None]
        await give_ordinary_past(pool, RulesEngine(pool, redis, settings.risk_rules), ids)
    finally:
        await redis.aclose()


def banner(base: str) -> str:
    """What `billfold demo` prints: where to look and how to move money with curl."""
    auth = '-H "Authorization: Bearer $TOKEN"'
    return f"""
Billfold demo: alice, bob and carol each hold $500.00 (password: {DEMO_PASSWORD}).
  API docs:    {base}/docs
  log in:      curl -s -d username=alice -d password={DEMO_PASSWORD} {base}/api/v1/auth/token
  then:        export TOKEN=<the access_token it printed>
               (its device_token goes back as -H "X-Device-Id: ..."; without it, no device)
  who am I:    curl -s {auth} {base}/api/v1/users/me
  balance:     curl -s {auth} {base}/api/v1/wallet/<your user_id>
  send money:  curl -s {auth} -H "Idempotency-Key: demo-1" \\
                 -H "Content-Type: application/json" {base}/api/v1/transfers \\
                 -d '{{"sender_id": "<your user_id>", "recipient": "@bob", "amount": "12.50"}}'
  add funds:   a test card from the sandbox processor, then add $20 from it:
               curl -s {auth} -H "Content-Type: application/json" \\
                 {base}/api/v1/sandbox/cards/tokenize \\
                 -d '{{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}'
               curl -s {auth} -H "Content-Type: application/json" {base}/api/v1/cards \\
                 -d '{{"token": "<the token>"}}'
               curl -s {auth} -H "Idempotency-Key: demo-2" -H "Content-Type: application/json" \\
                 {base}/api/v1/wallet/add-funds \\
                 -d '{{"user_id": "<your user_id>", "amount": "20.00", "card_id": "<the card_id>"}}'
  bank and ACH: POST /api/v1/bank-accounts, then /verify, /wallet/add-funds, /wallet/cash-out
               and /api/v1/sandbox/ach/<transfer_id>/settle (see /docs and docs/funding.md)
  the ledger:  .venv/bin/billfold reconcile   (in another terminal)
Stop with Ctrl+C.
"""
