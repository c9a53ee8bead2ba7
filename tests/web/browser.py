"""The web app served for real and driven by Debian's Chromium through Playwright: a live
server on a loopback port (uvicorn, in the tests' own event loop), a browser, and what every
page test checks (axe-core, screenshots).

Playwright downloads no browser here: it drives /usr/bin/chromium (`apt-get install chromium`;
.ci/run installs it). Without it the browser tests are skipped, except under CI, where they
fail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

CHROMIUM = os.environ.get("BILLFOLD_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# The tests' screenshots: docs/screenshots with BILLFOLD_SCREENSHOTS=1 (`make screenshots`),
# else a scratch folder.
REPO = Path(__file__).resolve().parents[2]
BAD_IMPACTS = {"serious", "critical"}


def chromium_or_skip() -> str:
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` (its lifespan already run) served on a free loopback port; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web-test-server")
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    if task.done():
        task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 10)
        sock.close()


async def assert_accessible(page: Any) -> None:
    """axe-core on the page as it is now: no serious or critical violation."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"
    )
    bad = [v for v in result if v["impact"] in BAD_IMPACTS]
    assert bad == [], f"{page.url}: {bad}"


def screenshots_dir() -> Path:
    if os.environ.get("BILLFOLD_SCREENSHOTS"):
        path = REPO / "docs" / "screenshots"
    else:
        path = Path(os.environ.get("TMPDIR", "/tmp")) / "billfold-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def screenshot(page: Any, name: str) -> Path:
    """The page, whole, as docs/screenshots/<name>.png (with BILLFOLD_SCREENSHOTS=1)."""
    path = screenshots_dir() / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
