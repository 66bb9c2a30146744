"""The catalog (病种目录 / DRG 权重表): a versioned artefact built from historical cases.

A catalog directory holds ``groups.parquet`` (one row per group: keys, cases, average cost in
fen, score × 10⁴), ``group_levels.parquet`` (each group's average cost per institution level),
``levels.parquet`` (等级系数 × 10⁴), ``catalog.json`` (manifest: kind, version, parameters,
years and weights, counts) and ``catalog.md`` (a readable report). The version is the kind, the
years and the first 12 hex digits of a SHA-256 over the three tables, so the same history and
parameters always give the same version, and any change gives another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb

from yibao.sql import q
from yibao.errors import Problem
from yibao.money import format_yuan
from yibao.payment import dip, drg
from yibao.payment.cases import OPERATION_TYPES, PaymentError
from yibao.payment.sql import group_level_sql, group_stats_sql, level_coefficient_sql

# what grouping, statistics and points read of a case (DIP and DRG)
CASE_KEYS = ["mdtrt_id", "psn_no", "fixmedins_code", "level", "dise_codg", "dise_cat", "oprn_combo", "op_type",
             "cost", "hifp", "others"]
TABLES = {"cat_groups": "groups.parquet", "cat_group_levels": "group_levels.parquet", "cat_levels": "levels.parquet"}


def score_text(e4: int) -> str:
    return str(Decimal(e4).scaleb(-4))


def parse_years(text: str | None) -> dict[int, int]:
    """``2023,2024`` (equal weights) or ``2022:1,2023:2,2024:3`` (relative integer weights 1–10).

    >>> parse_years("2022:1,2024:3"), parse_years("2024")
    ({2022: 1, 2024: 3}, {2024: 1})
    """
    if not text:
        return {}
    years: dict[int, int] = {}
    for part in text.replace("，", ",").split(","):
        part = part.strip()
        year, _, weight = part.partition(":")
        if not year.isdigit() or len(year) != 4 or (weight and not weight.isdigit()) or not 1 <= int(weight or 1) <= 10:
            raise PaymentError(Problem("PAY005", "--years",
                                       f"年度写作 2023,2024 或 2022:1,2023:2(权重为 1–10 的整数), 实际为 {part!r}"))
        years[int(year)] = int(weight or 1)
    return years


@dataclass
class BuildParams:
    kind: str  # dip | drg
    scale: Decimal
    min_cases: int = 15
    level_coefficients: bool = True


def build(con: duckdb.DuckDBPyConnection, params: BuildParams, years: dict[int, int]) -> dict:
    """Group the usable historical cases (``cases_all``) and compute the catalog tables in ``con``."""
    if not years:
        years = {y: 1 for (y,) in con.sql("SELECT DISTINCT year FROM cases_all WHERE year IS NOT NULL").fetchall()}
    weight = "CASE year " + " ".join(f"WHEN {y} THEN {w}" for y, w in years.items()) + " END"
    year_list = ", ".join(str(y) for y in years) or "NULL"
    # a view of the columns grouping needs: the wide case rows are not copied again
    con.sql(f"CREATE OR REPLACE VIEW hist AS SELECT {', '.join(CASE_KEYS)}, {weight} AS w FROM cases_all "
            f"WHERE reason IS NULL AND year IN ({year_list})")
    if params.kind == "dip":
        con.sql(f"CREATE OR REPLACE TABLE grouped AS {dip.build_grouping_sql('hist', params.min_cases)}")
        keys = dip.KEYS
    else:
        con.sql(f"CREATE OR REPLACE TABLE grouped_all AS {drg.grouping_sql('hist')}")
        con.sql("UPDATE cases_all SET reason = 'PAY030' WHERE mdtrt_id IN "
                "(SELECT mdtrt_id FROM grouped_all WHERE group_code IS NULL)")
        con.sql("CREATE OR REPLACE TABLE grouped AS SELECT * FROM grouped_all WHERE group_code IS NOT NULL")
        keys = drg.KEYS
    n = con.sql("SELECT COUNT(*) FROM grouped").fetchone()[0]
    if n == 0:
        raise PaymentError(Problem("PAY040", "--years", f"所选年度 {sorted(years)} 没有可用的历史病例, 无法建立目录"))
    con.sql(f"CREATE OR REPLACE TABLE cat_groups AS {group_stats_sql('grouped', keys, params.scale)}")
    con.sql(f"CREATE OR REPLACE TABLE cat_group_levels AS {group_level_sql('grouped')}")
    con.sql(f"CREATE OR REPLACE TABLE cat_levels AS "
            f"{level_coefficient_sql('grouped', 'cat_groups', params.level_coefficients)}")
    excluded = con.sql(f"SELECT COUNT(*) FROM cases_all WHERE reason IS NOT NULL AND "
                       f"(year IS NULL OR year IN ({year_list}))").fetchone()[0]
    kinds = dict(con.sql("SELECT group_kind, COUNT(*) FROM cat_groups GROUP BY group_kind").fetchall())
    avg_all = con.sql("SELECT MIN(avg_all) FROM cat_groups").fetchone()[0]
    return {"kind": params.kind, "years": {str(y): w for y, w in sorted(years.items())},
            "params": {"scale": str(params.scale), "min_cases": params.min_cases if params.kind == "dip" else None,
                       "level_coefficients": params.level_coefficients},
            "cases": n, "excluded": excluded, "groups": sum(kinds.values()), "groups_by_kind": kinds,
            "avg_cost_all_fen": avg_all}


def _ordered(table: str) -> str:
    order = {"cat_groups": "group_code", "cat_group_levels": "group_code, level", "cat_levels": "level"}[table]
    return f"SELECT * FROM {table} ORDER BY {order}"


def write(con: duckdb.DuckDBPyConnection, manifest: dict, tmp: Path, extra: dict | None = None) -> dict[str, Path]:
    """Write the catalog files into ``tmp`` (the caller publishes them); sets the version."""
    digest = hashlib.sha256()
    for table in TABLES:
        digest.update(repr(con.sql(_ordered(table)).fetchall()).encode())
        digest.update(json.dumps(manifest["params"], sort_keys=True).encode())
    years = "-".join(manifest["years"])
    manifest["version"] = f"{manifest['kind']}-{years}-{digest.hexdigest()[:12]}"
    manifest.update(extra or {})
    paths = {}
    for table, name in TABLES.items():
        paths[name] = tmp / name
        con.sql(f"COPY ({_ordered(table)}) TO {q(paths[name].as_posix())} (FORMAT parquet)")
    paths["catalog.json"] = tmp / "catalog.json"
    paths["catalog.json"].write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["catalog.md"] = tmp / "catalog.md"
    paths["catalog.md"].write_text(markdown(con, manifest), encoding="utf-8")
    return paths


def markdown(con: duckdb.DuckDBPyConnection, manifest: dict, names: dict[str, str] | None = None) -> str:
    kind = "DIP 病种分值目录" if manifest["kind"] == "dip" else "DRG 病组权重表"
    unit = "病种分值" if manifest["kind"] == "dip" else "点数(权重 × 标尺)"
    lines = [f"# {kind} {manifest['version']}", "",
             f"- 年度与权重 years (weights): {', '.join(f'{y} ×{w}' for y, w in manifest['years'].items())}",
             f"- 入组病例 cases: {manifest['cases']:,}; 排除 excluded: {manifest['excluded']:,}",
             f"- 全部病例次均费用 average cost of all cases: {format_yuan(manifest['avg_cost_all_fen'])} 元",
             f"- 标尺 scale: {manifest['params']['scale']}"
             + (f"; 核心病种最少病例数 min cases: {manifest['params']['min_cases']}" if manifest['kind'] == 'dip' else ""),
             "", "## 等级系数 Level coefficients", "", "| 等级 level | 病例 cases | 系数 coefficient |", "| --- | ---: | ---: |"]
    for level, cases, coeff in con.sql("SELECT level, cases, coeff_e4 FROM cat_levels ORDER BY level").fetchall():
        lines.append(f"| {level} | {cases:,} | {score_text(coeff)} |")
    names = names or manifest.get("names") or {}
    lines += ["", f"## 病种/病组 Groups ({manifest['groups']:,})", "",
              f"| 编码 code | 类型 kind | 名称 name | 病例 cases | 次均费用(元) avg cost | {unit} |",
              "| --- | --- | --- | ---: | ---: | ---: |"]
    rows = con.sql("SELECT group_code, group_kind, cases, avg_cost, score_e4 FROM cat_groups "
                   "ORDER BY group_kind DESC, cases DESC, group_code").fetchall()
    kinds = {"core": "核心", "comprehensive": "综合", "drg": "DRG"}
    for code, gk, cases, avg, score in rows:
        name = names.get(code, "")
        if gk == "comprehensive":
            _zh, cat, op = code.split("|")
            name = f"{cat} 类目 · {OPERATION_TYPES[int(op)]}"
        lines.append(f"| {code} | {kinds.get(gk, gk)} | {name} | {cases:,} | {format_yuan(avg)} | {score_text(score)} |")
    return "\n".join(lines) + "\n"


def load(con: duckdb.DuckDBPyConnection, directory: Path, kind: str) -> dict:
    """Register a catalog's tables in ``con``; refuses a missing or foreign catalog."""
    directory = Path(directory)
    manifest_path = directory / "catalog.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PaymentError(Problem("PAY041", str(manifest_path), f"无法读取目录清单: {exc}")) from None
    if manifest.get("kind") != kind:
        raise PaymentError(Problem("PAY042", "--catalog",
                                   f"目录类型为 {manifest.get('kind')!r}, 本命令需要 {kind!r} 目录"))
    for table, name in TABLES.items():
        path = directory / name
        if not path.exists():
            raise PaymentError(Problem("PAY041", str(path), "目录文件缺失"))
        con.sql(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet({q(path.as_posix())})")
    return manifest
