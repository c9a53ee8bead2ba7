"""Logged tracebacks carry no local variables: a local may hold an account number."""

from __future__ import annotations

import pytest

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
