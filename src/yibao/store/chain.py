"""Hash chains over append-only rows: a later change to a ledger row shows.

Every chained row carries ``prev_hash`` (the ``row_hash`` of the row before it in its *stream*)
and ``row_hash`` = HMAC-SHA256(chain key, stream ‖ prev_hash ‖ the row's content), the content
being every column but generated ids and the few columns a :class:`Spec` declares mutable. The
key lives outside the database (:mod:`yibao.store.keys`): whoever can write the database but
not read the key cannot recompute a chain after altering a row. ``yibao db verify`` walks every
stream and names the first row whose hash or link does not hold (:func:`verify`).

Streams are chosen so that concurrent work never queues on one global chain head:

- settlements and accumulator-ledger rows: one stream per (psn_no, year). Every settlement or
  reversal already locks that person-year's balance row (:mod:`yibao.service.ledger`), which now
  also holds the two chain heads, read and written in the round trips the settlement makes
  anyway: chaining adds no query and no lock, and different persons never wait for each other;
- household-ledger rows (家庭年度限额): one stream per (hh_no, year), its head on the household balance row
  that the settlement locks to count against the household's cap;
- the audit log: one stream per *lane*. A process keeps a pool of lanes; a transaction takes one
  for its audit rows and gives it back at commit with the new head (a lane whose transaction rolled
  back is dropped, never reused, so no commit of uncertain outcome can fork it). Lanes need no
  database read at all, and as many transactions write at once as there are lanes;
- supervision case events: one stream per case, its head read under the case's row lock (case
  work is a person's clicks, not a hot path).

A stream's rows are ordered by their ``order`` columns, or, when it has none (settlements), by
following the links from the first row. Other domains adopt this by adding ``prev_hash`` and
``row_hash`` columns and a :class:`Spec` (:func:`register`), then calling :func:`seal` (Core inserts,
with the head they hold under their own lock) or :func:`track` (ORM inserts).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping

from sqlalchemy import Connection, bindparam, event, inspect, select
from sqlalchemy.orm import Session, object_session

from yibao.errors import Problem
from yibao.store import keys
from yibao.store.base import Base

GENESIS = ""
HASH_COLUMNS = ("prev_hash", "row_hash")


@dataclass(frozen=True)
class Spec:
    """How one table is chained: which columns name a row's stream, order it, name it in messages."""

    table: str
    stream: tuple[str, ...]
    order: tuple[str, ...]  # () = follow the links from the stream's first row
    label: tuple[str, ...]
    exclude: tuple[str, ...] = ()  # generated ids and columns allowed to change (checked elsewhere)
    children: tuple[str, str, tuple[str, ...]] | None = None  # (table, foreign-key column, order): hashed with the row
    head: tuple[str, str] | None = None  # (table, column) holding each stream's last row_hash, keyed by the stream columns
    lock: tuple[str, str] | None = None  # (table, column): row locked (PostgreSQL) before a stream's head is read
    _columns: list = field(default_factory=list, compare=False, repr=False)

    def columns(self) -> list[tuple[str, Any]]:
        """(name, scalar default) of every hashed column, resolved once from the table."""
        if not self._columns:
            skip = set(self.exclude) | set(HASH_COLUMNS)
            for col in Base.metadata.tables[self.table].columns:
                if col.name not in skip:
                    default = col.default.arg if col.default is not None and col.default.is_scalar else None
                    self._columns.append((col.name, default))
        return self._columns

    def stream_of(self, row: Mapping) -> str:
        return self.table + "/" + "/".join(str(row[c]) for c in self.stream)

    def name_row(self, row: Mapping) -> str:
        return ", ".join(f"{c}={row[c]}" for c in self.label)


SPECS: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    SPECS[spec.table] = spec
    return spec


SETTLEMENTS = register(Spec("settlements", ("psn_no", "year"), (), ("setl_id",),
                            exclude=("status", "revs_setl_id", "revs_time"),  # a reversal's marks; the ledger chains it
                            children=("settlement_details", "setl_id", ("seq",)),
                            head=("accumulator_balances", "setl_head")))
LEDGER = register(Spec("accumulator_ledger", ("psn_no", "year"), ("seq",), ("psn_no", "year", "seq"),
                       head=("accumulator_balances", "ledger_head")))
HOUSEHOLD_LEDGER = register(Spec("household_ledger", ("hh_no", "year"), ("seq",), ("hh_no", "year", "seq"),
                                 head=("household_balances", "ledger_head")))  # 家庭年度限额 (service.ledger)
AUDIT = register(Spec("audit_log", ("chain_stream",), ("id",), ("id",), exclude=("id",)))
CASE_EVENTS = register(Spec("sv_case_events", ("case_id",), ("id",), ("id",), exclude=("id",),
                            lock=("sv_cases", "id")))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    raise TypeError(f"cannot hash {type(value).__name__}")


def digest(stream: str, prev: str, content: Mapping[str, Any], key: bytes | None = None) -> str:
    """HMAC-SHA256 over the canonical JSON of (stream, prev, content): the same bytes on insert and on
    read-back whatever the backend (sorted keys, datetimes as ISO text, JSON values as stored)."""
    msg = json.dumps({"c": content, "p": prev, "s": stream}, sort_keys=True, ensure_ascii=False,
                     separators=(",", ":"), default=_plain)
    return hmac.new(key or keys.load().chain, msg.encode("utf-8"), hashlib.sha256).hexdigest()


def content_of(spec: Spec, row: Mapping, children: list | None = None, fill: bool = True) -> dict:
    out = {}
    for name, default in spec.columns():
        if name in row:
            out[name] = row[name]
        elif fill:
            out[name] = default
        else:
            raise KeyError(name)
    if spec.children is not None:
        out["_children"] = children or []
    return out


def seal(spec: Spec, prev: str, row: dict, children: list[dict] | None = None) -> str:
    """Chain ``row`` (the dict about to be inserted) after ``prev``: sets its prev_hash and row_hash
    and returns the new head. Columns the dict leaves out are hashed with (and given) their default."""
    for name, default in spec.columns():
        row.setdefault(name, default)
    if spec.children is not None:
        fk = spec.children[1]
        children = [{k: v for k, v in c.items() if k != fk} for c in children or []]
    h = digest(spec.stream_of(row), prev, content_of(spec, row, children))
    row["prev_hash"], row["row_hash"] = prev, h
    return h


# --- lanes: the audit log's streams ------------------------------------------------------------------


@dataclass
class _Lane:
    stream: str
    database: str
    head: str = GENESIS
    pending: str = GENESIS


_lanes: dict[str, list[_Lane]] = {}  # free lanes by database (a lane's head is a row of one database)
_lanes_lock = threading.Lock()
_lanes_pid = os.getpid()
_LANE = "_chain_lane"
_HEADS = "_chain_heads"


def _take_lane(database: str) -> _Lane:
    global _lanes_pid
    with _lanes_lock:
        if _lanes_pid != os.getpid():  # a forked worker must not continue its parent's lanes
            _lanes.clear()
            _lanes_pid = os.getpid()
        free = _lanes.get(database)
        if free:
            return free.pop()
    return _Lane(uuid.uuid4().hex[:20], database)


def forget_lanes() -> None:
    """Start fresh lanes: after this process migrated or restored a database, its lanes' heads may be gone."""
    with _lanes_lock:
        _lanes.clear()


def seal_in_lane(session: Session, spec: Spec, row: dict) -> None:
    """Chain an audit row in this transaction's lane (taken at its first row, given back at commit)."""
    lane = session.info.get(_LANE)
    if lane is None:
        lane = session.info[_LANE] = _take_lane(str(session.connection().engine.url))
        lane.pending = lane.head
    row[spec.stream[0]] = lane.stream
    lane.pending = seal(spec, lane.pending, row)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    lane = session.info.pop(_LANE, None)
    if lane is not None:
        lane.head = lane.pending
        with _lanes_lock:
            if _lanes_pid == os.getpid():
                _lanes.setdefault(lane.database, []).append(lane)
    session.info.pop(_HEADS, None)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction) -> None:
    if transaction.parent is None:  # rolled back (a commit already emptied these): drop the lane
        session.info.pop(_LANE, None)
        session.info.pop(_HEADS, None)


# --- ORM inserts (low-volume streams whose head is read from the table) ------------------------------


def track(cls, spec: Spec) -> None:
    """Seal every ORM insert of ``cls`` before it is written; a stream's head is read from the table once per
    transaction (under ``spec.lock`` on PostgreSQL, so two transactions never chain onto the same row), then
    carried in the session for the rows that follow it in the same flush or transaction."""
    table = Base.metadata.tables[spec.table]
    last_hash = (select(table.c.row_hash).where(*[table.c[c] == bindparam(c) for c in spec.stream])
                 .order_by(*[table.c[c].desc() for c in spec.order]).limit(1))
    defaults = dict(spec.columns())
    lock = None
    if spec.lock is not None:
        parent = Base.metadata.tables[spec.lock[0]]
        key = parent.c[spec.lock[1]]
        lock = select(key).where(key == bindparam("k")).with_for_update()

    @event.listens_for(cls, "before_insert")
    def _before_insert(mapper, connection: Connection, target) -> None:
        row = {}
        for prop in mapper.column_attrs:
            name = prop.columns[0].name
            value = getattr(target, prop.key)
            if value is None and defaults.get(name) is not None:  # the default the INSERT would give, hashed
                value = defaults[name]
                setattr(target, prop.key, value)
            row[name] = value
        stream = spec.stream_of(row)
        session = object_session(target)
        heads = session.info.setdefault(_HEADS, {}) if session is not None else {}
        prev = heads.get(stream)
        if prev is None:
            if lock is not None and connection.dialect.name == "postgresql":
                connection.execute(lock, {"k": row[spec.stream[0]]})
            prev = connection.execute(last_hash, {c: row[c] for c in spec.stream}).scalar() or GENESIS
        heads[stream] = seal(spec, prev, row)
        target.prev_hash, target.row_hash = row["prev_hash"], row["row_hash"]


# --- verification ----------------------------------------------------------------------------------------


@dataclass
class Report:
    rows: dict[str, int] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def verify(conn: Connection, limit: int = 20) -> Report:
    """Recompute every chain of every table present; the first broken row of each stream is a problem."""
    _import_domain_tables()
    report = Report()
    present = set(inspect(conn).get_table_names())
    key_ring = keys.load()
    for spec in SPECS.values():
        if spec.table not in present or "row_hash" not in {c["name"] for c in inspect(conn).get_columns(spec.table)}:
            continue
        heads = _heads(conn, spec) if spec.head is not None else None
        n_rows = n_streams = 0
        for stream_key, rows in _streams(conn, spec):
            n_streams += 1
            n_rows += len(rows)
            last = _check_stream(spec, rows, key_ring.chain, report.problems)
            if heads is not None:
                stored = heads.pop(stream_key, GENESIS)
                if last is not None and stored != last:
                    report.problems.append(Problem(
                        "CHN003", f"{spec.head[0]}.{spec.head[1]}",
                        f"{spec.table} 流 {'/'.join(map(str, stream_key))} 的链尾与记录的链头不符: "
                        "链尾之后的行被删除, 或链头被改动"))
            if len(report.problems) >= limit:
                break
        for stream_key, stored in (heads or {}).items():
            if stored:
                report.problems.append(Problem("CHN003", f"{spec.head[0]}.{spec.head[1]}",
                                               f"{spec.table} 流 {'/'.join(map(str, stream_key))} 有链头, 但表中没有它的行"
                                               "(行被删除)"))
        report.rows[spec.table], report.streams[spec.table] = n_rows, n_streams
    return report


def _import_domain_tables() -> None:
    import importlib.util

    for module in ("yibao.supervision.cases",):
        if importlib.util.find_spec(module):
            __import__(module)


def _heads(conn: Connection, spec: Spec) -> dict[tuple, str]:
    table = Base.metadata.tables[spec.head[0]]
    cols = [table.c[c] for c in spec.stream]
    return {tuple(r[:-1]): r[-1] or GENESIS for r in conn.execute(select(*cols, table.c[spec.head[1]]))}


def _streams(conn: Connection, spec: Spec) -> Iterator[tuple[tuple, list[dict]]]:
    """Each stream's rows (with their children), streams in key order; children fetched a chunk at a time."""
    table = Base.metadata.tables[spec.table]
    order = [table.c[c] for c in spec.stream] + [table.c[c] for c in (spec.order or spec.label)]
    result = conn.execution_options(stream_results=True, yield_per=2000).execute(select(table).order_by(*order))
    pending: list[tuple[tuple, list[dict]]] = []
    current: tuple | None = None
    rows: list[dict] = []
    size = 0
    for r in result.mappings():
        row = dict(r)
        k = tuple(row[c] for c in spec.stream)
        if k != current:
            if current is not None:
                pending.append((current, rows))
                size += len(rows)
                if size >= 2000:
                    yield from _with_children(conn, spec, pending)
                    pending, size = [], 0
            current, rows = k, []
        rows.append(row)
    if current is not None:
        pending.append((current, rows))
    yield from _with_children(conn, spec, pending)


def _with_children(conn: Connection, spec: Spec, groups: list[tuple[tuple, list[dict]]]):
    if spec.children is not None and groups:
        child_name, fk, child_order = spec.children
        child = Base.metadata.tables[child_name]
        parent_key = spec.label[0]
        ids = [row[parent_key] for _, rows in groups for row in rows]
        found: dict[Any, list[dict]] = {}
        for i in range(0, len(ids), 500):
            q = (select(child).where(child.c[fk].in_(ids[i:i + 500]))
                 .order_by(child.c[fk], *[child.c[c] for c in child_order]))
            for c in conn.execute(q).mappings():
                found.setdefault(c[fk], []).append({k: v for k, v in c.items() if k != fk})
        for _, rows in groups:
            for row in rows:
                row["_children"] = found.get(row[parent_key], [])
    yield from groups


def _check_stream(spec: Spec, rows: list[dict], key: bytes, problems: list[Problem]) -> str | None:
    """The stream's last row_hash if every row holds, else None after naming the first that does not."""
    if spec.order:
        return _check_ordered(spec, rows, key, problems)
    by_prev: dict[str, dict] = {}
    for row in rows:
        if row["prev_hash"] in by_prev:
            problems.append(Problem("CHN002", f"{spec.table}({spec.name_row(row)})", "链分叉: 两行记录了同一个前一行"))
            return None
        by_prev[row["prev_hash"]] = row
    walk, cur = [], GENESIS
    while cur in by_prev:
        row = by_prev.pop(cur)
        walk.append(row)
        cur = row["row_hash"]
    last = _check_ordered(spec, walk, key, problems) if walk else GENESIS
    if last is None:
        return None
    if by_prev:  # the walk stopped early: name the first row it could not reach
        first = min(by_prev.values(), key=lambda r: str(r[spec.label[0]]))
        problems.append(Problem("CHN002", f"{spec.table}({spec.name_row(first)})",
                                "链断开: 此行不在链上(它的前一行被删除, 或它记录的前一行哈希被改动)"))
        return None
    return last


def _check_ordered(spec: Spec, rows: list[dict], key: bytes, problems: list[Problem]) -> str | None:
    stream = spec.stream_of(rows[0])
    prev = GENESIS
    for row in rows:
        where = f"{spec.table}({spec.name_row(row)})"
        if row["prev_hash"] != prev:
            problems.append(Problem("CHN002", where, "链断开: 此行记录的前一行哈希与实际前一行不符"
                                    "(前一行被删除、插入或改动)"))
            return None
        if digest(stream, prev, content_of(spec, row, row.get("_children"), fill=False), key) != row["row_hash"]:
            problems.append(Problem("CHN001", where, "此行内容与其哈希不符: 写入后被改动"))
            return None
        prev = row["row_hash"]
    return prev


def backfill(conn: Connection, spec: Spec, ordered_rows: Iterable[dict]) -> dict[tuple, str]:
    """Seal rows written before chaining existed (the migration), stream by stream in the given order;
    returns each stream's head. Rows must come grouped by stream."""
    table = Base.metadata.tables[spec.table]
    heads: dict[tuple, str] = {}
    pk = [c for c in table.primary_key.columns]
    for row in ordered_rows:
        k = tuple(row[c] for c in spec.stream)
        h = seal(spec, heads.get(k, GENESIS), row, row.pop("_children", None))
        heads[k] = h
        conn.execute(table.update().where(*[c == row[c.name] for c in pk])
                     .values(prev_hash=row["prev_hash"], row_hash=h))
    return heads


__all__ = ["AUDIT", "CASE_EVENTS", "GENESIS", "HOUSEHOLD_LEDGER", "LEDGER", "SETTLEMENTS", "SPECS", "Report", "Spec",
           "backfill", "digest", "register", "seal", "seal_in_lane", "track", "verify"]
