"""Logged tracebacks carry no local variables: a local may hold an account number."""

from __future__ import annotations

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from billfold.api.middleware import RequestContextMiddleware
from billfold.config import Settings
from billfold.platform.logging import configure_logging, get_logger


@pytest.mark.parametrize("log_json", [True, False])
def test_a_logged_exception_shows_no_locals(
    capsys: pytest.CaptureFixture[str], log_json: bool
) -> None:
    """An error raised where a local holds a full account number is logged without it."""
    configure_logging(Settings(log_json=log_json))
    # Built at run time: the console format shows source lines, which are not secrets.
    account_number = "".join(["000123", "456789"])
    try:
        raise RuntimeError(f"failed on an account ending {account_number[-4:]}")
    except RuntimeError:
        get_logger("test").exception("export failed")
    logged = capsys.readouterr().err
    assert "export failed" in logged and "RuntimeError" in logged
    assert account_number not in logged


@pytest.mark.parametrize(("level", "written"), [("INFO", True), ("WARNING", False)])
async def test_each_request_is_logged_and_counted_at_info(
    capsys: pytest.CaptureFixture[str], level: str, written: bool
) -> None:
    """The access log line (route template, status) is written at INFO and not above; the
    request is counted either way."""
    configure_logging(Settings(log_json=True, log_level=level))
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    counted = REGISTRY.get_sample_value(
        "billfold_http_requests_total",
        {"method": "GET", "route": "/things/{thing_id}", "status": "200"},
    )
    transport = httpx.ASGITransport(app=RequestContextMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/things/7")).status_code == 200
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    requests = [line for line in lines if line.get("event") == "request"]
    if written:
        assert [(r["route"], r["path"], r["status"]) for r in requests] == [
            ("/things/{thing_id}", "/things/7", 200)
        ]
    else:
        assert requests == []
    after = REGISTRY.get_sample_value(
        "billfold_http_requests_total",
        {"method": "GET", "route": "/things/{thing_id}", "status": "200"},
    )
    assert (after or 0) - (counted or 0) == 1


def test_a_lone_surrogate_is_logged_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """Text that has no UTF-8 form (a client's lone surrogate, in a field or in an error's
    message) is written escaped, and the line stays one JSON object."""
    configure_logging(Settings(log_json=True))
    try:
        raise ValueError("could not store 'bad\ud800value'")
    except ValueError:
        get_logger("test").exception("store failed", value="x\udfff")
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert [line["value"] for line in lines] == ["x\\udfff"]
    assert "bad\\ud800value" in lines[0]["exception"][0]["exc_value"]
