"""The `billfold` command: serve, migrate, demo, reconcile, users, ach, keys, events, mail,
merchants, risk, bench."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pydantic
import typer

from billfold.config import Settings
from billfold.platform.errors import BillfoldError
from billfold.risk.rules import RiskRules

T = TypeVar("T")

app = typer.Typer(
    help="Billfold, an open-source digital wallet backend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
users_app = typer.Typer(help="Users: operator roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")
ach_app = typer.Typer(help="ACH: the NACHA files exchanged with the bank.", no_args_is_help=True)
app.add_typer(ach_app, name="ach")
keys_app = typer.Typer(help="Encryption keys for data at rest.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
events_app = typer.Typer(help="Events: the stream of what changed.", no_args_is_help=True)
app.add_typer(events_app, name="events")
partitions_app = typer.Typer(
    help="Monthly partitions of the tables that grow with traffic.", no_args_is_help=True
)
app.add_typer(partitions_app, name="partitions")
mail_app = typer.Typer(help="Mail: what the local mail sink kept.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")
merchants_app = typer.Typer(help="Merchants: settlement and payouts.", no_args_is_help=True)
app.add_typer(merchants_app, name="merchants")
payouts_app = typer.Typer(help="Merchants' payouts to their owners' banks.", no_args_is_help=True)
merchants_app.add_typer(payouts_app, name="payouts")
# The offline command groups, loaded only when asked: the service never imports them, and the
# benchmarks are a package of their own (tools/bench), absent where only the service is installed.
# Each takes the rest of the command line, --help included, to its own group.
OFFLINE_GROUP = {"allow_extra_args": True, "ignore_unknown_options": True}


Host = Annotated[str | None, typer.Option(help="Interface to bind. [env: BILLFOLD_HOST]")]
Port = Annotated[int | None, typer.Option(help="Port to bind. [env: BILLFOLD_PORT]")]
Workers = Annotated[
    int | None, typer.Option(min=1, help="Worker processes. [env: BILLFOLD_WORKERS]")
]


def main() -> None:
    app()


@app.command()
def serve(host: Host = None, port: Port = None, workers: Workers = None) -> None:
    """Run the HTTP service (embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL)."""
    from billfold.platform import stack

    settings = _with_overrides(_load_settings(), host, port, workers)
    _configure_logging(settings)
    settings = _run(stack.prepare(settings), "start")
    _serve(settings)


@app.command()
def migrate(
    status: Annotated[bool, typer.Option("--status", help="List pending migrations only.")] = False,
) -> None:
    """Apply pending database migrations, printing each one applied."""
    from billfold.platform import stack

    settings = _load_settings()
    if status:
        pending = _run(stack.pending(settings), "read migrations")
        for name in pending:
            typer.echo(f"pending  {name}")
        typer.echo(f"{len(pending)} pending" if pending else "up to date")
        return
    applied = _run(stack.migrate(settings), "migrate")
    for name in applied:
        typer.echo(f"applied  {name}")
    typer.echo(f"{len(applied)} applied" if applied else "up to date")


@app.command()
def demo(host: Host = None, port: Port = None) -> None:
    """Seed demo data, then serve as `serve` does, logging for a person at the terminal."""
    from billfold.platform import stack

    settings = demo_settings(_with_overrides(_load_settings(), host, port, None))
    _configure_logging(settings)
    settings = _run(stack.prepare(settings), "start")
    _run(_seed(settings), "seed demo data")
    from billfold.demo import banner

    typer.echo(banner(f"http://{settings.host}:{settings.port}"), err=True)
    _serve(settings)


@app.command()
def reconcile(
    workers: Annotated[int, typer.Option(min=1, help="Ranges checked in parallel.")] = 2,
) -> None:
    """Check the ledger's invariants, and the funding movements against the ledger; report any
    difference (exit 1)."""
    from billfold.funding.reconcile import check_funding
    from billfold.ledger.reconcile import run_cli

    settings = _load_settings()
    try:
        run_cli(settings, workers=workers, more_checks=check_funding)
    except _environment_errors() as error:
        _fail(f"cannot reconcile: {_describe(error)}")


@users_app.command("grant-admin")
def grant_admin(handle: Annotated[str, typer.Argument(help="Username, email or phone.")]) -> None:
    """Give a user the admin (operator) role. The only way the role is granted."""
    from billfold.wallet.users import grant_admin as grant

    settings = _load_settings()
    user = _run(_with_pool(settings, lambda pool: grant(pool, handle)), "grant the admin role")
    print(f"{user.username} ({user.id}) is now an admin")


@events_app.command("tail")
def events_tail(
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type (e.g. transfer.completed)."),
    ] = None,
) -> None:
    """Print the events as they are published, one CloudEvents JSON a line, until interrupted."""
    from billfold.events.cli import tail

    settings = _load_settings()
    try:
        asyncio.run(tail(settings, type_ or [], lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        pass
    except _environment_errors() as error:
        _fail(f"cannot tail the events: {_describe(error)}")


@events_app.command("replay")
def events_replay(
    from_: Annotated[
        datetime,
        typer.Option("--from", help="Publish again every event kept from this time on (UTC)."),
    ],
) -> None:
    """Have the relays publish again the events from a time on (those not yet pruned), in
    order; consumers drop what they had by the event id."""
    from billfold.events.cli import replay_from

    since = from_ if from_.tzinfo else from_.replace(tzinfo=UTC)
    settings = _load_settings()
    try:
        count = asyncio.run(replay_from(settings, since))
    except _environment_errors() as error:
        _fail(f"cannot replay the events: {_describe(error)}")
    print(f"{count} events will be published again")


@partitions_app.command("list")
def partitions_list() -> None:
    """Every partition of every partitioned table: its month, rows (estimated) and size."""
    from billfold.platform.partitions import list_partitions

    settings = _load_settings()

    async def work(pool: Any) -> Any:
        async with pool.acquire() as conn:
            return await list_partitions(conn)

    for part in _run(_with_pool(settings, work), "list the partitions"):
        month = f"{part.month:%Y-%m}" if part.month else "default"
        print(
            f"{part.parent:<20} {part.name:<28} {month:<8} {part.rows_estimate:>12,} rows "
            f"{part.bytes / 2**20:>10,.1f} MiB"
        )


@partitions_app.command("ensure")
def partitions_ensure(
    months_ahead: Annotated[
        int | None, typer.Option(help="Months ahead (default: partitions_months_ahead).")
    ] = None,
) -> None:
    """Create the partitions of this month and the months ahead that are missing (each process
    does it too, hourly)."""
    from billfold.platform.partitions import ensure

    settings = _load_settings()
    ahead = settings.partitions_months_ahead if months_ahead is None else months_ahead
    made = _run(_with_pool(settings, lambda pool: ensure(pool, ahead)), "create the partitions")
    names = [name for names in made.values() for name in names]
    print(f"created {len(names)} partitions" + (f": {', '.join(names)}" if names else ""))


@partitions_app.command("detach")
def partitions_detach(
    before: Annotated[
        str, typer.Option(help="Detach the months before this one (YYYY-MM), into `archive`.")
    ],
) -> None:
    """Detach the monthly partitions before a month into the `archive` schema (dump them with
    pg_dump, then drop them); a month that still holds unpublished events or unresolved holds
    stays, and the ledger's accounts' positions are carried forward first."""
    from billfold.events.outbox import DETACH_GUARD
    from billfold.ledger.archive import DETACH_HOOKS
    from billfold.platform.partitions import detach, parse_month

    try:
        month = parse_month(before)
    except ValueError as error:
        _fail(str(error))
    settings = _load_settings()
    guards = {"outbox": DETACH_GUARD}
    report = lambda line: print(line, flush=True)  # noqa: E731
    try:
        detached, kept = _run(
            _with_pool(settings, lambda pool: detach(pool, month, guards, report, DETACH_HOOKS)),
            "detach the partitions",
        )
    except ValueError as error:
        _fail(str(error))
    print(f"detached {len(detached)} partitions; kept {len(kept)}")


@mail_app.command("list")
def mail_list(
    last: Annotated[int, typer.Option(min=1, help="Only the last N messages.")] = 50,
) -> None:
    """The emails the local mail sink kept (with no BILLFOLD_SMTP_URL), oldest first: id,
    time, recipient, subject."""
    from billfold.notifications.sink import list_messages, mail_dir

    settings = _load_settings()
    kept = list_messages(settings.data_dir, last)
    for message in kept:
        received = message.received_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{message.id}  {received}  {message.to}  {message.subject}")
    if not kept:
        typer.echo(f"no mail kept in {mail_dir(settings.data_dir)}", err=True)


@mail_app.command("show")
def mail_show(
    message_id: Annotated[str, typer.Argument(help="An id `billfold mail list` printed.")],
) -> None:
    """One email the local mail sink kept, headers and text."""
    from billfold.notifications.sink import read_message

    settings = _load_settings()
    try:
        message = read_message(settings.data_dir, message_id)
    except LookupError as error:
        _fail(str(error))
    for header in ("Date", "From", "To", "Subject", "Message-ID"):
        typer.echo(f"{header}: {message.get(header, '')}")
    part = message.get_body(("plain",))
    typer.echo("")
    typer.echo(part.get_content() if part is not None else message.as_string(), nl=False)


@events_app.command("figures")
def events_figures(
    day: Annotated[
        datetime | None,
        typer.Option(
            "--day", formats=["%Y-%m-%d"], help="The day (UTC) to show; today by default."
        ),
    ] = None,
) -> None:
    """Print a day's figures of the stream: events and volume by type and currency, and the
    hold and decline rates of person-to-person transfers (kept by the `figures` group)."""
    from billfold.events.cli import figures_lines, figures_of

    settings = _load_settings()
    wanted = day.date() if day else datetime.now(UTC).date()
    try:
        figures = asyncio.run(figures_of(settings, wanted))
    except _environment_errors() as error:
        _fail(f"cannot read the figures: {_describe(error)}")
    print("\n".join(figures_lines(figures)))


@merchants_app.command("settlement")
def merchants_settlement(
    out: Annotated[Path, typer.Option(help="Where to write the CSV report.")],
    day: Annotated[
        datetime | None,
        typer.Option(
            "--date", formats=["%Y-%m-%d"], help="The day (UTC) to report; today by default."
        ),
    ] = None,
) -> None:
    """Write a day's settlement report as CSV: each payment completed and each refund made
    that day, by merchant (gross, fee, net), then each merchant's totals."""
    from billfold.merchants.cli import settlement

    settings = _load_settings()
    try:
        wanted = day.date() if day else datetime.now(UTC).date()
        totals = asyncio.run(settlement(settings, wanted, out))
    except _environment_errors() as error:
        _fail(f"cannot write the report: {_describe(error)}")
    print(
        f"{len(totals)} merchants in {out}"
        if totals
        else f"no sales that day; {out} has headers only"
    )


@ach_app.command("export")
def ach_export(
    out: Annotated[Path, typer.Option(help="Where to write the NACHA file.")] = Path(
        "billfold-ach.txt"
    ),
) -> None:
    """Write the outgoing NACHA file: every ACH entry not yet sent (add-funds debits, cash-out
    and micro-deposit credits, merchants' payouts in a CCD batch). The file holds full account
    numbers: it is written 0600."""
    from billfold.funding.ach.files import export_file
    from billfold.funding.cli import run

    settings = _load_settings()
    try:
        count = run(settings, lambda funding: export_file(funding, out))
    except _environment_errors() as error:
        _fail(f"cannot export: {_describe(error)}")
    print(f"{count} entries written to {out}" if count else "nothing to send; no file written")


@ach_app.command("import")
def ach_import(
    file: Annotated[Path, typer.Argument(help="A returns file from the bank.")],
    accept_findings: Annotated[
        bool,
        typer.Option(
            "--accept-findings",
            help="Apply a file that reads but breaks NACHA rules; each finding is printed.",
        ),
    ] = False,
) -> None:
    """Apply each return in a NACHA returns file. A malformed file is refused whole, naming
    the line and field; so is one that reads but breaks NACHA rules (its findings, listed),
    unless --accept-findings. Exit 1 if any return could not be applied."""
    from billfold.funding.ach import NachaError
    from billfold.funding.ach.files import FindingsNotAccepted, import_returns, print_progress
    from billfold.funding.cli import run

    settings = _load_settings()
    try:
        text = file.read_bytes()
    except OSError as error:
        _fail(f"cannot read {file}: {error.strerror}")
    try:
        report = run(
            settings,
            lambda funding: import_returns(
                funding,
                text.decode("latin-1"),
                name=file.name,
                accept_findings=accept_findings,
                progress=print_progress,
            ),
        )
    except NachaError as error:
        _fail(f"{file}: {error}")
    except FindingsNotAccepted as error:
        findings = "".join(f"\n  finding: {finding}" for finding in error.findings[:50])
        more = len(error.findings) - 50
        findings += f"\n  ... and {more} more" if more > 0 else ""
        _fail(f"{error.detail}; check with the bank, then --accept-findings applies it{findings}")
    except _environment_errors() as error:
        _fail(f"cannot import: {_describe(error)}")
    print(
        f"{report.entries} returns: {report.applied} applied, {report.ignored} already applied,"
        f" {len(report.refused)} refused"
    )
    for line in report.findings[:50]:
        print(f"  accepted finding: {line}")
    for line in report.refused[:50]:
        print(f"  refused: {line}")
    if report.refused:
        raise typer.Exit(1)


@payouts_app.command("run")
def payouts_run(
    day: Annotated[
        datetime | None,
        typer.Option(
            "--date", formats=["%Y-%m-%d"], help="The day (UTC) to pay for; default today."
        ),
    ] = None,
) -> None:
    """Pay every merchant on daily payouts not yet paid for the day: its available balance, if
    at least BILLFOLD_PAYOUT_MIN_MINOR, scored as the service scores it. Safe beside the
    service's own scheduler and run again: each merchant is paid once a day. Exit 1 if some
    were left for a later run (scoring or the ledger busy)."""
    settings = _load_settings()
    when = (day or datetime.now(UTC)).date()
    report = _run(_run_payouts(settings, when), "run the payouts")
    print(
        f"{report.day}: {report.paid} paid, {report.refused} refused, {report.below_minimum}"
        f" below the minimum, {report.left} left for a later run"
    )
    if report.left:
        raise typer.Exit(1)


async def _run_payouts(settings: Settings, day: Any) -> Any:
    """The app's parts started as the service starts them (so payouts are scored by the same
    engine), without the work a serving process does on its own, for one run of `day`."""
    from billfold.app import create_app
    from billfold.merchants.schedule import run_daily_payouts
    from billfold.risk.gate import Gate

    quiet = {
        "events_relay": False,
        "events_consumers": False,
        "webhooks_dispatcher": False,
        "payouts_scheduler": False,
        "sandbox_settle_after_s": 0.0,
    }
    app = create_app(settings.model_copy(update=quiet))
    async with app.router.lifespan_context(app):
        state = app.state
        gate = Gate(state.risk, state.redis, settings.risk_budget_ms, state.fail_closed_minor)
        return await run_daily_payouts(state.funding, gate, day, settings.payout_min_minor)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every encrypted field under the first key of BILLFOLD_DATA_KEYS, while the
    service runs. Afterwards the other keys can be removed."""
    from billfold.funding.cli import run, say
    from billfold.platform.rewrap import rotate

    settings = _load_settings()
    sealed = sealed_columns()

    def progress(done: int, total: int) -> None:
        say(f"keys rotate: {done}/{total} re-wrapped")

    try:
        result = run(settings, lambda funding: rotate(funding.pool, funding.keys, sealed, progress))
    except _environment_errors() as error:
        _fail(f"cannot rotate keys: {_describe(error)}")
    print(f"{result.rewrapped} values re-wrapped; {result.remaining} under other keys")
    if result.remaining:
        raise typer.Exit(1)


def sealed_columns() -> tuple[Any, ...]:
    """Every context's sealed columns, which `billfold keys rotate` re-wraps."""
    from billfold.funding import keys as funding_keys
    from billfold.webhooks import signing

    return (*funding_keys.SEALED, *signing.SEALED)


@app.command(context_settings=OFFLINE_GROUP, add_help_option=False)
def risk(ctx: typer.Context) -> None:
    """Risk: train and evaluate the fraud model (offline)."""
    from billfold.risk.training.cli import risk_app

    risk_app(ctx.args, prog_name="billfold risk")


@app.command(context_settings=OFFLINE_GROUP, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Benchmarks (tools/bench, installed by `make setup`)."""
    try:
        from billfold_bench.cli import bench_app
    except ModuleNotFoundError as error:
        if error.name != "billfold_bench":
            raise
        _fail("`billfold bench` needs the benchmarks (tools/bench): `make setup` installs them")
    bench_app(ctx.args, prog_name="billfold bench")


async def _with_pool(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from billfold.platform.db import create_pool
    from billfold.platform.embedded import ensure_database

    dsn = await asyncio.to_thread(ensure_database, settings)
    pool = await create_pool(dsn, settings.model_copy(update={"db_pool_min": 1, "db_pool_max": 2}))
    try:
        return await work(pool)
    finally:
        await pool.close()


def _load_settings() -> Settings:
    try:
        settings = Settings()
        # Each worker builds the risk engine's rules from their setting: refused here, at start.
        RiskRules.model_validate(settings.risk_rules)
    except pydantic.ValidationError as error:
        setting = "risk_rules" if error.title == RiskRules.__name__ else None
        problems = "; ".join(_describe_setting(item, setting) for item in error.errors())
        _fail(f"invalid configuration: {problems}", code=2)
    return settings


def _configure_logging(settings: Settings) -> None:
    from billfold.platform.logging import configure_logging

    try:
        configure_logging(settings)
    except ValueError as error:
        _fail(f"invalid configuration: {error}", code=2)


# What `billfold demo` logs unless BILLFOLD_LOG_LEVEL / BILLFOLD_LOG_JSON say otherwise: lines a
# person reads (not JSON), warnings and errors only (not a line per request), so the banner stays
# on screen.
DEMO_LOGGING = {"log_level": "WARNING", "log_json": False}


def demo_settings(settings: Settings) -> Settings:
    chosen = settings.model_fields_set
    return settings.model_copy(update={k: v for k, v in DEMO_LOGGING.items() if k not in chosen})


def _with_overrides(
    settings: Settings, host: str | None, port: int | None, workers: int | None
) -> Settings:
    changes = {"host": host, "port": port, "workers": workers}
    return settings.model_copy(update={k: v for k, v in changes.items() if v is not None})


def _run(work: Coroutine[Any, Any, T], action: str) -> T:
    """Run `work`, turning an environment failure into a one-line message and exit status 1."""
    try:
        return asyncio.run(work)
    except _environment_errors() as error:
        _fail(f"cannot {action}: {_describe(error)}")


def _environment_errors() -> tuple[type[BaseException], ...]:
    """Failures of configuration or surroundings, reported in one line without a traceback."""
    # Imported here to keep `billfold --help` quick.
    import asyncpg
    import redis.exceptions

    return (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        redis.exceptions.RedisError,
        subprocess.CalledProcessError,
        BillfoldError,
    )


async def _seed(settings: Settings) -> None:
    from billfold.demo import seed
    from billfold.platform.db import create_pool

    if settings.database_url is None:
        raise ValueError("demo data needs a database URL; run stack.prepare first")
    pool = await create_pool(settings.database_url, settings)
    try:
        await seed(pool, settings)
    finally:
        await pool.close()


def _serve(settings: Settings) -> None:
    import uvicorn

    from billfold.platform.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(settings)
    # The workers build their settings from the environment (billfold.app:factory).
    os.environ["BILLFOLD_WORKERS"] = str(settings.workers)
    os.environ["BILLFOLD_LOG_LEVEL"] = settings.log_level
    os.environ["BILLFOLD_LOG_JSON"] = str(settings.log_json).lower()
    # Once shut down, uvicorn re-raises the signal that stopped it under the handler found at
    # start. Make SIGTERM, like SIGINT, end the process normally, so that exit hooks run and
    # release the embedded servers.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        # With several workers uvicorn needs an import string, hence the factory. log_config
        # None leaves logging to configure_logging; our middleware writes the access log.
        # proxy_headers off: uvicorn would trust X-Forwarded-For from 127.0.0.1 (or
        # FORWARDED_ALLOW_IPS); the app trusts only BILLFOLD_TRUSTED_PROXIES (app.create_app).
        uvicorn.run(
            "billfold.app:factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _describe_setting(item: Any, setting: str | None = None) -> str:
    name = setting or (str(item["loc"][0]) if item["loc"] else "settings")
    variable = name if name.isupper() else f"BILLFOLD_{name.upper()}"
    return f"{variable} {_without_password(item.get('input'))!r}: {item['msg']}"


def _without_password(value: Any) -> Any:
    """A URL setting as shown in an error: its password (smtp://user:secret@host) masked."""
    if not isinstance(value, str) or "@" not in value:
        return value
    parts = urlsplit(value)
    if not parts.password:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        return f"embedded server command failed ({error.cmd[0]} exited {error.returncode})"
    if isinstance(error, BillfoldError):
        return error.detail
    message = str(error) or type(error).__name__
    return f"{message} ({type(error).__name__})"


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)
