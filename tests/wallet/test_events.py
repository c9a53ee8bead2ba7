"""The wallet's changes are told in their own transactions (wallet.events, risk.events): a P2P
transfer held, verified, declined or decided by an operator; a freeze and an unfreeze; a debt
and its repayment. Read straight from the outbox; a commit refused after the change and its
event were written leaves neither."""

from __future__ import annotations

import asyncpg
import pytest

from billfold.config import Settings
from billfold.risk.gate import DeclinedByRisk
from billfold.risk.rules import RiskRules
from billfold.wallet import debts, held
from billfold.wallet.pins import WrongPin
from billfold.wallet.standing import do_decide_frozen_user, do_user_action
from billfold.wallet.users import User, grant_admin
from tests.events.told import about, commit_refused, told_to
from tests.world import World, running_app


async def held_for_pin(world: World, sender: User, recipient: User) -> str:
    """A $30 transfer from `sender`, held for their PIN (1111): its id."""
    await world.set_pin(sender, "1111")
    await world.send(sender, recipient, "1.00", origin=world.origin(sender, country="US"))
    stolen = world.origin(sender, "stolen", "US")
    sent = await world.send(sender, recipient, "30.00", origin=stolen)
    assert sent["status"] == "PENDING_VERIFICATION"
    return str(sent["transfer_id"])


async def test_a_transfer_held_for_the_pin_is_told_held_then_verified(world: World) -> None:
    """transfer.held (waiting for verification), then transfer.verified, to the sender, keyed
    by them; the completed transfer names both people."""
    carol, dave = await world.person(50_00), await world.person()
    hold = await held_for_pin(world, carol, dave)
    s = world.state
    await held.verify_transfer(s.pool, s.ledger, carol, hold, "1111")
    told = await told_to(s.pool, carol.id, "transfer.held", "transfer.verified")
    assert [(t.kind, t.subject, t.ordering_key) for t in told] == [
        ("transfer.held", f"transfer/{hold}", f"user/{carol.id}"),
        ("transfer.verified", f"transfer/{hold}", f"user/{carol.id}"),
    ]
    money = {"user_id": str(carol.id), "to_user_id": str(dave.id), "amount": "30.00"}
    assert told[0].data == {
        "transfer_id": hold,
        **money,
        "currency": "USD",
        "waiting_for": "verification",
    }
    assert told[1].data == {"transfer_id": hold, **money, "currency": "USD"}
    completed = await s.pool.fetchrow(
        """SELECT data FROM outbox WHERE type = 'billfold.transfer.completed.v1'
             AND data->>'from_user_id' = $1 AND data->>'amount' = '30.00'""",
        str(carol.id),
    )
    assert completed is not None and completed["data"]["to_user_id"] == str(dave.id)


async def test_the_third_wrong_pin_is_told_as_a_decline(world: World) -> None:
    """transfer.declined with reason wrong_pin, once, and never verified."""
    erin, finn = await world.person(50_00), await world.person()
    hold = await held_for_pin(world, erin, finn)
    s = world.state
    for _ in range(3):
        with pytest.raises(WrongPin):
            await held.verify_transfer(s.pool, s.ledger, erin, hold, "9999")
    assert await about(s.pool, f"transfer/{hold}") == ["transfer.held", "transfer.declined"]
    declined = await told_to(s.pool, erin.id, "transfer.declined")
    assert declined[0].data["reason"] == "wrong_pin"
    assert declined[0].data["to_user_id"] == str(finn.id)


async def test_a_pin_refused_at_commit_leaves_the_transfer_waiting_and_untold(
    world: World,
) -> None:
    """The right PIN, its commit refused: the transfer still waits and transfer.verified is not
    in the outbox; the PIN again completes it, told once."""
    gail, hank = await world.person(50_00), await world.person()
    hold = await held_for_pin(world, gail, hank)
    s = world.state
    async with commit_refused(s.pool, gail.id):
        with pytest.raises(asyncpg.PostgresError):
            await held.verify_transfer(s.pool, s.ledger, gail, hold, "1111")
    status = "SELECT status FROM held_transfers WHERE hold_id = $1"
    assert await s.pool.fetchval(status, int(hold)) == "PENDING_VERIFICATION"
    assert await about(s.pool, f"transfer/{hold}") == ["transfer.held"]
    await held.verify_transfer(s.pool, s.ledger, gail, hold, "1111")
    assert await s.pool.fetchval(status, int(hold)) == "COMPLETED"
    assert await about(s.pool, f"transfer/{hold}") == ["transfer.held", "transfer.verified"]


async def test_a_review_is_told_held_then_decided_once(world: World) -> None:
    """Paying a flagged user: transfer.held (waiting for review), then review.decided; a
    rejection is told by review.decided alone, not as a decline too."""
    ivy, mule, analyst = await world.person(80_00), await world.person(), await world.person()
    s = world.state
    await grant_admin(s.pool, analyst.username)
    await s.pool.execute("UPDATE users SET flagged = true WHERE id = $1", mule.id)
    origin = world.origin(ivy, country="US")
    holds = [str((await world.send(ivy, mule, "20.00", origin=origin))["transfer_id"])]
    holds.append(str((await world.send(ivy, mule, "5.00", origin=origin))["transfer_id"]))
    for hold, approve in zip(holds, (True, False), strict=True):
        await held.decide_held_transfer(
            s.pool, s.ledger, analyst.id, hold, approve=approve, reason="analyst says"
        )
        assert await about(s.pool, f"transfer/{hold}") == ["transfer.held", "review.decided"]
    told = await told_to(s.pool, ivy.id, "transfer.held", "review.decided")
    assert [t.data.get("waiting_for") for t in told if t.kind == "transfer.held"] == [
        "review",
        "review",
    ]
    decided = [(t.data["transfer_id"], t.data["decision"], t.data["amount"]) for t in told[2:]]
    assert decided == [(holds[0], "approved", "20.00"), (holds[1], "rejected", "5.00")]


async def test_a_takeover_is_told_declined_and_frozen(world: World) -> None:
    """Declined at once by the risk checks: transfer.declined with no transfer id, about the
    sender, written with its assessment; the freeze that comes with it: user.frozen."""
    owner, friend, thief = await world.person(500_00), await world.person(), await world.person()
    for amount in ("12.00", "8.50", "20.00"):
        await world.send(owner, friend, amount, origin=world.origin(owner, country="US"))
    with pytest.raises(DeclinedByRisk):
        await world.send(owner, thief, "450.00", origin=world.origin(owner, "unknown", "RO"))
    await world.state.risk.log.flush()
    told = await told_to(world.state.pool, owner.id, "transfer.declined", "user.frozen")
    assert [(t.kind, t.subject) for t in told] == [
        ("user.frozen", f"user/{owner.id}"),
        ("transfer.declined", f"user/{owner.id}"),
    ]
    assert told[0].data == {"user_id": str(owner.id), "reason": "risk_checks"}
    assert told[1].data == {
        "transfer_id": None,
        "user_id": str(owner.id),
        "to_user_id": str(thief.id),
        "amount": "450.00",
        "currency": "USD",
        "reason": "risk_checks",
    }


async def test_a_decline_whose_assessment_is_not_written_is_not_told(world: World) -> None:
    """The batch that writes a declined transfer's assessment refused at its commit: neither
    the assessment nor transfer.declined is stored."""
    owner, friend, thief = await world.person(500_00), await world.person(), await world.person()
    for amount in ("12.00", "8.50", "20.00"):
        await world.send(owner, friend, amount, origin=world.origin(owner, country="US"))
    pool = world.state.pool
    async with commit_refused(pool, owner.id, "transfer.declined"):
        with pytest.raises(DeclinedByRisk):
            await world.send(owner, thief, "450.00", origin=world.origin(owner, "new", "BR"))
        await world.state.risk.log.flush()
    assert [a for a in await world.assessed(owner) if a[1] == 450_00] == []
    assert await told_to(pool, owner.id, "transfer.declined") == []


async def test_freezes_are_told_when_the_status_changes(world: World) -> None:
    """An operator's freeze and unfreeze: user.frozen and user.unfrozen, reason operator; a
    freeze of a frozen user changes nothing and tells nothing; an approved review of a user
    the engine froze: user.unfrozen, reason review."""
    jo, analyst = await world.person(), await world.person()
    pool = world.state.pool
    for action in ("freeze", "freeze", "unfreeze"):
        await do_user_action(pool, analyst.id, action, str(jo.id), "operator's note")
    await do_user_action(pool, None, "freeze", str(jo.id), "risk engine: test")
    await do_decide_frozen_user(pool, analyst.id, f"user:{jo.id}", approve=True, reason="ok")
    told = await told_to(pool, jo.id)
    assert [(t.kind, t.data["reason"]) for t in told] == [
        ("user.frozen", "operator"),
        ("user.unfrozen", "operator"),
        ("user.frozen", "risk_checks"),
        ("user.unfrozen", "review"),
    ]
    assert all(t.ordering_key == f"user/{jo.id}" for t in told)


async def test_a_freeze_refused_at_commit_is_neither_made_nor_told(world: World) -> None:
    """The freeze's transaction refused at its commit: the user is active, unaudited, untold."""
    kim, analyst = await world.person(), await world.person()
    pool = world.state.pool
    async with commit_refused(pool, kim.id):
        with pytest.raises(asyncpg.PostgresError):
            await do_user_action(pool, analyst.id, "freeze", str(kim.id), "note")
    assert await pool.fetchval("SELECT status FROM users WHERE id = $1", kim.id) == "active"
    assert await told_to(pool, kim.id) == []


async def test_a_debt_is_told_opened_then_recovered_with_what_is_outstanding(
    world: World,
) -> None:
    """A claw-back of $50 from a wallet holding $30: debt.opened of $20; $15 in then repays
    it: debt.recovered of $15, $5 outstanding; each in the ledger's transaction that moves it,
    and a replayed claw-back tells nothing again."""
    lou, friend = await world.person(30_00), await world.person(100_00)
    s = world.state
    clawing = {
        "user_id": lou.id,
        "wallet_id": lou.account_id,
        "source_account_id": s.funding.accounts.bank_clearing,
        "amount_minor": 50_00,
        "key": f"test-clawback:{lou.id}",
    }
    await debts.claw_back(s.pool, s.ledger, **clawing)
    await debts.claw_back(s.pool, s.ledger, **clawing)
    await world.send(friend, lou, "15.00")
    assert await debts.collect(s.pool, s.ledger, lou.id, lou.account_id) == 5_00
    told = await told_to(s.pool, lou.id)
    assert [(t.kind, t.subject, t.data["amount"], t.data["outstanding"]) for t in told] == [
        ("debt.opened", f"user/{lou.id}", "20.00", "20.00"),
        ("debt.recovered", f"user/{lou.id}", "15.00", "5.00"),
    ]


async def test_a_claw_back_refused_at_commit_moves_nothing_and_tells_nothing(
    world: World,
) -> None:
    """The ledger's batch refused at its commit: no claw-back, no debt.opened; the claw-back
    again (the same key) makes and tells it once."""
    max_, s = await world.person(10_00), world.state
    clawing = {
        "user_id": max_.id,
        "wallet_id": max_.account_id,
        "source_account_id": s.funding.accounts.bank_clearing,
        "amount_minor": 25_00,
        "key": f"test-clawback:{max_.id}",
    }
    async with commit_refused(s.pool, max_.id):
        with pytest.raises(asyncpg.PostgresError):
            await debts.claw_back(s.pool, s.ledger, **clawing)
    assert (await world.wallet(max_))["balance"] == "10.00"
    assert await told_to(s.pool, max_.id) == []
    await debts.claw_back(s.pool, s.ledger, **clawing)
    assert [t.data["outstanding"] for t in await told_to(s.pool, max_.id)] == ["15.00"]


async def test_with_the_outbox_off_nothing_is_told(settings: Settings) -> None:
    """BILLFOLD_OUTBOX=false: a transfer held and verified, one declined, a freeze, a debt:
    each change is made, and no event row is written for any."""
    rules = RiskRules(model_decides=False)
    async with running_app(settings, outbox=False, risk_rules=rules) as app:
        world = World(app)
        s = world.state
        ola, pat, thief = await world.person(500_00), await world.person(), await world.person()
        hold = await held_for_pin(world, ola, pat)
        await held.verify_transfer(s.pool, s.ledger, ola, hold, "1111")
        for amount in ("12.00", "8.50"):
            await world.send(ola, pat, amount, origin=world.origin(ola, country="US"))
        with pytest.raises(DeclinedByRisk):
            await world.send(ola, thief, "400.00", origin=world.origin(ola, "unknown", "RO"))
        await s.risk.log.flush()
        await debts.claw_back(
            s.pool,
            s.ledger,
            user_id=pat.id,
            wallet_id=pat.account_id,
            source_account_id=s.funding.accounts.bank_clearing,
            amount_minor=100_00,
            key=f"test-clawback:{pat.id}",
        )
        assert await s.pool.fetchval("SELECT status FROM users WHERE id = $1", ola.id) == "frozen"
        assert (await world.wallet(pat))["balance"] == "0.00"
        written = await s.pool.fetchval(
            """SELECT count(*) FROM outbox WHERE data->>'user_id' = ANY($1::text[])
                  OR data->>'from_user_id' = ANY($1::text[])""",
            [str(p.id) for p in (ola, pat)],
        )
    assert written == 0
