"""The billfold command: migrations from the shell, and clean messages for bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from billfold import cli
from billfold.config import Settings
from billfold.platform.migrate import load_migrations

BILLFOLD = str(Path(sys.executable).with_name("billfold"))


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BILLFOLD, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_migrate_applies_then_reports_up_to_date(
    database_factory: Callable[[], Awaitable[str]],
) -> None:
    """`migrate --status` lists every migration on a new database; `migrate` applies them all."""
    dsn = await database_factory()
    names = [migration.name for migration in load_migrations()]

    before = run("migrate", "--status", DATABASE_URL=dsn)
    applied = run("migrate", DATABASE_URL=dsn)
    after = run("migrate", "--status", DATABASE_URL=dsn)

    assert before.stdout.split("\n")[: len(names)] == [f"pending  {name}" for name in names]
    assert applied.stdout.split("\n")[: len(names)] == [f"applied  {name}" for name in names]
    assert (after.returncode, after.stdout) == (0, "up to date\n")


def test_unreachable_database_is_one_line_without_traceback() -> None:
    """A DATABASE_URL nobody listens on exits 1 with a short error naming the problem."""
    result = run("migrate", DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")

    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot migrate: ")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_invalid_setting_is_named() -> None:
    result = run("migrate", BILLFOLD_PORT="eighty")

    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid configuration: BILLFOLD_PORT 'eighty': ")
    assert "Traceback" not in result.stderr


def test_an_invalid_url_setting_is_named_without_its_password() -> None:
    result = run("migrate", BILLFOLD_SMTP_URL="smtp://mailer:s3cret-pw@mail.example:99999")

    assert result.returncode == 2
    assert "BILLFOLD_SMTP_URL 'smtp://mailer:***@mail.example:99999'" in result.stderr
    assert "s3cret-pw" not in result.stderr


def test_a_trusted_proxy_that_is_no_address_or_network_is_named() -> None:
    """BILLFOLD_TRUSTED_PROXIES takes addresses and CIDR networks; anything else (a network with
    host bits, `*`) stops the start with the entry named, rather than trusting the unintended."""
    for entry in ("10.0.0.1/8", "*"):
        result = run("migrate", BILLFOLD_TRUSTED_PROXIES=f"127.0.0.1, {entry}")

        assert result.returncode == 2
        assert result.stderr.startswith("error: invalid configuration: BILLFOLD_TRUSTED_PROXIES")
        assert f"'{entry}' is not an IP address or network" in result.stderr


def test_the_old_forwarded_for_switch_says_what_replaces_it() -> None:
    """BILLFOLD_TRUST_FORWARDED_FOR=true (trusting any peer) is refused, naming
    BILLFOLD_TRUSTED_PROXIES, rather than silently ignored."""
    result = run("migrate", BILLFOLD_TRUST_FORWARDED_FOR="true")

    assert result.returncode == 2
    assert "BILLFOLD_TRUSTED_PROXIES" in result.stderr and "Traceback" not in result.stderr


def test_the_offline_groups_are_loaded_when_asked() -> None:
    """`billfold risk` and `billfold bench` load their groups when asked: help, and a command's
    own help, as before they were loaded lazily."""
    risk = run("risk", "--help")
    bench = run("bench", "--help")
    bench_api = run("bench", "api", "--help")

    assert (risk.returncode, bench.returncode, bench_api.returncode) == (0, 0, 0)
    assert "Usage: billfold risk [OPTIONS] COMMAND" in risk.stdout and "evaluate" in risk.stdout
    assert "Usage: billfold bench [OPTIONS] COMMAND" in bench.stdout
    assert "transfer-cost" in bench.stdout and "--users" in bench_api.stdout
    assert "events" in bench.stdout


def test_bench_without_the_benchmarks_installed_says_how_to_get_them() -> None:
    """Where only the service is installed (`make demo`), `billfold bench` says in one line
    what installs the benchmarks."""
    # As after `uv sync --no-dev`: the benchmarks' directory is not on the path.
    code = (
        "import sys; sys.path = [p for p in sys.path if not p.endswith('tools/bench')]; "
        "from billfold.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "bench", "api"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr == (
        "error: `billfold bench` needs the benchmarks (tools/bench): `make setup` installs them\n"
    )


def test_demo_logsdemo_settings_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BILLFOLD_LOG_LEVEL", raising=False)
    monkeypatch.delenv("BILLFOLD_LOG_JSON", raising=False)
    quiet = cli.demo_settings(Settings())
    assert (quiet.log_level, quiet.log_json) == ("WARNING", False)

    monkeypatch.setenv("BILLFOLD_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("BILLFOLD_LOG_JSON", "true")
    chosen = cli.demo_settings(Settings())
    assert (chosen.log_level, chosen.log_json) == ("DEBUG", True)


def test_grant_admin_is_the_way_to_the_admin_role(settings: Settings) -> None:
    """`billfold users grant-admin` names an unknown handle cleanly."""
    env = {**os.environ, "DATABASE_URL": str(settings.database_url)}
    result = subprocess.run(
        [BILLFOLD, "users", "grant-admin", "@nobody_here"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "nobody_here" in result.stderr and "Traceback" not in result.stderr
