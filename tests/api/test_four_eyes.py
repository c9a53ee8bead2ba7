"""Four eyes over HTTP: no operator decides on their own account or money (403 four_eyes, and
nothing changes); another operator decides as before."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.risk.rules import RiskRules
from billfold.wallet import standing
from billfold.wallet.users import grant_admin
from tests.api.driver import decide

MakePerson = Callable[..., Awaitable[Any]]
LinkBank = Callable[..., Awaitable[str]]


@pytest.fixture(scope="module")
async def app(running: Any) -> AsyncIterator[FastAPI]:
    """Every movement is held for review: the model's review band starts at 0 (and its decline
    band at 1, which no score reaches)."""
    rules = RiskRules(step_up_score=0.0, review_score=0.0, decline_score=1.0)
    async with running(risk_rules=rules) as app:
        yield app


async def operator(app: FastAPI, make_person: MakePerson, balance: str | None = None) -> Any:
    person = await make_person(balance)
    await grant_admin(app.state.pool, person.username)
    return person


async def audited(app: FastAPI, subject: str) -> list[str]:
    rows = await app.state.pool.fetch(
        "SELECT action FROM operator_actions WHERE subject = $1 AND operator_id IS NOT NULL"
        " ORDER BY id",
        subject,
    )
    return [r["action"] for r in rows]


def refused(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, response.headers["content-type"], body["code"]


FOUR_EYES = (403, "application/problem+json", "four_eyes")


async def test_an_operator_cannot_freeze_unfreeze_flag_or_unflag_themselves(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Each action on their own account is refused, changes nothing and is not audited; another
    operator's freeze of them goes ahead."""
    ann, ben = await operator(app, make_person), await operator(app, make_person)
    own = [
        await client.post(
            f"/api/v1/admin/users/{ann.user_id}/{action}",
            json={"reason": "my own account"},
            headers=ann.auth,
        )
        for action in ("freeze", "unfreeze", "flag", "unflag")
    ]
    state = await app.state.pool.fetchrow(
        "SELECT status, flagged FROM users WHERE id = $1", uuid.UUID(ann.user_id)
    )
    by_other = await client.post(
        f"/api/v1/admin/users/{ann.user_id}/freeze", json={"reason": "leaver"}, headers=ben.auth
    )

    assert [refused(r) for r in own] == [FOUR_EYES] * 4
    assert ann.user_id in own[0].json()["detail"]
    assert (state["status"], state["flagged"]) == ("active", False)
    assert by_other.status_code == 200
    assert await audited(app, f"user:{ann.user_id}") == ["freeze"]


@pytest.mark.parametrize("path", ["add-funds", "cash-out"])
async def test_an_operator_cannot_approve_or_reject_their_own_held_movement(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    path: str,
) -> None:
    """An operator's own add-funds (or cash-out) held for review: their approve and reject are
    refused and it stays held, unaudited; another operator approves it."""
    ann, ben = await operator(app, make_person, "100.00"), await operator(app, make_person)
    bank_id = await link_bank(ann, "27182818")
    held = await client.post(
        f"/api/v1/wallet/{path}",
        json={"user_id": ann.user_id, "amount": "40.00", "bank_account_id": bank_id},
        headers={**ann.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert held.json()["status"] == "PENDING_REVIEW", held.text
    review_id = held.json()["transfer_id"]
    own = [await decide(client, ann, review_id, verb) for verb in ("approve", "reject")]
    still = await client.get(f"/api/v1/funding/{review_id}", headers=ann.auth)
    by_other = await decide(client, ben, review_id, "approve")

    assert [refused(r) for r in own] == [FOUR_EYES] * 2
    assert still.json()["status"] == "PENDING_REVIEW"
    assert by_other.status_code == 200, by_other.text
    assert await audited(app, f"transfer:{review_id}") == ["approve_review"]


async def test_an_operator_cannot_decide_on_a_transfer_they_send_or_receive(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """P2P transfers held for review: the operator who sends one, and the one who receives
    another, cannot approve or reject it; a third operator can."""
    ann, ben = await operator(app, make_person, "50.00"), await operator(app, make_person)
    cid, carol = await operator(app, make_person), await make_person("50.00")
    reviews = []
    for sender, recipient in ((ann, carol), (carol, ben)):
        held = await client.post(
            "/api/v1/transfers",
            json={"sender_id": sender.user_id, "recipient": recipient.username, "amount": "5.00"},
            headers={**sender.auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert held.json()["status"] == "PENDING_REVIEW", held.text
        reviews.append(held.json()["transfer_id"])
    own = [
        await decide(client, who, review_id, verb)
        for who, review_id in zip((ann, ben), reviews, strict=True)
        for verb in ("approve", "reject")
    ]
    by_other = [await decide(client, cid, review_id, "approve") for review_id in reviews]

    assert [refused(r) for r in own] == [FOUR_EYES] * 4
    assert [(r.status_code, r.json()["status"]) for r in by_other] == [(200, "COMPLETED")] * 2
    assert [await audited(app, f"transfer:{r}") for r in reviews] == [["approve_review"]] * 2


async def test_an_operator_the_engine_froze_cannot_decide_their_own_review(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Frozen by the risk engine, an operator waits in the review queue like anyone: their own
    approve is refused and they stay frozen; another operator's approve unfreezes them."""
    ann, ben = await operator(app, make_person), await operator(app, make_person)
    await standing.do_user_action(
        app.state.pool, None, "freeze", ann.user_id, "risk engine: 5 declines in 10 minutes"
    )
    review_id = f"user:{ann.user_id}"
    own = await decide(client, ann, review_id, "approve")
    status = await app.state.pool.fetchval(
        "SELECT status FROM users WHERE id = $1", uuid.UUID(ann.user_id)
    )
    by_other = await decide(client, ben, review_id, "approve")

    assert refused(own) == FOUR_EYES
    assert status == "frozen"
    assert (by_other.status_code, by_other.json()["status"]) == (200, "ACTIVE")
