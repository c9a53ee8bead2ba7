"""Operators freeze, unfreeze and flag users, every action audited; others can't see the routes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from billfold.wallet.users import grant_admin
from tests.api.driver import act, send

MakePerson = Callable[..., Awaitable[Any]]


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


async def listed(client: httpx.AsyncClient, operator: Any, **params: Any) -> Any:
    return await client.get("/api/v1/admin/assessments", params=params, headers=operator.auth)


async def test_operators_see_every_decision_with_its_score_model_rules_and_top_features(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """An allowed, a stepped-up, a reviewed and a declined transfer of one user are listed
    newest first, each with its score, the model version, the reasons and (but the allowed
    one) its five top features; the verdict and time filters narrow the list."""
    operator, ana, ben = await make_person(), await make_person("500.00"), await make_person()
    mule, thief = await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    await app.state.pool.execute(
        "UPDATE users SET flagged = true WHERE id = $1", uuid.UUID(mule.user_id)
    )
    home, new_phone, android = ana.device(), ana.device("new-phone"), ana.device("unknown-android")
    statuses = [
        (await send(client, ana, ben, "5.00", home, country="US")).status_code,
        (await send(client, ana, ben, "6.00", new_phone, country="US")).json()["status"],
        (await send(client, ana, mule, "7.00", home, country="US")).json()["status"],
        (await send(client, ana, thief, "400.00", android, country="RO")).status_code,
    ]
    assert statuses == [201, "PENDING_VERIFICATION", "PENDING_REVIEW", 403]
    await app.state.risk.log.flush()  # the declined one is written in a batch
    page = await listed(client, operator, user_id=ana.user_id)
    assert page.status_code == 200, page.text
    rows = page.json()["assessments"]
    assert [r["verdict"] for r in rows] == ["decline", "review", "step_up", "allow"]
    version = app.state.risk.scorer.version
    assert {r["model_version"] for r in rows} == {version}
    assert all(0.0 <= r["score"] <= 1.0 and r["user_id"] == ana.user_id for r in rows)
    assert "the recipient is flagged" in rows[1]["reasons"]
    assert "a device never seen for this user" in rows[2]["reasons"]
    assert rows[3]["reasons"] == [] and rows[3]["top_features"] == []
    for row in rows[:3]:
        assert len(row["top_features"]) == 5
        assert set(row["top_features"][0]) == {"name", "value", "contribution"}
    assert page.json()["next_cursor"] is None
    declines = (await listed(client, operator, user_id=ana.user_id, verdict="decline")).json()
    assert [r["assessment_id"] for r in declines["assessments"]] == [rows[0]["assessment_id"]]
    middle = await listed(
        client,
        operator,
        user_id=ana.user_id,
        to=rows[1]["created_at"],
        **{"from": rows[2]["created_at"]},
    )
    assert [r["verdict"] for r in middle.json()["assessments"]] == ["review", "step_up"]
    for row in rows:
        # Any verdict, the allowed one too, is explained on demand from its past as it was:
        # the same score, and for a held one the top features the engine stored.
        explained = await client.get(
            f"/api/v1/admin/assessments/{row['assessment_id']}/explanation", headers=operator.auth
        )
        assert explained.status_code == 200, explained.text
        body = explained.json()
        # Stored as a `real`: equal to its 7 significant digits.
        assert body["score_recomputed"] == pytest.approx(row["score"], rel=1e-6, abs=1e-9), (
            row["verdict"],
            body["top_features"],
            row["top_features"],
        )
        assert len(body["top_features"]) == 5
        if row["top_features"]:
            assert body["top_features"] == row["top_features"]
    # Listed with explain, the allowed one has its top features too, computed now.
    explained_page = await listed(client, operator, user_id=ana.user_id, explain="true")
    assert [
        (len(r["top_features"]), r["top_features_recomputed"])
        for r in explained_page.json()["assessments"]
    ] == [(5, False), (5, False), (5, False), (5, True)]
    too_many = await listed(client, operator, explain="true", limit=51)
    assert too_many.status_code == 422 and too_many.json()["value"] == 51


async def test_an_explanation_needs_an_operator_a_scored_assessment_and_its_model(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """No such assessment is 404, as is anyone not an operator; one the loaded model did not
    score (unscored, or another version) is 409 not_explainable naming its model; a bad id 422."""
    operator, dee = await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    unscored = await app.state.pool.fetchval(
        """INSERT INTO risk_assessments (user_id, kind, ref, amount_minor, score, action, reasons)
           VALUES ($1, 'p2p', 'old', 100, 0, 'allow', '{risk_timeout}') RETURNING id""",
        uuid.UUID(dee.user_id),
    )
    path = f"/api/v1/admin/assessments/{unscored}/explanation"
    refused = await client.get(path, headers=operator.auth)
    assert refused.status_code == 409 and refused.json()["code"] == "not_explainable"
    assert refused.json()["model_version"] is None
    assert (await client.get(path, headers=dee.auth)).status_code == 404
    missing = await client.get(
        "/api/v1/admin/assessments/999999999/explanation", headers=operator.auth
    )
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    bad = await client.get("/api/v1/admin/assessments/abc/explanation", headers=operator.auth)
    assert bad.status_code == 422


async def test_paging_shows_every_assessment_once_in_a_stable_order_even_at_equal_times(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Seven assessments at one instant and two older ones, three a page: every one once,
    newest first and by id within an instant; rows written before the model version and top
    features were kept show them as null and empty."""
    operator, cal = await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    user = uuid.UUID(cal.user_id)
    insert = """INSERT INTO risk_assessments (user_id, kind, ref, amount_minor, score, action,
                    reasons, created_at)
                VALUES ($1, 'p2p', $2, 100, 0.5, 'decline', '{}', $3) RETURNING id"""
    same = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    older = [same - timedelta(minutes=2), same - timedelta(minutes=1)]
    ids = [await app.state.pool.fetchval(insert, user, f"k{n}", same) for n in range(7)]
    old_ids = [
        await app.state.pool.fetchval(insert, user, f"o{n}", at) for n, at in enumerate(older)
    ]
    seen: list[int] = []
    cursor = None
    for _ in range(5):
        params = {"user_id": cal.user_id, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await listed(client, operator, **params)).json()
        seen += [r["assessment_id"] for r in page["assessments"]]
        assert all(
            r["model_version"] is None and r["top_features"] == [] for r in page["assessments"]
        )
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True) + old_ids[::-1]


@pytest.mark.parametrize(
    ("params", "field", "value"),
    [
        ({"verdict": "maybe"}, "verdict", "maybe"),
        ({"limit": 0}, "limit", 0),
        ({"limit": 201}, "limit", 201),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor", "bm90LWEtY3Vyc29y"),
        ({"user_id": "nobody"}, "user_id", "nobody"),
        ({"from": "yesterday"}, "from", "yesterday"),
        (
            {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "from",
            "2026-01-02T00:00:00+00:00",
        ),
    ],
)
async def test_the_listing_refuses_bad_parameters_naming_them(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    params: dict[str, Any],
    field: str,
    value: Any,
) -> None:
    """Each bad parameter is a 422 problem naming the field and the value, never a 500."""
    operator = await make_person()
    await grant_admin(app.state.pool, operator.username)
    refused = await listed(client, operator, **params)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert (body["code"], body["field"]) == ("validation_error", field)
    assert str(value) in body["detail"]


async def test_the_listing_is_hidden_from_everyone_but_operators(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A user without the role gets 404, even with bad parameters."""
    mallory = await make_person()
    assert (await listed(client, mallory)).status_code == 404
    assert (await listed(client, mallory, limit=0)).status_code == 404
