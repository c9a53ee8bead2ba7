"""The `billfold` command: serve | migrate | demo | reconcile | bench."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import pydantic
import typer

from billfold.bench.cli import bench_app
from billfold.config import Settings
from billfold.platform.errors import BillfoldError

T = TypeVar("T")

app = typer.Typer(
    help="Billfold, an open-source digital wallet backend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(bench_app, name="bench")


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
    settings = _with_overrides(_load_settings(), host, port, workers)
    _configure_logging(settings)
    settings = _run(_prepare(settings), "start")
    _serve(settings)


@app.command()
def migrate(
    status: Annotated[bool, typer.Option("--status", help="List pending migrations only.")] = False,
) -> None:
    """Apply pending database migrations, printing each one applied."""
    settings = _load_settings()
    if status:
        pending = _run(_pending(settings), "read migrations")
        for name in pending:
            typer.echo(f"pending  {name}")
        typer.echo(f"{len(pending)} pending" if pending else "up to date")
        return
    applied = _run(_migrate(settings), "migrate")
    for name in applied:
        typer.echo(f"applied  {name}")
    typer.echo(f"{len(applied)} applied" if applied else "up to date")


@app.command()
def demo(host: Host = None, port: Port = None) -> None:
    """Seed demo data, then serve as `serve` does."""
    settings = _with_overrides(_load_settings(), host, port, None)
    _configure_logging(settings)
    settings = _run(_prepare(settings), "start")
    _run(_seed(settings), "seed demo data")
    from billfold.demo import banner

    typer.echo(banner(f"http://{settings.host}:{settings.port}"), err=True)
    _serve(settings)


@app.command()
def reconcile(
    workers: Annotated[int, typer.Option(min=1, help="Ranges checked in parallel.")] = 2,
) -> None:
    """Check the ledger's invariants against the database and report any difference."""
    from billfold.ledger.reconcile import run_cli

    settings = _load_settings()
    try:
        run_cli(settings, workers=workers)
    except _environment_errors() as error:
        _fail(f"cannot reconcile: {_describe(error)}")


def _load_settings() -> Settings:
    try:
        return Settings()
    except pydantic.ValidationError as error:
        problems = "; ".join(_describe_setting(item) for item in error.errors())
        _fail(f"invalid configuration: {problems}", code=2)


def _configure_logging(settings: Settings) -> None:
    from billfold.platform.logging import configure_logging

    try:
        configure_logging(settings)
    except ValueError as error:
        _fail(f"invalid configuration: {error}", code=2)


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


async def _prepare(settings: Settings) -> Settings:
    """Reach (or start) PostgreSQL and Redis and migrate, so that failures show up here cleanly.

    Returns settings naming the resolved URLs. The server's workers inherit them through the
    environment and attach to servers this process keeps running for as long as it lives.
    """
    from billfold.platform.db import connect
    from billfold.platform.embedded import ensure_database, ensure_redis
    from billfold.platform.migrate import apply_migrations
    from billfold.platform.redis import create_redis

    database_url = await asyncio.to_thread(ensure_database, settings)
    redis_url = await asyncio.to_thread(ensure_redis, settings)
    client = await create_redis(redis_url)
    await client.aclose()
    if settings.migrate_on_start:
        await _with_connection(settings, database_url, apply_migrations)
    else:
        conn = await connect(database_url, settings)
        await conn.close()
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    return settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})


async def _migrate(settings: Settings) -> list[str]:
    from billfold.platform.embedded import ensure_database
    from billfold.platform.migrate import apply_migrations

    database_url = await asyncio.to_thread(ensure_database, settings)
    return await _with_connection(settings, database_url, apply_migrations)


async def _pending(settings: Settings) -> list[str]:
    from billfold.platform.embedded import ensure_database
    from billfold.platform.migrate import pending_migrations

    database_url = await asyncio.to_thread(ensure_database, settings)
    return await _with_connection(settings, database_url, pending_migrations)


async def _with_connection(
    settings: Settings,
    database_url: str,
    work: Callable[[Any], Awaitable[T]],
) -> T:
    from billfold.platform.db import connect

    conn = await connect(database_url, settings)
    try:
        return await work(conn)
    finally:
        await conn.close()


async def _seed(settings: Settings) -> None:
    from billfold.demo import seed
    from billfold.platform.db import create_pool

    if settings.database_url is None:
        raise ValueError("demo data needs a database URL; run _prepare first")
    pool = await create_pool(settings.database_url, settings)
    try:
        await seed(pool, settings)
    finally:
        await pool.close()


def _serve(settings: Settings) -> None:
    import uvicorn

    from billfold.platform.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(settings)
    os.environ["BILLFOLD_WORKERS"] = str(settings.workers)
    # Once shut down, uvicorn re-raises the signal that stopped it under the handler found at
    # start. Make SIGTERM, like SIGINT, end the process normally, so that exit hooks run and
    # release the embedded servers.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        # With several workers uvicorn needs an import string, hence the factory. log_config
        # None leaves logging to configure_logging; our middleware writes the access log.
        uvicorn.run(
            "billfold.app:factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _describe_setting(item: Any) -> str:
    name = str(item["loc"][0]) if item["loc"] else "settings"
    variable = name if name.isupper() else f"BILLFOLD_{name.upper()}"
    return f"{variable} {item.get('input')!r}: {item['msg']}"


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
