"""The wallet's history in a real browser: the API's filters and text search, keyset pages with
older and newer links, and a CSV of every matching row (a note that looks like a formula
written as text)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from billfold.wallet.transfers import check_p2p, do_p2p
from billfold.wallet.users import User
from billfold.web import activity
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import fund, log_in, make_user

LUNCHES = 27  # more than a page (25) of them


async def sent(app: FastAPI, sender: User, recipient: User, amount: str, note: str) -> None:
    """A transfer straight through the wallet's context (no risk scoring: not under test)."""
    state = app.state
    p2p = await check_p2p(state.pool, state.users, sender.id, recipient.username, amount, note)
    await do_p2p(state.ledger, p2p, str(uuid.uuid4()))


async def a_busy_wallet(app: FastAPI) -> tuple[User, User, User]:
    """Someone funded with $100 who paid Pat for 27 lunches ($1.01 to $1.27), and Quinn twice:
    a rent share, and $2.00 with a note that a spreadsheet would take for a formula."""
    me, pat, quinn = await make_user(app), await make_user(app), await make_user(app)
    await fund(app, me, 100_00)
    for n in range(1, LUNCHES + 1):
        await sent(app, me, pat, f"1.{n:02d}", f"lunch {n}")
    await sent(app, me, quinn, "30.00", "rent share")
    await sent(app, me, quinn, "2.00", '=HYPERLINK("http://evil.example","x")')
    return me, pat, quinn


async def test_history_pages_by_keyset_both_ways(app: FastAPI, page: Any) -> None:
    me, _, _ = await a_busy_wallet(app)
    await log_in(page, me.username)
    assert await page.get_by_test_id("history-row").count() == 10  # recent activity
    await page.get_by_role("link", name="All history").click()
    rows = page.get_by_test_id("history-row")
    assert await rows.count() == 25
    first = await rows.first.inner_text()
    assert "=HYPERLINK" in first
    await assert_accessible(page)
    await screenshot(page, "wallet-history")
    await page.get_by_role("link", name="Older").click()
    # 27 lunches, 2 to Quinn, the funding: 30 rows, 5 on the second page, the funding last.
    assert await rows.count() == 5
    assert "Add funds" in await rows.last.inner_text()
    assert await page.get_by_role("link", name="Older").count() == 0
    await page.get_by_role("link", name="Newer").click()
    assert await rows.count() == 25
    assert await rows.first.inner_text() == first
    assert await page.get_by_role("link", name="Newer").count() == 0


async def test_history_filters_and_search_as_the_api_does(app: FastAPI, page: Any) -> None:
    me, _, quinn = await a_busy_wallet(app)
    await log_in(page, me.username)
    await page.goto("/app/history")
    rows = page.get_by_test_id("history-row")
    await page.get_by_label("Search notes and names").fill("rent")
    await page.get_by_role("button", name="Show").click()
    assert await rows.count() == 1 and "rent share" in await rows.first.inner_text()
    await page.goto("/app/history")
    await page.get_by_label("With (username, email or phone)").fill(quinn.email)
    await page.get_by_role("button", name="Show").click()
    assert await rows.count() == 2
    await page.goto("/app/history")
    await page.get_by_label("Direction").select_option("in")
    await page.get_by_role("button", name="Show").click()
    assert await rows.count() == 1 and "+$100.00" in await rows.first.inner_text()
    await page.goto("/app/history")
    await page.get_by_label("At least (USD)").fill("1.25")
    await page.get_by_label("At most (USD)").fill("2.00")
    await page.get_by_role("button", name="Show").click()
    assert await rows.count() == 4  # lunches 25 to 27, and the $2.00
    await assert_accessible(page)
    await page.goto("/app/history")
    await page.get_by_label("From", exact=True).fill("2099-01-01")
    await page.get_by_role("button", name="Show").click()
    assert await rows.count() == 0
    assert await page.get_by_text("Nothing matches").is_visible()
    await page.get_by_label("To", exact=True).fill("2098-12-31")
    await page.get_by_role("button", name="Show").click()
    assert "'from' must be before 'to'" in await page.get_by_role("alert").inner_text()
    await page.goto("/app/history")
    await page.get_by_label("At least (USD)").fill("lots")
    async with page.expect_response("**/app/history?*") as answered:
        await page.get_by_role("button", name="Show").click()
    assert (await answered.value).status == 422
    assert "lots" in await page.get_by_role("alert").inner_text()
    await assert_accessible(page)


async def test_the_csv_holds_every_matching_row_and_no_formula(
    app: FastAPI, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read 7 rows a page here, so that the export goes through several keyset pages."""
    monkeypatch.setattr(activity, "CSV_PAGE", 7)
    me, _, _ = await a_busy_wallet(app)
    await log_in(page, me.username)
    await page.goto("/app/history")
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download CSV").click()
    every = list(csv.DictReader(io.StringIO(await _text(await downloading.value))))
    assert len(every) == LUNCHES + 3
    assert every[0]["note"] == '\'=HYPERLINK("http://evil.example","x")'
    assert every[-1]["type"] == "add_funds" and every[-1]["amount"] == "100.00"
    await page.get_by_label("Search notes and names").fill("lunch")
    await page.get_by_role("button", name="Show").click()
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download CSV").click()
    lunches = list(csv.DictReader(io.StringIO(await _text(await downloading.value))))
    assert sorted(row["note"] for row in lunches) == sorted(
        f"lunch {n}" for n in range(1, LUNCHES + 1)
    )


async def _text(download: Any) -> str:
    path = Path(await download.path())
    return await asyncio.to_thread(path.read_text, encoding="utf-8")
