"""Demo data: alice, bob and carol, each with a wallet holding $500.00, and an ordinary past.

The risk engine's model judges a movement against the user's past; an account minutes old that
pays at once looks like fraud to it. So the demo users come with what two months of paying each
other would have left in the risk engine's memory (demo.past), and the demo's first transfer is
judged as an established user's would be. Their money is only the opening $500."""

from __future__ import annotations

import asyncpg

from billfold.config import Settings
from billfold.ledger.accounts import open_clearing_account
from billfold.ledger.engine import Ledger
from billfold.platform.currency import WALLET_CURRENCY
from billfold.wallet.handles import Handle
from billfold.wallet.users import check_sign_up, do_create_user, find_user, grant_admin

DEMO_PASSWORD = "billfold-demo"  # noqa: S105 - a published demo password, demo data only
# The demo people's PIN: a movement from a device they never used is held for it (step-up).
DEMO_PIN = "1234"
DEMO_PEOPLE = {
    "alice": "+14155550101",
    "bob": "+14155550102",
    "carol": "+14155550103",
}
OPENING_BALANCE_MINOR = 500_00
# An operator for the console (/console): no money, the admin role.
DEMO_OPERATOR = ("olivia", "+14155550109")
# carol's coffee shop, and the key its till signs in with: published, demo data only.
DEMO_SHOP = {"name": "Carol's Coffee", "mcc": "5814", "city": "San Francisco", "country": "US"}
DEMO_SHOP_KEY = "sk_demo_carols_coffee_till_0000000000000000000"


async def seed(pool: asyncpg.Pool, settings: Settings) -> None:
    """Open the demo users and fund them once; running it again changes nothing."""
    bank = await open_clearing_account(pool, WALLET_CURRENCY)
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
                currency=WALLET_CURRENCY,
                code="add_funds",
            )
    finally:
        await ledger.stop()
    await _add_operator(pool)
    await _open_shop(pool)
    await _give_past(pool, settings)


async def _add_operator(pool: asyncpg.Pool) -> None:
    """olivia, who may open the console, once."""
    name, phone = DEMO_OPERATOR
    if await find_user(pool, Handle("username", name)) is None:
        await do_create_user(pool, check_sign_up(name, f"{name}@example.com", phone, DEMO_PASSWORD))
    await grant_admin(pool, name)


async def _open_shop(pool: asyncpg.Pool) -> None:
    """carol's coffee shop, with DEMO_SHOP_KEY, once."""
    from billfold.merchants.keys import digest
    from billfold.merchants.profiles import check_create_merchant, do_create_merchant

    carol = await find_user(pool, Handle("username", "carol"))
    assert carol is not None
    found = await pool.fetchval(
        "SELECT id FROM merchants WHERE owner_id = $1 AND name = $2", carol.id, DEMO_SHOP["name"]
    )
    if found is None:
        shop = await do_create_merchant(pool, carol.id, check_create_merchant(**DEMO_SHOP))
        found = shop.id
    await pool.execute(
        """INSERT INTO merchant_api_keys (merchant_id, prefix, secret_hash) VALUES ($1, $2, $3)
           ON CONFLICT (secret_hash) DO NOTHING""",
        found,
        DEMO_SHOP_KEY[:11],
        digest(DEMO_SHOP_KEY),
    )


async def _give_past(pool: asyncpg.Pool, settings: Settings) -> None:
    """The demo people's PIN (DEMO_PIN, once) and their ordinary past (demo.past)."""
    from billfold.demo.past import give_ordinary_past
    from billfold.platform.redis import create_redis
    from billfold.risk.engine import RulesEngine
    from billfold.risk.rules import RiskRules
    from billfold.wallet import pins
    from billfold.wallet.standing import engine_freezer

    if settings.redis_url is None:
        raise ValueError("demo data needs a Redis URL; run _prepare first")
    redis = await create_redis(settings.redis_url)
    try:
        people = [await find_user(pool, Handle("username", name)) for name in DEMO_PEOPLE]
        ids = [str(user.id) for user in people if user is not None]
        for user in people:
            if user is not None and not await pins.has_pin(pool, user.id):
                change = await pins.check_set_pin(
                    pool,
                    redis,
                    settings,
                    user.id,
                    DEMO_PIN,
                    password=DEMO_PASSWORD,
                    current_pin=None,
                )
                await pins.do_set_pin(pool, change)
        rules = RiskRules.model_validate(settings.risk_rules)
        engine = RulesEngine(pool, redis, rules, freeze=engine_freezer(pool))
        await give_ordinary_past(pool, engine, ids)
    finally:
        await redis.aclose()


# A new user's first minutes, in bash, as the README shows them: sign up, store the sandbox's
# test card, add $100 and pay bob $20, both COMPLETED at once.
WALKTHROUGH = r"""    B=<base>
    J() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
    DEVICE=$(curl -s -H "Content-Type: application/json" $B/api/v1/users -d '{"username": "dana",
      "email": "dana@example.com", "phone": "+14155550199", "password": "dana-secret-1"}' \
      | J device_token)
    TOKEN=$(curl -s -H "X-Device-Id: $DEVICE" -d username=dana -d password=dana-secret-1 \
      $B/api/v1/auth/token | J access_token)
    H=(-H "Authorization: Bearer $TOKEN" -H "X-Device-Id: $DEVICE" \
       -H "Content-Type: application/json")
    ME=$(curl -s "${H[@]}" $B/api/v1/users/me | J user_id)
    CARD=$(curl -s "${H[@]}" $B/api/v1/sandbox/cards/tokenize \
      -d '{"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}' \
      | J token)
    CARD_ID=$(curl -s "${H[@]}" $B/api/v1/cards -d "{\"token\": \"$CARD\"}" | J card_id)
    curl -s "${H[@]}" -H "Idempotency-Key: dana-1" $B/api/v1/wallet/add-funds \
      -d "{\"user_id\": \"$ME\", \"amount\": \"100.00\", \"card_id\": \"$CARD_ID\"}" | J status
    curl -s "${H[@]}" -H "Idempotency-Key: dana-2" $B/api/v1/transfers \
      -d "{\"sender_id\": \"$ME\", \"recipient\": \"@bob\", \"amount\": \"20.00\"}" | J status
"""
# Then carol's coffee shop: dana pays its printed QR code, then a checkout session its till
# opens (with the shop's demo key); the shop refunds part of it and lists its sales.
SHOP_WALKTHROUGH = r"""    K=(-H "Authorization: Bearer <key>" -H "Content-Type: application/json")
    SHOP=$(curl -s "${K[@]}" $B/api/v1/merchant | J merchant_id)
    curl -s "${K[@]}" "$B/api/v1/merchants/$SHOP/qr?format=png" -o shop-qr.png
    QR=$(curl -s "${K[@]}" $B/api/v1/merchants/$SHOP/qr | J payload)
    curl -s "${H[@]}" -H "Idempotency-Key: dana-3" $B/api/v1/payments \
      -d "{\"qr_payload\": \"$QR\", \"amount\": \"4.50\"}" | J status
    SESSION=$(curl -s "${K[@]}" -H "Idempotency-Key: order-1" $B/api/v1/checkout/sessions \
      -d '{"amount": "12.00", "reference": "order 1"}' | J session_id)
    PAID=$(curl -s "${H[@]}" -H "Idempotency-Key: dana-4" $B/api/v1/payments \
      -d "{\"session_id\": \"$SESSION\"}" | J payment_id)
    curl -s "${K[@]}" -H "Idempotency-Key: refund-1" $B/api/v1/payments/$PAID/refunds \
      -d '{"amount": "2.00", "reason": "no oat milk"}' | J status
    curl -s "${K[@]}" $B/api/v1/merchants/$SHOP/payments
"""


def banner(base: str) -> str:
    """What `billfold demo` prints: where to look, and a new user's first minutes (WALKTHROUGH)."""
    walkthrough = WALKTHROUGH.replace("<base>", base)
    shop = SHOP_WALKTHROUGH.replace("<key>", DEMO_SHOP_KEY)
    return f"""
Billfold demo: alice, bob and carol each hold $500.00 (password: {DEMO_PASSWORD}).
  wallet:      {base}/app   (log in as alice, bob or carol, password {DEMO_PASSWORD};
               a first send from a new browser asks for the PIN: {DEMO_PIN})
  business:    {base}/app/merchant   (carol's coffee shop: log in as carol)
  console:     {base}/console   (log in as {DEMO_OPERATOR[0]}, an operator, same password)
  API docs:    {base}/docs
  a new user, in bash: sign up, store the sandbox's test card, add $100, pay bob $20
{walkthrough}  a shop:      dana pays carol's coffee shop, whose till signs in with its key
{shop}  the day's sales: .venv/bin/billfold merchants settlement --out sales.csv
  alice:       curl -s -d username=alice -d password={DEMO_PASSWORD} \\
                 {base}/api/v1/auth/token
  bank and ACH: POST /api/v1/bank-accounts, then /verify, /wallet/add-funds, /wallet/cash-out
               and /api/v1/sandbox/ach/<transfer_id>/settle (see /docs and docs/funding.md)
  told:        curl -s "${{H[@]}}" {base}/api/v1/notifications   (dana's feed)
               .venv/bin/billfold mail list   (the emails kept: bob's "You received $20.00")
               .venv/bin/billfold events tail   (the event stream as it flows)
  the ledger:  .venv/bin/billfold reconcile   (in another terminal)
  logs:        warnings and errors below (BILLFOLD_LOG_LEVEL=INFO logs every request,
               BILLFOLD_LOG_JSON=true as JSON)
Stop with Ctrl+C.
"""
