"""SQL text shared by every domain that writes DuckDB (or Spark, SQLite) queries: quoting only.

One place for it so that quoting a pack code, a category or a user's file path is done the same way
everywhere; the domains' own SQL stays in the domains.
"""

from __future__ import annotations

from pathlib import Path


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def ident(text: str) -> str:
    """A column-name-safe form of a pack code (rule ids, categories)."""
    return "".join(ch if ch.isalnum() else "_" for ch in text)


def in_list(column: str, values) -> str:
    return f"{column} IN ({', '.join(q(v) for v in values)})"


def sql_path(path: Path | str) -> str:
    """A file path as a SQL string literal: paths are user input and may hold quotes."""
    return q(Path(path).as_posix())
