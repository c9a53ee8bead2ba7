"""The web tests' app, served on a loopback port, and Chromium driving it (tests.web.browser).

One app and one browser per module; each test gets a fresh browser context (no cookies)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold_bench.rules import LOAD_TEST_RULES
from tests.web.browser import chromium_or_skip, serving
from tests.world import running_app


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """As the API tests' app (tests/api/conftest.py): rules whose thresholds these tests'
    new users do not reach; a module testing step-up or holds starts its own."""
    async with running_app(settings, risk_rules=LOAD_TEST_RULES) as app:
        yield app


@pytest.fixture(scope="module")
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    async with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Any, base_url: str) -> AsyncIterator[Any]:
    """A page in a fresh context (no cookies), on the live server; desktop size."""
    context = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(float(os.environ.get("BILLFOLD_TEST_BROWSER_TIMEOUT_MS", 15000)))
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the live server with a cookie jar of its own, for what a browser
    would not send (a forged form, a stale cookie)."""
    async with httpx.AsyncClient(base_url=base_url, follow_redirects=False) as client:
        yield client
