"""The layers hold: handlers in api/ run no SQL and import no other router; risk/ imports no other
context; config imports none. Read from the source (ast), so that a new module is held to it too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import billfold

SRC = Path(billfold.__file__).parent
# The calls of asyncpg (and of platform.db's wrappers around them) that run a statement or open
# a transaction: a handler asks its context instead.
DATABASE_CALLS = frozenset(
    {"execute", "executemany", "fetch", "fetchrow", "fetchval", "transaction", "acquire"}
)
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\s", re.MULTILINE)


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
    """No module of api/ holds an SQL statement or calls the database itself."""
    found = []
    for path in modules("api"):
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
    """risk/ imports only itself and platform/: wallet and funding call its gate, and what it
    needs of them is handed in."""
    found = [line for path in modules("risk") for line in wrong_way(path, {"risk", "platform"})]
    assert found == []


def test_config_imports_no_context() -> None:
    """config holds plain settings: each context builds its own objects from them."""
    assert wrong_way(SRC / "config.py", set()) == []
