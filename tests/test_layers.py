"""The layers hold: handlers in api/ run no SQL and import no other router; the contexts import
inwards only (platform < events < ledger < risk < wallet < funding < notifications), config
imports none, and each table is written by the one context that owns it. Read from the source
(ast), so that a new module is held to it too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import billfold
from billfold.platform.migrate import migrations_dir

SRC = Path(billfold.__file__).parent
# The calls of asyncpg (and of platform.db's wrappers around them) that run a statement or open
# a transaction: a handler asks its context instead.
DATABASE_CALLS = frozenset(
    {"execute", "executemany", "fetch", "fetchrow", "fetchval", "transaction", "acquire"}
)
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\s", re.MULTILINE)
# The statements that write a table (upper case, as the house writes SQL; `DO UPDATE SET` and
# `FOR UPDATE` name no table).
WRITE = re.compile(r"\b(?:INSERT INTO|UPDATE|DELETE FROM)\s+([a-z_][a-z0-9_]*)")
# Who owns each table: the one context that writes it (the migrations that create them say
# whose they are: 0001 the ledger's, 0003 the wallet's, 0006 funding's, 0008-0020 risk's).
OWNERS = {
    "platform": {"schema_migrations"},
    "events": {"outbox", "outbox_default", "event_figures", "event_figures_seen"},
    "ledger": {
        "accounts",
        "transfers",
        "transfers_default",
        "entries",
        "entries_default",
        "hold_resolutions",
        "ledger_archived",
        "idempotency_keys",
        "reconcile_runs",
    },
    "wallet": {"users", "wallets"},
    "risk": {
        "risk_flags",
        "operator_actions",
        "risk_assessments",
        "risk_assessments_default",
        "held_transfers",
        "user_devices",
        "user_countries",
        "user_networks",
        "user_addresses",
    },
    "funding": {
        "bank_accounts",
        "cards",
        "funding_transfers",
        "webhook_inbox",
        "sandbox_card_tokens",
        "sandbox_card_charges",
    },
    "notifications": {"notifications", "notification_preferences"},
    "webhooks": {
        "webhook_endpoints",
        "webhook_deliveries",
        "webhook_deliveries_default",
        "webhook_attempts",
        "webhook_attempts_default",
    },
    "merchants": {
        "merchants",
        "merchant_api_keys",
        "checkout_sessions",
        "merchant_payments",
        "merchant_refunds",
        "merchant_payout_runs",
    },
}
# Folders that are no context: they call the contexts (and may write anything, as the
# benchmarks' seeding does).
OUTER = {"api", "bench", "demo", "web"}
# What each context may import: itself and the layers below it.
BASE = {"platform", "config"}
# events/ sits just above platform: every context writes the outbox in its own transactions.
INWARDS = {
    "platform": BASE,
    "events": BASE | {"events"},
    "ledger": BASE | {"events", "ledger"},
    "risk": BASE | {"events", "risk"},
    "wallet": BASE | {"events", "ledger", "risk", "wallet"},
    "funding": BASE | {"events", "ledger", "risk", "wallet", "funding"},
    "notifications": BASE | {"events", "ledger", "risk", "wallet", "funding", "notifications"},
    "webhooks": BASE | {"events", "ledger", "risk", "wallet", "funding", "webhooks"},
    "merchants": BASE | {"events", "ledger", "risk", "wallet", "funding", "merchants"},
}


def written(path: Path) -> Iterator[tuple[int, str]]:
    """The tables the SQL in `path`'s strings writes, by line (its docstrings are prose)."""
    tree = ast.parse(path.read_text(), str(path))
    prose = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            for table in WRITE.findall(node.value):
                yield node.lineno, table


def modules(folder: str) -> list[Path]:
    return sorted((SRC / folder).rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module `path` imports (at any depth: a function's import counts), by line."""
    package = ".".join(("billfold", *path.relative_to(SRC).parent.parts))
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                # `from billfold.api import funding` imports the module billfold.api.funding.
                yield node.lineno, f"{base}.{alias.name}"


def context_of(module: str) -> str | None:
    """The top folder (or module) of billfold a module name lies in; None outside billfold."""
    parts = module.split(".")
    return parts[1] if parts[0] == "billfold" and len(parts) > 1 else None


def wrong_way(path: Path, allowed: set[str]) -> list[str]:
    where = path.relative_to(SRC)
    return [
        f"{where}:{line} imports {name}"
        for line, name in imported(path)
        if context_of(name) is not None and context_of(name) not in allowed
    ]


def routers() -> dict[str, Path]:
    """The api modules that declare a router, by module name."""
    found = {}
    for path in modules("api"):
        if re.search(r"^router = APIRouter\(", path.read_text(), re.MULTILINE):
            found[f"billfold.api.{path.stem}"] = path
    return found


def test_handlers_run_no_sql() -> None:
    """No module of api/ or web/ holds an SQL statement or calls the database itself."""
    found = []
    for path in modules("api") + modules("web"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Constant) and SQL.search(str(node.value)):
                found.append(f"{where} SQL {str(node.value).strip()[:40]!r}")
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in DATABASE_CALLS:
                found.append(f"{where} calls {ast.unparse(node.func)}()")
    assert found == []


def test_no_router_imports_another() -> None:
    """A router imports no other router: what two of them share lives in a neutral module."""
    found = []
    for name, path in routers().items():
        found += [
            f"{path.relative_to(SRC)}:{line} imports {module}"
            for line, module in imported(path)
            if any(module == other or module.startswith(f"{other}.") for other in routers())
            and not module.startswith(name)
        ]
    assert routers(), "no router found: the test reads the wrong files"
    assert found == []


def test_risk_imports_no_other_context() -> None:
    """risk/ imports only itself, platform/ and the outbox (events/): wallet and funding call its
    gate, and what it needs of them is handed in."""
    allowed = {"risk", "platform", "events"}
    found = [line for path in modules("risk") for line in wrong_way(path, allowed)]
    assert found == []


def test_contexts_import_inwards() -> None:
    """Each context imports only those below it: platform < events < ledger < risk < wallet <
    funding < notifications (config, plain settings, sits with platform). None imports api/,
    the CLI or the benchmarks: they call the contexts, never the other way round."""
    found = [
        line
        for context, allowed in INWARDS.items()
        for path in modules(context)
        for line in wrong_way(path, allowed)
    ]
    folders = {path.name for path in SRC.iterdir() if path.is_dir() and any(path.glob("*.py"))}
    assert folders - OUTER == set(INWARDS), "each folder is a context (INWARDS) or calls them"
    assert found == []


def test_each_table_is_written_by_its_context() -> None:
    """A context inserts into, updates and deletes from its own tables only (OWNERS); what it
    needs changed in another's, it asks of that context's functions. Every table the migrations
    create has one owner."""
    created = set(
        re.findall(
            r"CREATE TABLE (\w+)",
            "".join(path.read_text() for path in sorted(migrations_dir().glob("*.sql"))),
        )
    )
    owned = [table for tables in OWNERS.values() for table in tables]
    writes = {
        context: [w for path in modules(context) for w in written(path)] for context in OWNERS
    }
    found = [
        f"{path.relative_to(SRC)}:{line} writes {table}"
        for context in INWARDS
        for path in modules(context)
        for line, table in written(path)
        if table not in OWNERS[context]
    ]
    assert created <= set(owned) and len(owned) == len(set(owned)), "OWNERS: one owner a table"
    assert all(writes.values()), "a context writes nothing: the test reads the wrong files"
    assert found == []


def test_config_imports_no_context() -> None:
    """config holds plain settings: each context builds its own objects from them."""
    assert wrong_way(SRC / "config.py", set()) == []
