"""The operator console in a real browser: an operator approves a held transfer and the money
moves; four eyes stop them deciding on their own; a person frozen in the console cannot send;
the console does not exist for anyone else; the ledger explorer, health, charts and every other
page render, and axe-core finds nothing serious on any of them."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from billfold.config import Settings
from billfold.ledger.accounts import posted_balance
from billfold.platform.errors import WalletFrozen
from billfold.risk import daily
from billfold.risk import held as risk_held
from billfold.risk.gate import Gate, Origin
from billfold.risk.rules import RiskRules
from billfold.wallet import p2p
from billfold.wallet.users import User
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import PASSWORD, fund, log_in, make_user
from tests.world import billfold, running_app

FILLER = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
async def app(isolated_settings: Settings) -> AsyncIterator[FastAPI]:
    """Every P2P transfer is held for review (the model's review band starts at 0, its decline
    band at 1, which no score reaches), on a database of the module's own: the health page and
    the charts count everything in it."""
    rules = RiskRules(step_up_score=0.0, review_score=0.0, decline_score=1.0)
    async with running_app(isolated_settings, risk_rules=rules) as app:
        yield app


async def send(app: FastAPI, sender: User, recipient: User, amount: str) -> dict[str, Any]:
    """Send money through the wallet's context, as the API's POST /transfers does."""
    state = app.state
    gate = Gate(
        state.risk,
        state.redis,
        state.settings.risk_budget_ms,
        state.fail_closed_minor,
        state.risk_slots,
    )
    payments = p2p.Payments(state.pool, state.ledger, state.users, gate)
    request = p2p.SendMoney(str(sender.id), recipient.username, amount, None, uuid.uuid4().hex)
    view, _ = await p2p.send_money(payments, sender.id, request, Origin(None, "US", None))
    return view


async def held_transfer(app: FastAPI, sender: User, recipient: User, amount: str) -> str:
    view = await send(app, sender, recipient, amount)
    assert view["status"] == "PENDING_REVIEW", view
    return str(view["transfer_id"])


async def decide_in_console(page: Any, review_id: str, reason: str, verb: str) -> Any:
    card = page.get_by_test_id(f"review-{review_id}")
    await card.get_by_label("Reason for the decision").fill(reason)
    await card.get_by_role("button", name=verb).click()
    return card


async def test_an_operator_approves_a_held_transfer_and_the_money_moves(
    app: FastAPI, page: Any
) -> None:
    ann, bob, operator = (
        await make_user(app),
        await make_user(app),
        await make_user(app, admin=True),
    )
    await fund(app, ann, 10_000)
    review_id = await held_transfer(app, ann, bob, "25.00")
    pool = app.state.pool

    await log_in(page, operator.username)
    await page.goto("/console")
    card = page.get_by_test_id(f"review-{review_id}")
    assert "$25.00" in await card.inner_text()
    assert f"@{ann.username}" in await card.inner_text()  # the parties by name, not by id
    assert f"@{bob.username}" in await card.inner_text()
    assert await card.get_by_test_id("score").is_visible()
    await assert_accessible(page)
    await screenshot(page, "console-queue")
    await page.set_viewport_size({"width": 390, "height": 844})
    await assert_accessible(page)
    await page.set_viewport_size({"width": 1280, "height": 900})
    # A second tab with the queue open: its decision comes after the first and changes nothing.
    other_tab = await page.context.new_page()
    await other_tab.goto("/console")
    await decide_in_console(page, review_id, "known customer, paying rent", "Approve")
    await page.wait_for_url("**/console?decided=*")
    await decide_in_console(other_tab, review_id, "looks like fraud", "Reject")

    assert f"Review {review_id}: COMPLETED" in await page.get_by_role("status").first.inner_text()
    assert await page.get_by_test_id(f"review-{review_id}").count() == 0
    assert "transfer_not_pending" in await other_tab.get_by_role("alert").inner_text()
    assert await risk_held.status_of(pool, int(review_id)) == "COMPLETED"
    assert await posted_balance(pool, bob.account_id) == 2_500
    assert await posted_balance(pool, ann.account_id) == 7_500


async def test_an_operator_cannot_approve_their_own_held_transfer(app: FastAPI, page: Any) -> None:
    operator, bob = await make_user(app, admin=True), await make_user(app)
    await fund(app, operator, 5_000)
    review_id = await held_transfer(app, operator, bob, "40.00")

    await log_in(page, operator.username)
    await page.goto("/console")
    card = await decide_in_console(page, review_id, "looks fine to me", "Approve")

    alert = card.get_by_role("alert")
    assert "four_eyes" in await alert.inner_text()
    await assert_accessible(page)
    assert await risk_held.status_of(app.state.pool, int(review_id)) == "PENDING_REVIEW"
    assert await posted_balance(app.state.pool, bob.account_id) == 0
    # The reason typed is kept for another try; the review is still on the queue.
    assert await card.get_by_label("Reason for the decision").input_value() == "looks fine to me"


async def test_a_person_frozen_in_the_console_cannot_send(app: FastAPI, page: Any) -> None:
    cat, dan, operator = (
        await make_user(app),
        await make_user(app),
        await make_user(app, admin=True),
    )
    await fund(app, cat, 3_000)

    await log_in(page, operator.username)
    await page.goto("/console/people")
    await assert_accessible(page)
    await screenshot(page, "console-find")
    await page.get_by_label("Username, email or phone").fill(cat.email)
    await page.get_by_role("button", name="Find").click()
    await page.wait_for_url(f"**/console/people/{cat.id}")
    assert await page.get_by_test_id("status").inner_text() == "active"
    await page.get_by_label("Reason (kept in the audit trail)").fill("card testing reported")
    await page.get_by_role("button", name="Freeze").click()
    await page.wait_for_url(f"**/console/people/{cat.id}?done=freeze")

    assert await page.get_by_test_id("status").inner_text() == "frozen"
    audit = page.get_by_role("table", name=re.compile("What operators"))
    assert "card testing reported" in await audit.inner_text()
    await assert_accessible(page)
    await screenshot(page, "console-person")
    with pytest.raises(WalletFrozen):
        await send(app, cat, dan, "5.00")
    assert await posted_balance(app.state.pool, cat.account_id) == 3_000


async def test_an_operator_cannot_freeze_themselves(app: FastAPI, page: Any) -> None:
    operator = await make_user(app, admin=True)
    await log_in(page, operator.username)
    await page.goto(f"/console/people/{operator.id}")
    await page.get_by_label("Reason (kept in the audit trail)").fill("testing")
    await page.get_by_role("button", name="Freeze").click()
    assert "four_eyes" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_test_id("status").inner_text() == "active"


def console_routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for context in iter_route_contexts(app.routes):
        path = context.path_format
        if path and (path == "/console" or path.startswith("/console/")):
            found += [(m, path) for m in context.methods or () if m != "HEAD"]
    return sorted(found)


async def test_the_console_does_not_exist_for_a_person_without_the_admin_role(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    person = await make_user(app)
    token = await _token(http, "/app/login")
    signed_in = await http.post(
        "/app/login", data={"username": person.username, "password": PASSWORD, "csrf_token": token}
    )
    assert signed_in.status_code == 303
    token = await _token(http, "/app")
    routes = console_routes(app)
    assert len(routes) >= 10 and ("GET", "/console") in routes
    for method, path in routes:
        filled = re.sub(r"\{assessment_id\}", "1", path)
        filled = re.sub(r"\{[a-z_]+\}", FILLER, filled)
        answer = await http.request(method, filled, data={"csrf_token": token, "reason": "x"})
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html")


async def _token(http: httpx.AsyncClient, path: str) -> str:
    page = await http.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text[:200]
    return found.group(1)


async def test_the_ledger_explorer_shows_a_transfers_entries_summing_to_zero(
    app: FastAPI, page: Any
) -> None:
    eve, operator = await make_user(app), await make_user(app, admin=True)
    await fund(app, eve, 1_234)
    transfer_id = await app.state.pool.fetchval(
        "SELECT transfer_id FROM entries WHERE account_id = $1 ORDER BY account_seq DESC LIMIT 1",
        eve.account_id,
    )

    await log_in(page, operator.username)
    await page.goto("/console/ledger")
    await page.get_by_label("Transfer id").fill(str(transfer_id))
    await page.get_by_role("button", name="Show transfer").click()
    entries = page.get_by_test_id("transfer-entries")
    amounts = [
        int(v)
        for v in await entries.locator("[data-minor]").evaluate_all(
            "cells => cells.map(c => c.dataset.minor)"
        )
    ]
    assert sorted(amounts) == [-1_234, 1_234]
    assert await page.get_by_test_id("entries-sum").inner_text() == "$0.00"
    await assert_accessible(page)
    await screenshot(page, "console-ledger-transfer")
    await entries.get_by_role("link", name=str(eve.account_id)).click()
    await page.wait_for_url(f"**/console/ledger?account_id={eve.account_id}")
    assert await page.get_by_test_id("posted").inner_text() == "$12.34"
    running = page.get_by_role("table", name=re.compile("running balance"))
    assert "$12.34" in await running.inner_text()
    await assert_accessible(page)
    await screenshot(page, "console-ledger-account")


async def test_health_shows_each_reconciliation_and_the_delivery_backlogs(
    app: FastAPI, page: Any, isolated_settings: Settings
) -> None:
    operator = await make_user(app, admin=True)
    await log_in(page, operator.username)
    ran = billfold(isolated_settings, "reconcile")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    await page.goto("/console/health")
    outcome = page.get_by_test_id("reconcile-outcome")
    assert "Balanced" in await outcome.inner_text()
    assert "billfold reconcile" in await page.locator("main").inner_text()
    await page.get_by_role("button", name="Reconcile now").click()
    await page.wait_for_url("**/console/health?reconciled=1")

    assert "the console" in await page.locator("main").inner_text()
    assert "Balanced" in await page.get_by_test_id("reconcile-outcome").inner_text()
    runs = await app.state.pool.fetch("SELECT source, balanced FROM reconcile_runs ORDER BY id")
    assert [(r["source"], r["balanced"]) for r in runs][-2:] == [("cli", True), ("console", True)]
    assert (await page.get_by_test_id("unpublished").inner_text()).isdigit()
    await assert_accessible(page)
    await screenshot(page, "console-health")


async def test_the_charts_show_the_days_figures(app: FastAPI, page: Any) -> None:
    fay, gus, operator = (
        await make_user(app),
        await make_user(app),
        await make_user(app, admin=True),
    )
    await fund(app, fay, 2_000)
    await held_transfer(app, fay, gus, "3.00")
    today = (await daily.daily_decisions(app.state.pool, 1))[0]

    await log_in(page, operator.username)
    await page.goto("/console/charts")
    row = page.locator(f"tr[data-day='{datetime.now(UTC).date()}']")
    cells = await row.locator("td").all_inner_texts()
    assert cells[0] == str(today.movements) and today.movements >= 1
    assert cells[1] == f"${today.volume_minor / 100:,.2f}" and today.volume_minor >= 300
    assert cells[2] == str(today.declined)
    for chart in ("volume-chart", "decline-chart"):
        svg = page.get_by_test_id(chart)
        assert await svg.locator("title").count() == 1
        assert "The table below gives every figure" in (
            await svg.locator("desc").text_content() or ""
        )
        assert await svg.locator("rect").count() == 30
    await assert_accessible(page)
    await screenshot(page, "console-charts")


async def test_assessments_explanations_and_aml_pages(app: FastAPI, page: Any) -> None:
    hal, ida, operator = (
        await make_user(app),
        await make_user(app),
        await make_user(app, admin=True),
    )
    await fund(app, hal, 2_000)
    await held_transfer(app, hal, ida, "7.00")

    await log_in(page, operator.username)
    await page.goto("/console/assessments")
    await page.get_by_label("User id").fill(str(hal.id))
    await page.get_by_label("Verdict").select_option("review")
    await page.get_by_role("button", name="Filter").click()
    table = page.get_by_role("table", name="Assessments, newest first")
    assert "$7.00" in await table.inner_text()
    await assert_accessible(page)
    await screenshot(page, "console-assessments")
    await table.get_by_role("link", name=re.compile("Explain assessment")).first.click()
    await page.wait_for_url("**/console/assessments/*")
    assert await page.get_by_role("heading", level=1).inner_text() != ""
    await assert_accessible(page)
    await screenshot(page, "console-explanation")

    await page.goto("/console/assessments?user_id=not-a-uuid")
    assert "user_id" in await page.get_by_role("alert").inner_text()
    await page.goto("/console/aml")
    await assert_accessible(page)
    await screenshot(page, "console-aml")
