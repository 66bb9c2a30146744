"""Online pre-check (事前提醒 / 事中预警): the library's SQL over one visit and its history.

DuckDB spends 2.5–4 ms setting up each rule's operators, too slow for a 5 ms budget, so the
online path runs the *same* rule text on an in-memory SQLite database: each rule's DuckDB SQL
is transpiled once by SQLGlot (as the batch layer does for Spark) and cached; each thread keeps
one connection whose tables are created once, and a call replaces their rows with the visit,
its items and the person's history, fills the derived views ``vx`` / ``lines`` and runs the
rules. Only hits on the current visit count; blocking rules refuse the settlement.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel

from yibao.claims.schema import SCHEMAS
from yibao.errors import Problem
from yibao.supervision.audit import baseline_settings
from yibao.supervision.model import HIT_COLUMNS, Hit, SupervisionError
from yibao.supervision.ruleset import RuleSet, load_ruleset
from yibao.supervision.views import BASELINE_SCHEMA, DERIVED, OPTIONAL_COLUMNS

_local = threading.local()
_DEFAULT: dict[str, RuleSet] = {}
BASE_TABLES = ("persons", "institutions", "visits", "fee_items")
# SQLGlot flags every DATE_DIFF unit but the listed ones; for 'day' it still emits
# CAST(JULIANDAY(b) - JULIANDAY(a) AS INTEGER), exact because the library only takes day
# differences of DATE values (the views' *_day columns), whose Julian days differ by whole days.
_TOLERATED = {"DATEDIFF unsupported for 'DAY'."}


@dataclass
class Precheck:
    warnings: list[Hit] = field(default_factory=list)
    blocking: list[Hit] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return bool(self.blocking)

    def to_dict(self) -> dict:
        return {"warnings": [h.to_dict() for h in self.warnings], "blocking": [h.to_dict() for h in self.blocking]}


@functools.lru_cache(maxsize=1024)
def to_sqlite(sql: str, what: str = "SQL") -> str:
    """DuckDB-dialect SQL in SQLite's; anything SQLGlot cannot carry raises instead of diverging."""
    generator = Dialect.get_or_raise("sqlite").generator(unsupported_level=ErrorLevel.IGNORE)
    text = generator.generate(sqlglot.parse_one(sql, read="duckdb"))
    lost = [m for m in generator.unsupported_messages if m not in _TOLERATED]
    if lost:
        raise SupervisionError(Problem("SUP032", what, f"规则 SQL 无法在联机(SQLite)执行: {'; '.join(lost)}"))
    return text


def _schema(name: str) -> pa.Schema:
    schema = SCHEMAS[name]
    for col, typ in OPTIONAL_COLUMNS.get(name, {}).items():
        schema = schema.append(pa.field(col, typ))
    return schema


@functools.lru_cache(maxsize=1)
def _base_columns() -> dict[str, list[pa.Field]]:
    """The base-table columns the derived views read, found in the views' SQL itself."""
    used: dict[str, dict[str, None]] = {n: {} for n in BASE_TABLES}
    for _, sql in DERIVED:
        tree = sqlglot.parse_one(sql, read="duckdb")
        alias = {t.alias_or_name: t.name for t in tree.find_all(exp.Table)}
        for c in tree.find_all(exp.Column):
            if alias.get(c.table) in used:
                used[alias[c.table]][c.name] = None
    return {n: [_schema(n).field(c) for c in cols] for n, cols in used.items()}


def _sqlite_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "INTEGER"
    if pa.types.is_decimal(t) or pa.types.is_floating(t):
        return "REAL"
    return "TEXT"


MAX_YUAN = Decimal(10) ** 13  # amounts below this stay exact as doubles once scaled to fen
MAX_COUNT = Decimal(10) ** 11  # counts × 10^4 likewise below 2^53
ROW_KEYS = {"persons": "psn_no", "institutions": "fixmedins_code", "visits": "mdtrt_id", "fee_items": "feedetl_sn"}


def _bad(table: str, f: pa.Field, row: int | None, key, msg: str) -> SupervisionError:
    where = "" if row is None else f"第 {row + 1} 行" + (f" ({ROW_KEYS[table]}={key})" if key is not None else "") + ": "
    return SupervisionError(Problem("SUP030", f"{table}.{f.name}", where + msg))


def _exact(table: str, f: pa.Field, v: Decimal, row: int | None, key) -> float:
    """A decimal input as the float SQLite stores, only when that float is exact after the views
    scale it to integer fen (amounts) or ten-thousandths (counts): finite, no finer than the
    column's scale, within bounds. Anything else would silently disagree with the batch path."""
    scale = f.type.scale
    amount = scale <= 2
    if not v.is_finite():
        raise _bad(table, f, row, key, f"必须是有限数字, 实际为 {str(v)!r}")
    if amount and v < 0:
        raise _bad(table, f, row, key, f"金额不得为负, 实际为 {v}")
    limit = MAX_YUAN if amount else MAX_COUNT
    if abs(v) >= limit:
        raise _bad(table, f, row, key, f"{'金额' if amount else '数量'}必须小于 {limit:,}, 实际为 {v}")
    if v.as_tuple().exponent < -scale and v != v.quantize(Decimal(1).scaleb(-scale)):
        raise _bad(table, f, row, key, f"{'金额精确到分, 最多 2' if amount else f'数量最多 {scale}'} 位小数, 实际为 {v}")
    return float(v)


def _value(table: str, f: pa.Field, v, row: int | None = None, key=None):
    """One input value as SQLite stores it: decimals as floats (the views round them to integer
    fen / ten-thousandths), times as ISO text so comparisons and DATE() work."""
    if v is None:
        return None
    t = f.type
    try:
        if pa.types.is_decimal(t):
            if isinstance(v, (bool, float)):
                raise TypeError(type(v).__name__)
            return _exact(table, f, Decimal(v.strip() if isinstance(v, str) else v), row, key)
        if pa.types.is_timestamp(t):
            if isinstance(v, str):
                v = datetime.fromisoformat(v)
            if isinstance(v, date) and not isinstance(v, datetime):
                v = datetime(v.year, v.month, v.day)
            if not isinstance(v, datetime):
                raise TypeError(type(v).__name__)
            return time_value(v)
        if pa.types.is_integer(t) or pa.types.is_boolean(t):
            if isinstance(v, float) or isinstance(v, str) and not v.strip().lstrip("-").isdigit():
                raise TypeError(type(v).__name__)
            return int(v)
        if not isinstance(v, str):
            raise TypeError(type(v).__name__)
        return v
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise _bad(table, f, row, key, f"预审核输入无法转换为 {t}: {v!r} ({exc})") from None


def _kind(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return "integer" if pa.types.is_integer(t) else "other"


def _fast(table: str, f: pa.Field, kind: str, v, row: int | None = None, key=None):
    """:func:`_value` for the common, already-typed case, else the checks; ``kind`` is ``_kind(f.type)``,
    worked out once per column rather than once per value."""
    if v is None:
        return None
    if type(v) is str:
        return v if kind == "other" else _value(table, f, v, row, key)
    if type(v) is Decimal and kind == "decimal":
        return _exact(table, f, v, row, key)
    if type(v) is datetime and kind == "timestamp":
        return time_value(v)
    return _value(table, f, v, row, key)


class OnlineDatabase:
    """One thread's SQLite database: base tables, materialised views, cached rule statements."""

    def __init__(self):
        self.con = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False,
                                   cached_statements=512)
        self.con.execute("PRAGMA case_sensitive_like = ON")  # DuckDB's and Spark's LIKE are case-sensitive
        self.columns = _base_columns()
        self.kinds = {name: [(f, _kind(f.type)) for f in fields] for name, fields in self.columns.items()}
        self.positions = {f.name: k for k, f in enumerate(self.columns["fee_items"])}  # fee_items' columns
        self.inserts = {}
        for name, fields in self.columns.items():
            cols = ", ".join(f"{f.name} {_sqlite_type(f.type)}" for f in fields)
            self.con.execute(f"CREATE TABLE {name} ({cols})")
            self.inserts[name] = f"INSERT INTO {name} VALUES ({', '.join('?' * len(fields))})"
        self.con.execute(f"CREATE TABLE baselines ({', '.join(f'{f.name} {_sqlite_type(f.type)}' for f in BASELINE_SCHEMA)})")
        self.vpos = {f.name: k for k, f in enumerate(self.columns["visits"])}
        self.derived = []
        for name, sql in DERIVED:
            select = to_sqlite(sql, name)
            self.con.execute(f"CREATE TABLE {name} AS {select} LIMIT 0")
            self.derived.append((name, f"INSERT INTO {name} {select}"))

    def convert(self, tables: dict[str, list[dict]]) -> dict[str, list[tuple]]:
        """Rows as the claims schema names them → the tables' value tuples, every value checked."""
        out = {}
        for name, kinds in self.kinds.items():
            key = ROW_KEYS[name]
            out[name] = [tuple(_fast(name, f, k, r.get(f.name), i, r.get(key)) for f, k in kinds)
                         for i, r in enumerate(tables[name])]
        return out

    def load(self, values: dict[str, list[tuple]], baselines: list[tuple] = ()) -> None:
        """Replace the base tables' rows with ``values`` (and the baseline rows the visit can meet)
        and refill the derived views, in one transaction."""
        con = self.con
        con.execute("BEGIN")
        try:
            for name in self.columns:
                con.execute(f"DELETE FROM {name}")
                con.executemany(self.inserts[name], values[name])
            con.execute("DELETE FROM baselines")
            con.executemany("INSERT INTO baselines VALUES (?, ?, ?, ?, ?, ?, ?)", baselines)
            for name, insert in self.derived:
                con.execute(f"DELETE FROM {name}")
                con.execute(insert)
        finally:
            con.execute("COMMIT")


class OnlineQuery:
    """A rule set's online rules for one stage, each transpiled to SQLite once."""

    def __init__(self, ruleset: RuleSet, stage: str):
        self.rules = {r.id: r for r in ruleset.rules if stage in r.rule.stages and r.rule.scope == "visit"}
        self.history_codes = frozenset().union(*(r.history_codes() for r in self.rules.values()))
        cols = ", ".join(HIT_COLUMNS)
        # (rule id, SQLite statement, codes of the only lines it flags or None)
        self.statements = [(rid, to_sqlite(f"SELECT '{rid}' AS rule_id, {cols} FROM ({r.sql()}) WHERE mdtrt_id = :current",
                                           rid), r.codes()) for rid, r in self.rules.items()]


class Baselines:
    """The learned baseline table (``baselines.parquet`` of a batch run) indexed for one visit: the
    rows of its codes at its level (price, quantity) and of its diagnosis group or its level's whole
    medical type (tests). Online reads the table batch learned; it never learns one itself."""

    def __init__(self, table: pa.Table, dx_len: int = 3):
        self.dx_len = dx_len
        self.by_key: dict[tuple, list[tuple]] = {}
        for row in table.cast(BASELINE_SCHEMA).to_pylist():
            t = tuple(row[f.name] for f in BASELINE_SCHEMA)
            key = (row["kind"] == "tests", row["code"], row["level"], row["med_type"])
            self.by_key.setdefault(key, []).append(t)

    @classmethod
    def read(cls, path, ruleset: RuleSet | None = None) -> "Baselines":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise SupervisionError(Problem("SUP033", "--baselines", f"基线表无法读取: {path} ({exc})")) from None
        missing = [n for n in BASELINE_SCHEMA.names if n not in table.column_names]
        if missing:
            raise SupervisionError(Problem("SUP033", "--baselines", f"基线表缺列: {', '.join(missing)}"))
        return cls(table.select(BASELINE_SCHEMA.names), baseline_settings(ruleset or load_ruleset())[1])

    def rows(self, level, med_type, dise, codes) -> list[tuple]:
        out = [r for c in sorted(codes) for r in self.by_key.get((False, c, level, med_type), ())]
        for code in (dise[: self.dx_len] if dise else None, "*"):
            out += self.by_key.get((True, code, level, med_type), ())
        return out


DEFAULT_BASELINES: list[Baselines | None] = [None]  # a server sets the table its batch run learned


def set_baselines(b: Baselines | None) -> None:
    DEFAULT_BASELINES[0] = b


_QUERIES: dict[tuple[int, str], tuple[RuleSet, OnlineQuery]] = {}
_QUERIES_LOCK = threading.Lock()


def _query(ruleset: RuleSet, stage: str) -> OnlineQuery:
    """Transpiled statements are shared by every thread: a server's threadpool must not pay
    the SQLGlot translation once per thread (it showed as seconds-long first requests)."""
    key = (id(ruleset), stage)
    with _QUERIES_LOCK:
        if key not in _QUERIES:
            _QUERIES[key] = (ruleset, OnlineQuery(ruleset, stage))  # the ruleset kept alive: id stays unique
        return _QUERIES[key][1]


def prepare(ruleset: RuleSet, stages: tuple[str, ...] = ("pre", "during")) -> None:
    """Transpile the stages' rules now (a server calls this at start, not on its first request)."""
    for stage in stages:
        _query(ruleset, stage)


def _database() -> OnlineDatabase:
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = OnlineDatabase()
    return db


def precheck(person: dict, institution: dict, visit: dict, items: list[dict],
             history: list[tuple[dict, list[dict]]] = (), *, stage: str = "during",
             params: RuleSet | str | None = None, baselines: Baselines | None = None,
             history_institutions: list[dict] = ()) -> Precheck:
    """Run the 事前 (``stage="pre"``) or 事中 (``"during"``) rules on one visit.

    ``params``: a :class:`RuleSet`, a rule-parameter file or built-in name, default ``default``;
    ``baselines``: the learned baseline table the statistical rules compare with (default: the one
    :func:`set_baselines` set; none: those rules find nothing); ``history_institutions``: the
    institutions of the history's visits (跨机构分解住院 compares their areas; without them it finds nothing).
    """
    if stage not in ("pre", "during"):
        raise SupervisionError(Problem("SUP031", "stage", f"stage 应为 pre 或 during, 实际为 {stage!r}"))
    if isinstance(params, RuleSet):
        ruleset = params
    else:
        name = params or "default"
        if name not in _DEFAULT:  # load once: parsing and validating the YAML costs milliseconds
            _DEFAULT[name] = load_ruleset(name)
        ruleset = _DEFAULT[name]
    q = _query(ruleset, stage)
    wanted = history_codes(ruleset, stage, items)
    history = [(v, [i for i in its if i.get("med_list_codg") in wanted]) for v, its in history]
    db = _database()
    others = [i for i in {i["fixmedins_code"]: i for i in history_institutions}.values()
              if i["fixmedins_code"] != institution["fixmedins_code"]]
    values = db.convert({"persons": [person], "institutions": [institution] + others,
                         "visits": [visit] + [v for v, _ in history],
                         "fee_items": list(items) + [i for _, its in history for i in its]})
    return _run(db, q, values, visit["mdtrt_id"], baselines)


def history_codes(ruleset: RuleSet, stage: str, items) -> frozenset[str]:
    """The codes of the person's earlier fee lines that the stage's rules can read for a visit with
    ``items`` (dicts or rows with ``med_list_codg``): only lines whose code a rule lists and the
    visit also has (see ``Rule.history_codes``). Every earlier visit's own row is still needed;
    its other lines change no hit, so neither path loads them."""
    listed = _query(ruleset, stage).history_codes
    if not listed:
        return frozenset()
    return frozenset(c for c in (i.get("med_list_codg") if isinstance(i, dict) else i.med_list_codg for i in items)
                     if c in listed)


def precheck_values(values: dict[str, list[tuple]], current: str, *, stage: str = "during",
                    ruleset: RuleSet, baselines: Baselines | None = None) -> Precheck:
    """:func:`precheck` over rows already in the online tables' form: for each table in
    :func:`value_columns`, tuples in that column order, amounts and counts as :func:`amount_value`
    / :func:`count_value` give them, times as :func:`time_value`. For a caller whose rows come from
    a store that checked them on the way in (the settlement service): it skips the per-value checks
    that cost more than the rules themselves. ``current`` is the visit whose hits count."""
    if stage not in ("pre", "during"):
        raise SupervisionError(Problem("SUP031", "stage", f"stage 应为 pre 或 during, 实际为 {stage!r}"))
    return _run(_database(), _query(ruleset, stage), values, current, baselines)


def value_columns() -> dict[str, tuple[str, ...]]:
    """Per base table, the columns the rules read, in the order :func:`precheck_values` takes them."""
    return {name: tuple(f.name for f in fields) for name, fields in _base_columns().items()}


def amount_value(fen: int | None) -> float | None:
    """An amount in integer fen as the online tables hold it: the same float :func:`_exact` makes of
    the yuan Decimal (both are the double nearest the yuan amount; the views round back to fen)."""
    return None if fen is None else fen / 100


def count_value(cnt: Decimal | None) -> float | None:
    return None if cnt is None else float(cnt)


def time_value(t: datetime | None) -> str | None:
    """A time as the online tables hold it: ISO text, so comparisons and DATE() work."""
    return None if t is None else t.isoformat(" ")


def _run(db: OnlineDatabase, q: "OnlineQuery", values: dict[str, list[tuple]], current: str,
         baselines: Baselines | None = None) -> Precheck:
    """Only the rules the visit can hit: a catalogue rule whose codes the visit has none of is skipped,
    and when none is left nothing is loaded."""
    mdtrt, codg = db.positions["mdtrt_id"], db.positions["med_list_codg"]
    codes = {line[codg] for line in values["fee_items"] if line[mdtrt] == current}
    statements = [sql for _, sql, only in q.statements if only is None or not only.isdisjoint(codes)]
    if not statements:
        return Precheck()
    baselines = baselines or DEFAULT_BASELINES[0]
    rows = []
    if baselines is not None:
        vp = db.vpos
        v = next(v for v in values["visits"] if v[vp["mdtrt_id"]] == current)
        rows = baselines.rows(v[vp["level"]], v[vp["med_type"]], v[vp["dise_codg"]], codes)
    db.load(values, rows)
    arg = {"current": current}
    rows = [row for sql in statements for row in db.con.execute(sql, arg)]
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
