"""Operators freeze, unfreeze and flag users, every action audited; others can't see the routes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from billfold.wallet.users import grant_admin

MakePerson = Callable[..., Awaitable[Any]]


async def send(client: httpx.AsyncClient, sender: Any, recipient: Any, amount: str) -> Any:
    return await client.post(
        "/api/v1/transfers",
        json={"sender_id": sender.user_id, "recipient": recipient.username, "amount": amount},
        headers={**sender.auth, "Idempotency-Key": uuid.uuid4().hex},
    )


async def act(
    client: httpx.AsyncClient, operator: Any, action: str, subject: Any, reason: str
) -> Any:
    return await client.post(
        f"/api/v1/admin/users/{subject.user_id}/{action}",
        json={"reason": reason},
        headers=operator.auth,
    )


async def test_a_freeze_stops_outgoing_money_until_unfrozen_and_both_are_audited(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Frozen: the user can't send (nor be paid by P2P); unfrozen, they send again. The audit
    trail names the operator, the action, the reason and the change, newest first."""
    operator, bob, carol = (
        await make_person(),
        await make_person("50.00"),
        await make_person("5.00"),
    )
    await grant_admin(app.state.pool, operator.username)
    frozen = await act(client, operator, "freeze", bob, "card testing pattern, ticket 4411")
    assert frozen.status_code == 200 and frozen.json()["changed"] is True
    refused = await send(client, bob, carol, "1.00")
    assert refused.status_code == 403 and refused.json()["code"] == "wallet_frozen"
    incoming = await send(client, carol, bob, "2.00")  # P2P to a frozen wallet is refused too
    assert incoming.status_code == 403 and incoming.json()["code"] == "wallet_frozen"
    again = await act(client, operator, "freeze", bob, "double click")
    assert again.json()["changed"] is False
    assert (await act(client, operator, "unfreeze", bob, "cleared by review")).status_code == 200
    sent = await send(client, bob, carol, "1.00")
    assert sent.status_code == 201, sent.text
    trail = await client.get(f"/api/v1/admin/users/{bob.user_id}/audit", headers=operator.auth)
    assert [(a["action"], a["reason"]) for a in trail.json()] == [
        ("unfreeze", "cleared by review"),
        ("freeze", "double click"),
        ("freeze", "card testing pattern, ticket 4411"),
    ]
    assert {a["operator_id"] for a in trail.json()} == {operator.user_id}
    assert trail.json()[-1]["detail"] == {"before": "active", "after": "frozen"}


async def test_flagging_marks_the_user(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Flag and unflag set the user's flag the risk engine reads."""
    operator, dana = await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    assert (await act(client, operator, "flag", dana, "mule fan-in")).status_code == 200
    flagged = "SELECT flagged FROM users WHERE id = $1"
    assert await app.state.pool.fetchval(flagged, uuid.UUID(dana.user_id)) is True
    await act(client, operator, "unflag", dana, "false positive")
    assert await app.state.pool.fetchval(flagged, uuid.UUID(dana.user_id)) is False


async def test_operator_routes_are_hidden_from_others_and_check_their_input(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A user without the role gets 404, as for no route at all, and freezes nobody; an operator
    must give a reason and name a real user."""
    operator, mallory, victim = await make_person(), await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    hidden = await act(client, mallory, "freeze", victim, "because")
    assert hidden.status_code == 404
    status = "SELECT status FROM users WHERE id = $1"
    assert await app.state.pool.fetchval(status, uuid.UUID(victim.user_id)) == "active"
    blank = await act(client, operator, "freeze", victim, "   ")
    assert blank.status_code == 422 and blank.json()["field"] == "reason"
    nobody = await client.post(
        f"/api/v1/admin/users/{uuid.uuid4()}/freeze", json={"reason": "x"}, headers=operator.auth
    )
    assert nobody.status_code == 404
    assert await app.state.pool.fetchval(status, uuid.UUID(victim.user_id)) == "active"


async def test_the_audit_trail_cannot_be_edited_or_erased(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The database refuses to change or delete an operator's record."""
    operator, erin = await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    await act(client, operator, "flag", erin, "shared bank account")
    for statement in (
        "UPDATE operator_actions SET reason = 'nothing happened'",
        "DELETE FROM operator_actions",
        "TRUNCATE operator_actions",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.state.pool.execute(statement)
