"""Logging: tracebacks carry no local variables (a local may hold an account number), the
access log, and repeated warnings written once an interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

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


@pytest.mark.parametrize(
    ("make_logger", "counted_as"),
    [
        # structlog puts the values in before the line reaches the handler.
        (get_logger, "budget of 25.0 ms overrun"),
        (logging.getLogger, "budget of %s ms overrun"),
    ],
)
def test_repeated_warnings_are_written_once_an_interval_with_a_count(
    capsys: pytest.CaptureFixture[str], make_logger: Callable[[str], Any], counted_as: str
) -> None:
    """1,000 identical warnings make two lines, the first in full and, at the interval's end, one
    with `repeated: 999`; another warning is written beside them. Ten more in the next interval
    make one line at its end. All are counted. The same for our structlog loggers and the
    standard library's."""
    configure_logging(Settings(log_json=True, log_level="WARNING", log_repeat_interval_s=2.0))
    name = f"test.repeats.{make_logger.__module__}"
    log = make_logger(name)
    labels = {"logger": name, "event": counted_as}
    counted = REGISTRY.get_sample_value("billfold_log_warnings_total", labels) or 0.0
    for _ in range(1000):
        log.warning("budget of %s ms overrun", 25.0)
    log.warning("something else")
    written = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(w["event"], w.get("repeated")) for w in written] == [
        ("budget of 25.0 ms overrun", None),
        ("something else", None),
    ]
    time.sleep(3.0)  # the repeat line is written at the interval's end, by a timer
    repeats = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["event"], r["repeated"], r["interval_s"], r["level"]) for r in repeats] == [
        ("budget of 25.0 ms overrun", 999, 2.0, "warning")
    ]
    for _ in range(10):
        log.warning("budget of %s ms overrun", 25.0)
    assert capsys.readouterr().err == ""
    time.sleep(2.0)
    repeats = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["event"], r["repeated"]) for r in repeats] == [("budget of 25.0 ms overrun", 10)]
    after = REGISTRY.get_sample_value("billfold_log_warnings_total", labels)
    assert after == counted + 1010


def test_with_no_interval_every_warning_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    """log_repeat_interval_s 0 turns aggregation off."""
    configure_logging(Settings(log_json=True, log_level="WARNING", log_repeat_interval_s=0))
    for _ in range(5):
        get_logger("test.repeats").warning("again")
    assert len(capsys.readouterr().err.splitlines()) == 5
