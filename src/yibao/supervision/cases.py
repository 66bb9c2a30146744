"""Suspect cases (疑点案件): hits become cases worked to a conclusion, with an audit trail.

Lifecycle: 疑点 suspect → 核实中 verifying → 认定违规 confirmed / 排除 excluded;
认定违规 → 追回 recovered (amount recovered, at most the amount at stake). Any other move is
refused (CAS010). Every change, assignment and comment is an event row; nothing is deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from yibao.errors import Problem
from yibao.money import format_yuan, yuan_to_fen
from yibao.store import chain, migrate
from yibao.store.base import Base
from yibao.store.database import default_url, make_engine
from yibao.supervision.model import CaseError

STATUS_ZH = {"suspect": "疑点", "verifying": "核实中", "confirmed": "认定违规", "excluded": "排除", "recovered": "追回"}
TRANSITIONS = {"suspect": {"verifying"}, "verifying": {"confirmed", "excluded"}, "confirmed": {"recovered"}}


class Case(Base):
    __tablename__ = "sv_cases"
    __table_args__ = (UniqueConstraint("rule_id", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(32))
    rule_name: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(64))
    mdtrt_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    psn_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fixmedins_code: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    atddr_no: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    recovered_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="suspect", index=True)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CaseEvent(Base):
    __tablename__ = "sv_case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("sv_cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # create, assign, comment, status
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")  # hash chain per case (yibao.store.chain)
    row_hash: Mapped[str] = mapped_column(String(64), default="")


chain.track(CaseEvent, chain.CASE_EVENTS)
TABLES = [Case.__table__, CaseEvent.__table__]


def create_tables(engine) -> None:
    """For tests on a throw-away database only: tables made here have no Alembic history, so
    ``yibao db upgrade`` would later fail on them. Everything else goes through :func:`open_store`."""
    Base.metadata.create_all(engine, tables=TABLES)


def _safe_url(url: str) -> str:
    """The URL as a user may see it: never the password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def open_store(url: str | None = None):
    """An engine on the case store, brought to every Alembic head first (idempotent), so the
    store's history stays whole and ``yibao db upgrade`` keeps working afterwards."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    url = url or default_url()
    try:
        migrate.upgrade(url)
        return make_engine(url)
    except (SQLAlchemyError, OSError) as exc:
        raise CaseError(Problem("CAS020", "--db", f"无法打开案件库 {_safe_url(url)}: {_reason(exc)}"
                                "(检查 URL 格式, 如 sqlite:///yibao-data/yibao.db 或 "
                                "postgresql+psycopg://用户@主机/库, 以及数据库是否可连接)")) from None
    except CommandError as exc:
        raise CaseError(Problem("CAS021", "--db", f"案件库迁移失败 {_safe_url(url)}: {_reason(exc)}")) from None


def check_status(status: str) -> str:
    if status not in STATUS_ZH:
        raise CaseError(Problem("CAS011", "status", f"未知状态 {status!r}; 可用 {list(STATUS_ZH)}"))
    return status


HIT_FIELDS = ("rule_id", "rule_name", "severity", "subject")


def check_hit_columns(columns) -> None:
    """A hits table must carry what a case is made of; name every missing column at once."""
    have = set(columns)
    missing = [c for c in HIT_FIELDS if c not in have]
    if "amount_fen" not in have and "amount_yuan" not in have:
        missing.append("amount_yuan")
    if missing:
        raise CaseError([Problem("CAS003", c, f"疑点文件缺少列 {c}(应为 yibao audit 输出的 hits.parquet)")
                         for c in missing])


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)


def import_hits(session: Session, hits: list[dict], actor: str = "system") -> int:
    """Hits (rows of hits.parquet) as new 疑点 cases; a (rule, subject) already filed is kept."""
    have = {(r, s) for r, s in session.execute(select(Case.rule_id, Case.subject))}
    n = 0
    if hits:
        check_hit_columns(hits[0])
    for k, h in enumerate(hits):
        if (h["rule_id"], h["subject"]) in have:
            continue
        now = _now()
        amount = h.get("amount_fen")
        try:
            if amount is None and h.get("amount_yuan") is not None:
                amount = yuan_to_fen(h["amount_yuan"])
        except ValueError:
            amount = None
        if amount is None or amount < 0 or h["rule_id"] is None or h["subject"] is None:
            raise CaseError(Problem("CAS005", f"hits[{k}]",
                                    f"第 {k + 1} 条疑点缺少规则编号或对象, 或金额不是精确到分的非负数"))
        case = Case(rule_id=h["rule_id"], rule_name=h["rule_name"], severity=h["severity"], subject=h["subject"],
                    mdtrt_id=h.get("mdtrt_id"), psn_no=h.get("psn_no"), fixmedins_code=h.get("fixmedins_code"),
                    atddr_no=h.get("atddr_no"), amount_fen=int(amount), recovered_fen=0, status="suspect",
                    message=h.get("message") or "", created_at=now, updated_at=now)
        session.add(case)
        session.flush()
        session.add(CaseEvent(case_id=case.id, at=now, actor=actor, action="create", to_status="suspect", note=""))
        have.add((h["rule_id"], h["subject"]))
        n += 1
    return n


def get(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise CaseError(Problem("CAS001", "case_id", f"没有编号为 {case_id} 的疑点案件"))
    return case


def move(session: Session, case_id: int, to: str, actor: str, note: str = "", amount_fen: int | None = None) -> Case:
    """Change a case's status; illegal moves and bad recovery amounts are refused."""
    case = get(session, case_id)
    check_status(to)
    if to not in TRANSITIONS.get(case.status, set()):
        allowed = "、".join(STATUS_ZH[s] for s in sorted(TRANSITIONS.get(case.status, ()))) or "无(已结案)"
        raise CaseError(Problem("CAS010", f"case {case_id}.status",
                                f"不能从「{STATUS_ZH[case.status]}」转为「{STATUS_ZH[to]}」; 允许的下一步: {allowed}"))
    if to == "recovered":
        if amount_fen is None or amount_fen <= 0:
            raise CaseError(Problem("CAS012", "amount", "追回须给出大于 0 的追回金额"))
        if amount_fen > case.amount_fen:
            raise CaseError(Problem("CAS013", "amount",
                                    f"追回金额 {format_yuan(amount_fen)} 元超过违规金额 {format_yuan(case.amount_fen)} 元"))
        case.recovered_fen = amount_fen
    if to in ("excluded",) and not note:
        raise CaseError(Problem("CAS014", "note", "排除疑点须说明理由"))
    now = _now()
    session.add(CaseEvent(case_id=case.id, at=now, actor=actor, action="status", from_status=case.status,
                          to_status=to, note=note, amount_fen=amount_fen))
    case.status, case.updated_at = to, now
    return case


def assign(session: Session, case_id: int, assignee: str, actor: str) -> Case:
    case = get(session, case_id)
    now = _now()
    session.add(CaseEvent(case_id=case.id, at=now, actor=actor, action="assign", note=assignee))
    case.assignee, case.updated_at = assignee, now
    return case


def comment(session: Session, case_id: int, text: str, actor: str) -> Case:
    if not text.strip():
        raise CaseError(Problem("CAS015", "text", "意见不能为空"))
    case = get(session, case_id)
    session.add(CaseEvent(case_id=case.id, at=_now(), actor=actor, action="comment", note=text))
    return case


def events(session: Session, case_id: int) -> list[CaseEvent]:
    get(session, case_id)
    return list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)))


# --- 信用评价 / 医保医师积分 -----------------------------------------------------------------------

INSTITUTION_POINTS = {"high": 10, "medium": 5, "low": 2}  # deducted from 100 per confirmed case
PHYSICIAN_POINTS = {"high": 6, "medium": 3, "low": 1}  # deducted from 12 (医保医师记分, 年度 12 分)
GRADES = ((90, "A"), (75, "B"), (60, "C"), (0, "D"))


def credit_scores(session: Session) -> tuple[list[dict], list[dict]]:
    """Institution credit (100 less points per confirmed/recovered case, graded A–D) and
    physician scores (12 less points; 0 means suspension of the physician's 医保 service)."""
    inst: dict[str, dict] = {}
    doc: dict[str, dict] = {}
    rows = session.execute(select(Case.fixmedins_code, Case.atddr_no, Case.severity, Case.amount_fen, Case.recovered_fen)
                           .where(Case.status.in_(("confirmed", "recovered"))))
    for code, atddr, severity, amount, recovered in rows:
        if code:
            r = inst.setdefault(code, {"fixmedins_code": code, "confirmed": 0, "deducted": 0, "amount_fen": 0,
                                       "recovered_fen": 0})
            r["confirmed"] += 1
            r["deducted"] += INSTITUTION_POINTS.get(severity, 2)
            r["amount_fen"] += amount
            r["recovered_fen"] += recovered
        if atddr:
            d = doc.setdefault(atddr, {"atddr_no": atddr, "fixmedins_code": code, "confirmed": 0, "deducted": 0})
            d["confirmed"] += 1
            d["deducted"] += PHYSICIAN_POINTS.get(severity, 1)
    for r in inst.values():
        r["score"] = max(0, 100 - r["deducted"])
        r["grade"] = next(g for floor, g in GRADES if r["score"] >= floor)
    for d in doc.values():
        d["score"] = max(0, 12 - d["deducted"])
    return (sorted(inst.values(), key=lambda r: (r["score"], r["fixmedins_code"])),
            sorted(doc.values(), key=lambda d: (d["score"], d["atddr_no"])))
