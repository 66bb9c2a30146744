"""Online pre-check (事前提醒 / 事中预警): the library's SQL over one visit and its history.

The rules that run before or during settlement are unioned into one query, executed by DuckDB
over tiny Arrow tables built from the request (the visit, its items, the person's earlier
visits). Only hits on the current visit count; blocking rules refuse the settlement.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pyarrow as pa

from yibao.claims.schema import SCHEMAS
from yibao.errors import Problem
from yibao.supervision.model import HIT_COLUMNS, Hit, SupervisionError
from yibao.supervision.ruleset import RuleSet, load_ruleset
from yibao.supervision.views import DERIVED, OPTIONAL_COLUMNS

_local = threading.local()
_DEFAULT: dict[str, RuleSet] = {}


@dataclass
class Precheck:
    warnings: list[Hit] = field(default_factory=list)
    blocking: list[Hit] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return bool(self.blocking)

    def to_dict(self) -> dict:
        return {"warnings": [h.to_dict() for h in self.warnings], "blocking": [h.to_dict() for h in self.blocking]}


def _schema(name: str) -> pa.Schema:
    schema = SCHEMAS[name]
    for col, typ in OPTIONAL_COLUMNS.get(name, {}).items():
        schema = schema.append(pa.field(col, typ))
    return schema


def _table(name: str, rows: list[dict]) -> pa.Table:
    schema = _schema(name)
    clean = []
    for r in rows:
        row = {}
        for f in schema:
            v = r.get(f.name)
            if v is not None and pa.types.is_decimal(f.type) and not isinstance(v, Decimal):
                v = Decimal(str(v))
            if v is not None and pa.types.is_timestamp(f.type) and isinstance(v, str):
                v = datetime.fromisoformat(v)
            row[f.name] = v
        clean.append(row)
    try:
        return pa.Table.from_pylist(clean, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise SupervisionError(Problem("SUP030", name, f"预审核输入无法转换: {exc}")) from None


class OnlineQuery:
    """The union of a rule set's online rules for one stage, compiled once."""

    def __init__(self, ruleset: RuleSet, stage: str):
        self.rules = {r.id: r for r in ruleset.rules if stage in r.rule.stages and r.rule.scope == "visit"}
        ctes = ", ".join(f"{name} AS ({sql})" for name, sql in DERIVED)
        cols = ", ".join(HIT_COLUMNS)
        parts = [f"SELECT '{rid}' AS rule_id, {cols} FROM ({r.sql()}) WHERE mdtrt_id = $current"
                 for rid, r in self.rules.items()]
        self.sql = f"WITH {ctes} " + " UNION ALL ".join(parts) if parts else ""


def _query(ruleset: RuleSet, stage: str) -> OnlineQuery:
    cache = getattr(_local, "queries", None)
    if cache is None:
        cache = _local.queries = {}
    key = (id(ruleset), stage)
    if key not in cache:
        cache[key] = (ruleset, OnlineQuery(ruleset, stage))
    return cache[key][1]


def _connection():
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = _local.con = duckdb.connect()
        con.sql("SET threads = 1")
    return con


def precheck(person: dict, institution: dict, visit: dict, items: list[dict],
             history: list[tuple[dict, list[dict]]] = (), *, stage: str = "during",
             params: RuleSet | str | None = None) -> Precheck:
    """Run the 事前 (``stage="pre"``) or 事中 (``"during"``) rules on one visit.

    ``params``: a :class:`RuleSet`, a rule-parameter file or built-in name, default ``default``.
    """
    if stage not in ("pre", "during"):
        raise SupervisionError(Problem("SUP031", "stage", f"stage 应为 pre 或 during, 实际为 {stage!r}"))
    ruleset = params if isinstance(params, RuleSet) else _DEFAULT.setdefault(params or "default",
                                                                                load_ruleset(params or "default"))
    q = _query(ruleset, stage)
    if not q.sql:
        return Precheck()
    visits = [visit] + [v for v, _ in history]
    lines = list(items) + [i for _, its in history for i in its]
    con = _connection()
    for name, rows in (("persons", [person]), ("institutions", [institution]), ("visits", visits),
                       ("fee_items", lines)):
        con.register(name, _table(name, rows))
    rows = con.execute(q.sql, {"current": visit["mdtrt_id"]}).fetchall()
    return collect(q.rules, rows)


def collect(rules: dict, rows) -> Precheck:
    """Rows (rule_id, subject, mdtrt_id, feedetl_sn, fixmedins_code, amount, detail) → hits."""
    grouped: dict[tuple[str, str], list] = {}
    for rid, subject, mdtrt_id, sn, inst, amount, detail in rows:
        g = grouped.setdefault((rid, subject), [mdtrt_id, inst, [], 0, []])
        if sn is not None:
            g[2].append(sn)
        g[3] += int(amount)
        if detail not in g[4]:
            g[4].append(detail)
    out = Precheck()
    for (rid, subject), (mdtrt_id, inst, sns, amount, details) in sorted(grouped.items()):
        r = rules[rid]
        hit = Hit(rid, r.rule.name, r.rule.family, r.severity, r.blocking, subject, mdtrt_id, inst, sorted(sns),
                  amount, "; ".join(details[:5]), r.rule.description, r.param_text())
        (out.blocking if r.blocking else out.warnings).append(hit)
    return out
