"""A merchant's payouts (merchants.payouts, merchants.schedule over funding's cash-out rail): the
money held in the merchant account, sent as a CCD credit in the NACHA file, settled or returned
to the merchant account (never the owner's wallet), told as payout.*; the daily schedule pays
each merchant once a day however many runs there are. The ledger reconciles after each test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from billfold.config import Settings
from billfold.funding import ach, risk_holds
from billfold.funding.ach.files import export_file, import_returns
from billfold.funding.actions import payout_key
from billfold.funding.bank_accounts import unlink
from billfold.funding.movements import movement_id
from billfold.funding.reconcile import check_funding
from billfold.funding.service import FundingTransfer
from billfold.ledger.accounts import get_account, open_clearing_account
from billfold.ledger.errors import InsufficientFunds
from billfold.ledger.reconcile import reconcile
from billfold.merchants import payouts, profiles, schedule
from billfold.merchants.profiles import Merchant
from billfold.platform import tasks
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed, WalletFrozen
from billfold.risk.gate import Origin
from billfold.wallet.pins import WrongPin
from billfold.wallet.users import User
from billfold_bench.rules import LOAD_TEST_RULES
from tests.events.told import about, told_to
from tests.world import World, billfold, running_app

pytestmark = pytest.mark.usefixtures("reconciled")
NUMBER = "000123456789"
NOWHERE = Origin(None, None, None)
PIN = "2468"


@pytest.fixture(scope="module")
def settings(isolated_settings: Settings) -> Settings:
    """A database of this module's own: a daily run pays every daily merchant in the database,
    and the NACHA export sends every pending entry."""
    return isolated_settings


@pytest.fixture(scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    async with running_app(settings, risk_rules=LOAD_TEST_RULES) as app:
        yield World(app)


@pytest.fixture
async def reconciled(world: World) -> AsyncIterator[None]:
    """After the test: the ledger reconciles, and every movement's status matches it."""
    yield
    report = await reconcile(world.state.pool)
    assert report.ok, report.render()
    assert await check_funding(world.state.pool) == []


async def merchant_of(world: World, owner: User, balance_minor: int) -> Merchant:
    """A business profile of the owner's, its merchant account holding `balance_minor` (moved
    in from a test clearing account, as payments to it would)."""
    new = profiles.check_create_merchant("Matrix Cafe", "5814", "Oakland", "US")
    merchant = await profiles.do_create_merchant(world.state.pool, owner.id, new)
    if balance_minor:
        await fund(world, merchant, balance_minor)
    return merchant


async def fund(world: World, merchant: Merchant, amount_minor: int) -> None:
    """Money into the merchant account from a test clearing account."""
    bank = await open_clearing_account(world.state.pool, "USD", name="test:bank_clearing:USD")
    await world.state.ledger.move(
        "test",
        str(uuid.uuid4()),
        debit_account_id=bank.id,
        credit_account_id=merchant.account_id,
        amount_minor=amount_minor,
        currency="USD",
        code="test",
    )


async def owner_with_bank(world: World, wallet_minor: int = 0) -> tuple[User, str]:
    owner = await world.person(wallet_minor)
    return owner, await world.bank(owner, NUMBER)


async def pay_out(
    world: World,
    owner: User,
    merchant: Merchant,
    amount: str,
    bank: str,
    *,
    key: str | None = None,
    origin: Origin = NOWHERE,
) -> dict[str, Any]:
    """merchants.payouts.request_payout, as the API handler calls it: the payout's view."""
    asked = payouts.PayoutAsked(str(merchant.id), amount, bank, key or uuid.uuid4().hex)
    view, _ = await payouts.request_payout(world.state.funding, world.gate(), owner, asked, origin)
    return view


async def balances(world: World, merchant: Merchant) -> tuple[int, int]:
    """(posted, available) of the merchant account, in cents."""
    account = await get_account(world.state.pool, merchant.account_id)
    return account.posted_minor, account.available_minor


async def movement(world: World, payout_id: str) -> FundingTransfer:
    row = await world.state.pool.fetchrow(
        "SELECT * FROM funding_transfers WHERE id = $1", uuid.UUID(payout_id)
    )
    return FundingTransfer.from_row(row)


async def test_a_payout_is_held_sent_as_a_ccd_credit_and_paid(world: World, tmp_path: Path) -> None:
    """The merchant's money is held at once (the owner's wallet untouched); the day's NACHA
    file carries a CCD credit of the amount to the owner's account; settled, the hold posts.
    Told payout.requested then payout.paid, never cashout.*; no account number anywhere but
    the file."""
    owner, bank = await owner_with_bank(world, 5_00)
    merchant = await merchant_of(world, owner, 50_00)
    view = await pay_out(world, owner, merchant, "30.00", bank)
    assert view["status"] == "PENDING"
    assert (view["merchant_id"], view["amount"], view["bank_account_id"]) == (
        str(merchant.id),
        "30.00",
        bank,
    )
    assert await balances(world, merchant) == (50_00, 20_00)
    assert (await world.wallet(owner))["balance"] == "5.00"

    out = tmp_path / "out.ach"
    assert await export_file(world.state.funding, out) >= 1
    sent = ach.parse(out.read_text())
    ft = await movement(world, view["payout_id"])
    [(batch, entry)] = [
        (b, e) for b in sent.batches for e in b.entries if e.trace_number == ft.trace_number
    ]
    assert (batch.sec_code, batch.service_class_code, batch.entry_description) == (
        "CCD",
        220,
        "SETTLEMENT",
    )
    assert (entry.transaction_code, entry.amount_minor) == (22, 30_00)
    assert entry.account_number.strip() == NUMBER
    assert entry.individual_name.strip() == "ADA LOVELACE"

    settled = await world.partner(owner, "ach.settled", ft)
    assert settled.status == "applied", settled
    got = await payouts.get_payout(world.state.pool, owner.id, str(merchant.id), str(ft.id))
    assert got["status"] == "COMPLETED"
    assert await balances(world, merchant) == (20_00, 20_00)
    assert await about(world.state.pool, f"payout/{ft.id}") == ["payout.requested", "payout.paid"]
    assert await about(world.state.pool, f"funding/{ft.id}") == []
    told = await told_to(world.state.pool, owner.id, "payout.paid")
    assert told[0].data == {
        "payout_id": str(ft.id),
        "merchant_id": str(merchant.id),
        "user_id": str(owner.id),
        "rail": "ach",
        "bank_account_id": bank,
        "amount": "30.00",
        "currency": "USD",
        "return_code": None,
    }
    assert told[0].ordering_key == f"user/{owner.id}"
    everything = [orjson.dumps(t.data).decode() for t in await told_to(world.state.pool, owner.id)]
    assert all(NUMBER not in text for text in [*everything, str(view), str(got)])


async def test_a_returned_payout_puts_the_money_back_in_the_merchant_account(
    world: World, tmp_path: Path
) -> None:
    """Returned while pending (the bank's returns file) or after it was paid (the partner's
    webhook): the money is back in the merchant account, the owner's wallet unchanged, and
    each is told payout.returned with its code."""
    owner, bank = await owner_with_bank(world)
    merchant = await merchant_of(world, owner, 40_00)
    pending = await pay_out(world, owner, merchant, "15.00", bank)
    paid = await pay_out(world, owner, merchant, "5.00", bank)
    assert await balances(world, merchant) == (40_00, 20_00)

    out = tmp_path / "out.ach"
    await export_file(world.state.funding, out)
    sent = ach.parse(out.read_text())
    trace = (await movement(world, pending["payout_id"])).trace_number
    returns = ach.make_returns_file(sent, {trace: "R03"}, created_at=datetime.now(UTC))
    report = await import_returns(world.state.funding, ach.write(returns), name="returns.ach")
    assert (report.applied, report.refused) == (1, [])

    settled = await movement(world, paid["payout_id"])
    await world.partner(owner, "ach.settled", settled)
    assert await balances(world, merchant) == (35_00, 35_00)
    back = await world.partner(owner, "ach.returned", settled, return_code="R01")
    assert back.status == "applied", back
    assert await balances(world, merchant) == (40_00, 40_00)
    assert (await world.wallet(owner))["balance"] == "0.00"

    listed = await payouts.list_payouts(world.state.pool, owner.id, str(merchant.id), 10, None)
    assert [(p["status"], p["return_code"]) for p in listed["payouts"]] == [
        ("RETURNED", "R01"),
        ("RETURNED", "R03"),
    ]
    pool = world.state.pool
    for made in (pending, paid):
        kinds = await about(pool, f"payout/{made['payout_id']}")
        assert kinds[0] == "payout.requested" and kinds[-1] == "payout.returned"
        assert "cashout.returned" not in kinds
    returned = await told_to(pool, owner.id, "payout.returned")
    assert sorted(t.data["return_code"] for t in returned) == ["R01", "R03"]


async def test_more_than_the_merchant_has_is_refused_and_nothing_changes(world: World) -> None:
    """A payout over the merchant account's available balance is insufficient_funds, whatever
    the owner's wallet holds: no movement, no event, no money held."""
    owner, bank = await owner_with_bank(world, 100_00)
    merchant = await merchant_of(world, owner, 10_00)
    with pytest.raises(InsufficientFunds) as refused:
        await pay_out(world, owner, merchant, "10.01", bank)
    assert (refused.value.status, refused.value.code) == (422, "insufficient_funds")
    assert await balances(world, merchant) == (10_00, 10_00)
    assert (await world.wallet(owner))["balance"] == "100.00"
    pool = world.state.pool
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM funding_transfers WHERE merchant_id = $1", merchant.id
        )
        == 0
    )
    assert await told_to(pool, owner.id, "payout.requested") == []


async def test_only_the_owner_pays_out_and_only_to_a_verified_account_of_theirs(
    world: World,
) -> None:
    """Another person's merchant and another person's bank account are 404 as missing ones
    are; an unverified account is 422; a frozen owner pays nothing out. Nothing moves."""
    owner, bank = await owner_with_bank(world)
    merchant = await merchant_of(world, owner, 10_00)
    stranger, their_bank = await owner_with_bank(world)
    unverified = await world.bank(owner, "55554444", verified=False)
    cases: list[tuple[User, str, str]] = [
        (stranger, str(merchant.id), their_bank),
        (owner, str(uuid.uuid4()), bank),
        (owner, str(merchant.id), their_bank),
        (owner, str(merchant.id), unverified),
    ]
    seen = []
    for person, merchant_id, bank_id in cases:
        asked = payouts.PayoutAsked(merchant_id, "1.00", bank_id, uuid.uuid4().hex)
        with pytest.raises(BillfoldError) as error:
            await payouts.request_payout(world.state.funding, world.gate(), person, asked, NOWHERE)
        seen.append((error.value.status, error.value.code))
    assert seen == [
        (404, "not_found"),
        (404, "not_found"),
        (404, "not_found"),
        (422, "bank_account_not_verified"),
    ]
    await world.state.pool.execute("UPDATE users SET status = 'frozen' WHERE id = $1", owner.id)
    with pytest.raises(WalletFrozen):
        await pay_out(world, await world.reload(owner), merchant, "1.00", bank)
    assert await balances(world, merchant) == (10_00, 10_00)


async def test_a_payout_the_risk_checks_hold_waits_for_the_owners_pin(world: World) -> None:
    """From a device never seen, a payout waits for the owner's PIN, its money held all the
    same; the PIN releases it to the rail. Three wrong PINs decline another one: its money
    back in the merchant account, told payout.declined (wrong_pin)."""
    owner, bank = await owner_with_bank(world)
    await world.set_pin(owner, PIN)
    merchant = await merchant_of(world, owner, 30_00)
    new_phone = world.origin(owner, "new-phone")
    held = await pay_out(world, owner, merchant, "10.00", bank, origin=new_phone)
    assert held["status"] == "PENDING_VERIFICATION"
    state = world.state
    released = await risk_holds.verify_movement(
        state.funding, state.cards, owner, held["payout_id"], PIN
    )
    assert released["status"] == "PENDING"
    other_phone = world.origin(owner, "other-phone")
    declined = await pay_out(world, owner, merchant, "7.00", bank, origin=other_phone)
    assert await balances(world, merchant) == (30_00, 13_00)
    for _ in range(3):
        with pytest.raises(WrongPin):
            await risk_holds.verify_movement(
                state.funding, state.cards, owner, declined["payout_id"], "0000"
            )
    assert await balances(world, merchant) == (30_00, 20_00)
    got = await payouts.get_payout(state.pool, owner.id, str(merchant.id), declined["payout_id"])
    assert got["status"] == "DECLINED"
    [told] = await told_to(state.pool, owner.id, "payout.declined")
    assert (told.data["payout_id"], told.data["reason"]) == (declined["payout_id"], "wrong_pin")


async def test_payout_settings_daily_needs_a_verified_bank_account_of_the_owners(
    world: World,
) -> None:
    """PATCH's rules: daily without a bank account, or clearing it while daily, is 422 naming
    payout_bank_account_id; an unverified one is 422 too; another person's is 404; a verified
    one of the owner's makes it daily, and manual may then clear it."""
    owner, bank = await owner_with_bank(world)
    merchant = await merchant_of(world, owner, 0)
    _, their_bank = await owner_with_bank(world)
    unverified = await world.bank(owner, "55554444", verified=False)
    pool = world.state.pool

    async def patch(schedule: str | None, bank_id: str | None, given: bool) -> Merchant:
        change = payouts.check_payout_settings(schedule, bank_id, given)
        return await payouts.do_update_payout_settings(pool, owner.id, str(merchant.id), change)

    with pytest.raises(ValidationFailed) as no_bank:
        await patch("daily", None, False)
    assert no_bank.value.fields["field"] == "payout_bank_account_id"
    with pytest.raises(BillfoldError) as not_verified:
        await patch("daily", unverified, True)
    assert (not_verified.value.code, not_verified.value.fields["field"]) == (
        "bank_account_not_verified",
        "payout_bank_account_id",
    )
    with pytest.raises(NotFound):
        await patch("daily", their_bank, True)
    with pytest.raises(ValidationFailed) as unknown:
        payouts.check_payout_settings("hourly", None, False)
    assert unknown.value.fields["field"] == "payout_schedule"
    daily = await patch("daily", bank, True)
    assert (daily.payout_schedule, str(daily.payout_bank_account_id)) == ("daily", bank)
    with pytest.raises(ValidationFailed) as cleared:
        await patch(None, None, True)
    assert cleared.value.fields["field"] == "payout_bank_account_id"
    manual = await patch("manual", None, True)
    assert (manual.payout_schedule, manual.payout_bank_account_id) == ("manual", None)
    with pytest.raises(NotFound):
        change = payouts.check_payout_settings("manual", None, False)
        await payouts.do_update_payout_settings(pool, uuid.uuid4(), str(merchant.id), change)


async def daily_merchant(world: World, balance_minor: int) -> tuple[User, Merchant]:
    owner, bank = await owner_with_bank(world)
    merchant = await merchant_of(world, owner, balance_minor)
    change = payouts.check_payout_settings("daily", bank, True)
    merchant = await payouts.do_update_payout_settings(
        world.state.pool, owner.id, str(merchant.id), change
    )
    return owner, merchant


async def run_day(world: World, day: date) -> schedule.RunReport:
    return await schedule.run_daily_payouts(world.state.funding, world.gate(), day, 100)


async def merchant_payouts(world: World, merchant: Merchant) -> list[tuple[int, str]]:
    rows = await world.state.pool.fetch(
        "SELECT amount_minor, status FROM funding_transfers WHERE merchant_id = $1",
        merchant.id,
    )
    return [tuple(row) for row in rows]


async def test_the_daily_run_pays_each_daily_merchant_once_even_run_twice_at_once(
    world: World,
) -> None:
    """Two runs of one day at once, then a third: each daily merchant with at least the minimum
    is paid its whole available balance once; one below the minimum and a manual one are not
    paid; every daily merchant's day is recorded once."""
    day = date(2031, 1, 6)
    _, rich = await daily_merchant(world, 123_45)
    _, also = await daily_merchant(world, 1_00)
    _, poor = await daily_merchant(world, 99)
    owner = await world.person()
    manual = await merchant_of(world, owner, 50_00)

    first, second = await asyncio.gather(run_day(world, day), run_day(world, day))
    assert first.paid + second.paid == 2
    assert first.below_minimum + second.below_minimum == 1
    assert (first.refused, second.refused, first.left, second.left) == (0, 0, 0, 0)
    again = await run_day(world, day)
    assert (again.paid, again.below_minimum, again.refused) == (0, 0, 0)

    assert await merchant_payouts(world, rich) == [(123_45, "pending")]
    assert await merchant_payouts(world, also) == [(1_00, "pending")]
    assert await merchant_payouts(world, poor) == []
    assert await merchant_payouts(world, manual) == []
    assert await balances(world, rich) == (123_45, 0)
    outcomes = await world.state.pool.fetch(
        "SELECT merchant_id, outcome FROM merchant_payout_runs WHERE day = $1", day
    )
    assert {(r["merchant_id"], r["outcome"]) for r in outcomes} == {
        (rich.id, "paid"),
        (also.id, "paid"),
        (poor.id, "below_minimum"),
    }
    # The next day pays what came in since.
    later = await run_day(world, date(2031, 1, 7))
    assert later.paid == 0
    assert await merchant_payouts(world, rich) == [(123_45, "pending")]


async def test_a_day_left_unfinished_by_a_run_that_died_is_finished_once(world: World) -> None:
    """A run claimed a merchant's day and made its payout, then died before recording it;
    once the claim is stale, the next run records that payout (the day's key finds it), the
    balance having changed since, and pays nothing more."""
    day = date(2031, 2, 3)
    owner, merchant = await daily_merchant(world, 20_00)
    made = await pay_out(
        world,
        owner,
        merchant,
        "20.00",
        str(merchant.payout_bank_account_id),
        key="daily:2031-02-03",
    )
    await world.state.pool.execute(
        """INSERT INTO merchant_payout_runs (merchant_id, day, claimed_at)
           VALUES ($1, $2, now() - interval '1 hour')""",
        merchant.id,
        day,
    )
    await fund(world, merchant, 3_00)
    report = await run_day(world, day)
    assert report.paid == 1
    assert await merchant_payouts(world, merchant) == [(20_00, "pending")]
    recorded = await world.state.pool.fetchrow(
        "SELECT outcome, payout_id FROM merchant_payout_runs WHERE merchant_id = $1 AND day = $2",
        merchant.id,
        day,
    )
    assert (recorded["outcome"], str(recorded["payout_id"])) == ("paid", made["payout_id"])


async def test_a_refused_daily_payout_is_told_once_and_not_tried_again_that_day(
    world: World,
) -> None:
    """The owner's payout bank account unlinked (a return unlinks it): the day's payout is
    refused, recorded and told as payout.declined naming why, once, however many runs."""
    day = date(2031, 3, 4)
    owner, merchant = await daily_merchant(world, 8_00)
    assert merchant.payout_bank_account_id is not None
    await unlink(world.state.pool, merchant.payout_bank_account_id, "return R03")
    reports = [await run_day(world, day), await run_day(world, day)]
    assert [r.refused for r in reports] == [1, 0]
    [told] = await told_to(world.state.pool, owner.id, "payout.declined")
    assert told.data == {
        "payout_id": None,
        "merchant_id": str(merchant.id),
        "user_id": str(owner.id),
        "rail": "ach",
        "bank_account_id": str(merchant.payout_bank_account_id),
        "amount": "8.00",
        "currency": "USD",
        "return_code": None,
        "reason": "not_found",
    }
    assert await balances(world, merchant) == (8_00, 8_00)


async def test_the_scheduler_pays_the_day_once_its_hour_has_come(world: World) -> None:
    """keep_paying_out, as every process runs it: at or after the hour, today's run pays a
    daily merchant; the loop stops when asked."""
    owner, merchant = await daily_merchant(world, 4_00)
    settings = world.state.settings.model_copy(update={"payout_hour_utc": 0})
    paying = asyncio.create_task(
        schedule.keep_paying_out(world.state.funding, world.gate, settings, interval_s=0.01)
    )
    try:
        # Polled, a bounded while: the loop runs on its own.
        for _ in range(1200):
            if await merchant_payouts(world, merchant):
                break
            await asyncio.sleep(0.05)
    finally:
        await tasks.stop(paying)
    assert await merchant_payouts(world, merchant) == [(4_00, "pending")]
    assert len(await told_to(world.state.pool, owner.id, "payout.requested")) == 1


async def test_the_command_runs_a_day_once(world: World, settings: Settings) -> None:
    """`billfold merchants payouts run --date D`, as an operator runs it: the day's daily
    merchant paid (the others' days as they are); run again, nothing more."""
    _, merchant = await daily_merchant(world, 6_00)
    command = ("merchants", "payouts", "run", "--date", "2031-04-05")
    first = await asyncio.to_thread(billfold, settings, *command)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1].startswith("2031-04-05: 1 paid,"), first.stdout
    again = await asyncio.to_thread(billfold, settings, *command)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("2031-04-05: 0 paid, 0 refused,")
    assert await merchant_payouts(world, merchant) == [(6_00, "pending")]


FATES = ("pending", "settled", "returned", "settled_then_returned")


@settings_(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(st.tuples(st.integers(1, 60_00), st.sampled_from(FATES)), min_size=1, max_size=6)
)
async def test_the_merchant_account_follows_a_simple_model_of_its_payouts(
    world: World, plan: list[tuple[int, str]]
) -> None:
    """Payouts asked one after another, each then left pending, settled, returned, or settled
    and returned: one over what is available is refused; the merchant account's posted and
    available balances are those of a model (posted: less what was paid and not returned;
    available: less what is pending too); the owner's wallet never moves."""
    owner, bank = await owner_with_bank(world, 7_00)
    merchant = await merchant_of(world, owner, 100_00)
    posted = available = 100_00
    for amount_minor, fate in plan:
        amount = f"{amount_minor // 100}.{amount_minor % 100:02d}"
        if amount_minor > available:
            with pytest.raises(InsufficientFunds):
                await pay_out(world, owner, merchant, amount, bank)
            continue
        made = await movement(
            world, (await pay_out(world, owner, merchant, amount, bank))["payout_id"]
        )
        available -= amount_minor
        if fate in ("settled", "settled_then_returned"):
            await world.partner(owner, "ach.settled", made)
            posted -= amount_minor
        if fate in ("returned", "settled_then_returned"):
            await world.partner(owner, "ach.returned", made, return_code="R01")
            posted += amount_minor if fate == "settled_then_returned" else 0
            available += amount_minor
    assert await balances(world, merchant) == (posted, available)
    assert (await world.wallet(owner))["balance"] == "7.00"


async def test_a_day_whose_run_died_after_the_hold_is_recorded_with_that_hold(
    world: World,
) -> None:
    """A run held the day's payout in the ledger and died before recording it (a stale claim,
    a hold of no recorded movement); money came in since. The next run asks for the held
    amount, which the ledger answers with that hold: the payout is recorded, nothing held
    twice, and funding reconciles (the fixture)."""
    day = date(2031, 5, 6)
    owner, merchant = await daily_merchant(world, 12_00)
    key = payout_key(payouts.payee(merchant), schedule.daily_key(day))
    funding = world.state.funding
    await funding.ledger.hold(
        "funding",
        f"{movement_id(owner, key)}:hold",
        debit_account_id=merchant.account_id,
        credit_account_id=funding.accounts.bank_clearing,
        amount_minor=12_00,
        currency="USD",
        code="payout",
        metadata={
            "funding_id": str(movement_id(owner, key)),
            "user_id": str(owner.id),
            "merchant_id": str(merchant.id),
        },
    )
    await world.state.pool.execute(
        """INSERT INTO merchant_payout_runs (merchant_id, day, claimed_at)
           VALUES ($1, $2, now() - interval '1 hour')""",
        merchant.id,
        day,
    )
    await fund(world, merchant, 5_00)
    report = await run_day(world, day)
    recorded = await world.state.pool.fetchrow(
        "SELECT outcome, detail FROM merchant_payout_runs WHERE merchant_id = $1 AND day = $2",
        merchant.id,
        day,
    )
    assert tuple(recorded) == ("paid", None), report
    assert await merchant_payouts(world, merchant) == [(12_00, "pending")]
    assert await balances(world, merchant) == (17_00, 5_00)
