"""No import cycles in the package (issue 21): every import of a yibao module — at module top or inside a
function — is an edge, and the graph has no cycle. A cycle hidden inside a function still couples two
modules both ways; this test names the modules of any cycle so it can be broken by moving the shared
thing into a module of its own (as ``simulation/errors.py``, ``monitoring/measures.py``, ``store/rotation.py``).

Below the cycle check, the rule for imports in the command modules: at the top, except a module that loads a
heavy engine (``HEAVY``), which stays inside the command that runs it."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


@functools.cache
def modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "yibao").rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


@functools.cache
def imports(name: str, path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """Every import statement of a module: (the module it names, the statement, whether it runs at import time).

    ``from pkg import sub`` names the submodule when it is one, else the module the name lives in; an import
    inside a function body runs only when the function does (class bodies and module-level ``try`` run at once).
    """
    mods = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, ast.stmt, bool]] = []

    def visit(node: ast.AST, at_top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                out.extend((a.name, child, at_top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                out.extend((f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base, child, at_top)
                           for a in child.names)
            visit(child, at_top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return out


def known(name: str, mods: dict[str, Path]) -> str | None:
    """The yibao module a dotted name lives in (``yibao.money.format_yuan`` → ``yibao.money``)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def graph(at_top_only: bool = False) -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for t, _, at_top in imports(name, path):
            if t.startswith("yibao") and (at_top or not at_top_only):
                target = known(t, mods)
                if target and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_imports():
    edges = graph()
    assert "yibao.privacy" in edges["yibao.store.models"]
    assert len(edges) > 100 and sum(map(len, edges.values())) > 300


def test_the_package_has_no_import_cycle():
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" ⇄ ".join(c) for c in found)


# --- imports at module top, except the heavy engines ----------------------------------------------------------
# A command module imports what its commands use at its top. The one exception: a module that loads one of these
# engines when imported. They cost tens to hundreds of milliseconds each to import (on this 2-core machine, after
# what ``yibao.cli`` loads anyway: pandas ~600, numba ~450, alembic, fastapi, openpyxl ~200, httpx, sqlglot ~170,
# duckdb ~80) and only some commands run them, so ``yibao --help`` and every other command would pay for them:
# those imports stay inside the command that runs the engine. SQLAlchemy, pydantic, PyArrow, NumPy and PyYAML are
# not in the list: the store and policy models every domain shares are made of them, and the CLI loads them anyway.
HEAVY = frozenset({
    "duckdb", "numba", "llvmlite", "pyspark", "pandas", "polars",  # analytic and compiled engines
    "fastapi", "starlette", "uvicorn", "httpx", "aiohttp", "jinja2",  # the web service and its clients
    "alembic", "psycopg", "sqlglot",  # migrations, the PostgreSQL driver, SQL translation for Spark
    "openpyxl", "fastexcel", "reportlab", "playwright",  # Excel, PDF, the browser
})
COMMAND_MODULES = ("yibao.cli", "yibao.demo_commands") + tuple(
    sorted(m for m in modules() if m.endswith(".commands") and m.count(".") == 2))


@functools.cache
def engines_loaded_by(name: str) -> frozenset[str]:
    """The heavy engines importing a yibao module loads: its top imports, its packages' ``__init__``, and theirs."""
    mods = modules()
    found: set[str] = set()
    seen: set[str] = set()
    todo = [name]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if "." in m:
            todo.append(m.rpartition(".")[0])
        for t, _, at_top in imports(m, mods[m]):
            if at_top and t.startswith("yibao"):
                todo.extend(filter(None, [known(t, mods)]))
            elif at_top and t.split(".")[0] in HEAVY:
                found.add(t.split(".")[0])
    return frozenset(found)


def lazy_imports() -> list[tuple[str, int, str, frozenset[str]]]:
    """Every import inside a function of a command module: (module, line, what it imports, engines it loads)."""
    mods = modules()
    out = []
    for name in COMMAND_MODULES:
        for t, node, at_top in imports(name, mods[name]):
            if at_top:
                continue
            if t.startswith("yibao"):
                engines = engines_loaded_by(known(t, mods))
            else:
                engines = frozenset({t.split(".")[0]}) & HEAVY
            out.append((name, node.lineno, t, engines))
    return out


def test_the_engine_finder_follows_top_imports_and_packages():
    assert "numba" in engines_loaded_by("yibao.batch.kernel")
    assert "duckdb" in engines_loaded_by("yibao.batch.run")
    assert engines_loaded_by("yibao.money") == frozenset()
    assert engines_loaded_by("yibao.console") == frozenset()
    assert len(COMMAND_MODULES) >= 19 and "yibao.supervision.commands" in COMMAND_MODULES


def test_command_modules_import_at_top_except_heavy_engines():
    """Issue 21: imports at module top. What stays inside a command is only what loads a heavy engine."""
    light = [f"{m}:{line} {t}" for m, line, t, engines in lazy_imports() if not engines]
    assert light == [], "move to the module top (it loads no heavy engine): " + "; ".join(light)


def test_the_command_line_loads_no_heavy_engine_until_a_command_runs_it():
    """``yibao --help`` imports ``yibao.cli`` and so every command module: none of the heavy engines is loaded
    (behaviour: what is in ``sys.modules`` afterwards, in a fresh interpreter)."""
    code = "import sys, yibao.cli; yibao.cli.app; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "typer" in loaded
    assert loaded & HEAVY == set()
