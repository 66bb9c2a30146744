"""Designation and agreements in the store: 定点申请 → 专业评估 → 签约, then dated changes, suspensions,
resumptions and terminations, and the annual assessment.

Each function runs inside the caller's one transaction and writes nothing when it raises (the caller
rolls back). The rules are :mod:`.agreements` and :mod:`.assessment`; this module loads the facts, asks
them, writes the answer, keeps the projections in step (``ins_standing`` for the settlement check, the
service's ``institutions`` row for level and designated period) and writes the audit log through
:func:`yibao.service.transactions.audit`.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.identifiers import identifier_problem
from yibao.institutions import assessment as A
from yibao.institutions.agreements import (CARE_MODES, EVALUATION_ITEMS, EVENT_KINDS, KINDS, LEVELS, SERVICES,
                                           AgreementConflict, AgreementError, AgreementNotFound, Event,
                                           evaluation_result, next_event_problems, refusals, scope_on,
                                           scope_problems, state_on)
from yibao.institutions.models import (InsAgreement, InsAgreementEvent, InsAssessment, InsDesignation,
                                       InsStanding)
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit, new_id
from yibao.store.models import Institution
from yibao.supervision.cases import INSTITUTION_POINTS, Case, CaseEvent

STATUS_ZH = {"applied": "已申请", "evaluated": "已评估", "refused": "不予定点", "signed": "已签约"}


def _code_problems(code: str, name: str | None = None, admdvs: str | None = None) -> list[Problem]:
    problems = []
    if not isinstance(code, str) or not 1 <= len(code) <= 40 or identifier_problem(code):
        problems.append(Problem("INS006", "fixmedins_code", "定点机构编码须为 1 到 40 个字母、数字或 -_ 字符"))
    if name is not None and not (1 <= len(name.strip()) <= 120):
        problems.append(Problem("INS006", "fixmedins_name", "机构名称须填写, 不超过 120 个字符"))
    if admdvs is not None and not (len(admdvs) == 6 and admdvs.isdigit()):
        problems.append(Problem("INS006", "admdvs", f"行政区划须为 6 位数字, 实际为 {admdvs!r}"))
    return problems


def apply_designation(session: Session, who: Principal, ctx: Context, *, fixmedins_code: str, fixmedins_name: str,
                      kind: str, admdvs: str, scope: dict, applied_on: date | None = None) -> dict:
    """定点申请: the institution (or a clerk for it) applies with the scope it asks for."""
    who.require("institution.apply", fixmedins_code)
    problems = _code_problems(fixmedins_code, fixmedins_name, admdvs) + scope_problems(scope, kind)
    if problems:
        raise AgreementError(problems)
    pending = session.scalar(select(InsDesignation.application_no).where(
        InsDesignation.fixmedins_code == fixmedins_code, InsDesignation.status.in_(("applied", "evaluated"))))
    if pending:
        raise AgreementConflict(Problem("INS011", "fixmedins_code", f"机构 {fixmedins_code} 已有办理中的定点申请 {pending}"))
    row = InsDesignation(application_no=new_id("DA"), fixmedins_code=fixmedins_code, fixmedins_name=fixmedins_name.strip(),
                         kind=kind, admdvs=admdvs, scope=_clean(scope), status="applied",
                         applied_on=applied_on or ctx.at.date(), applied_by=who.name, created_at=ctx.at)
    session.add(row)
    session.flush()
    audit(session, who, ctx, "designation.apply", "designation", row.application_no,
          {"fixmedins_code": fixmedins_code, "kind": kind, "scope": row.scope})
    return designation_record(row)


def _clean(scope: dict) -> dict:
    return {"levels": list(dict.fromkeys(scope.get("levels", []))), "services": list(dict.fromkeys(scope.get("services", []))),
            "care_modes": list(dict.fromkeys(scope.get("care_modes", [])))}


def _designation(session: Session, application_no: str, lock: bool = True) -> InsDesignation:
    row = session.scalar(select(InsDesignation).where(InsDesignation.application_no == application_no)
                         .with_for_update(of=InsDesignation) if lock else
                         select(InsDesignation).where(InsDesignation.application_no == application_no))
    if row is None:
        raise AgreementNotFound(Problem("INS010", "application_no", f"定点申请 {application_no} 不存在"))
    return row


def evaluate(session: Session, who: Principal, ctx: Context, *, application_no: str, items: dict,
             note: str = "") -> dict:
    """专业评估: every item of :data:`EVALUATION_ITEMS` answered; failing any item refuses designation."""
    who.require("institution.evaluate")
    row = _designation(session, application_no)
    if row.status != "applied":
        raise AgreementConflict(Problem("INS011", "application_no",
                                        f"定点申请 {application_no} 状态为{STATUS_ZH[row.status]}, 不能评估"))
    passed, problems = evaluation_result(items)
    if problems:
        raise AgreementError(problems)
    row.evaluation = {"items": {k: bool(items[k]) for k in EVALUATION_ITEMS}, "passed": passed, "note": note}
    row.evaluated_on, row.evaluated_by = ctx.at.date(), who.name
    row.status = "evaluated" if passed else "refused"
    audit(session, who, ctx, "designation.evaluate", "designation", application_no,
          {"passed": passed, "failed": [k for k in EVALUATION_ITEMS if not items[k]]})
    return designation_record(row)


def sign(session: Session, who: Principal, ctx: Context, *, application_no: str, valid_from: date, valid_to: date,
         signed_on: date | None = None) -> dict:
    """签订协议: an evaluated application becomes a dated agreement; the service's institution row follows."""
    who.require("institution.agree")
    row = _designation(session, application_no)
    if row.status != "evaluated":
        raise AgreementConflict(Problem("INS011", "application_no", f"定点申请 {application_no} 状态为"
                                        f"{STATUS_ZH[row.status]}; 只有评估通过的申请才能签约"))
    if row.evaluated_by == who.name:
        raise AgreementConflict(Problem("INS015", "signed_by", f"评估人 {who.name} 不能签订同一申请的协议(岗位分离)"))
    if valid_to < valid_from:
        raise AgreementError(Problem("INS016", "valid_to", f"协议截止日期 {valid_to} 早于起始日期 {valid_from}"))
    overlapping = session.scalar(select(InsAgreement.agreement_no).where(
        InsAgreement.fixmedins_code == row.fixmedins_code, InsAgreement.valid_from <= valid_to,
        InsAgreement.valid_to >= valid_from))
    if overlapping and not _ended_before(session, overlapping, valid_from):
        raise AgreementConflict(Problem("INS017", "valid_from", f"机构 {row.fixmedins_code} 的协议 {overlapping} "
                                        f"与 {valid_from}–{valid_to} 重叠"))
    agreement = InsAgreement(agreement_no=new_id("AG"), fixmedins_code=row.fixmedins_code, kind=row.kind,
                             signed_on=signed_on or ctx.at.date(), valid_from=valid_from, valid_to=valid_to,
                             scope=row.scope, application_no=application_no, signed_by=who.name, created_at=ctx.at)
    session.add(agreement)
    session.flush()
    session.add(InsAgreementEvent(agreement_no=agreement.agreement_no, fixmedins_code=row.fixmedins_code, kind="sign",
                                  eff_date=valid_from, scope=row.scope, reason="", actor=who.name, role=who.role,
                                  recorded_at=ctx.at))
    row.status, row.agreement_no = "signed", agreement.agreement_no
    _project_institution(session, row, agreement)
    audit(session, who, ctx, "agreement.sign", "agreement", agreement.agreement_no,
          {"fixmedins_code": row.fixmedins_code, "valid_from": str(valid_from), "valid_to": str(valid_to),
           "scope": row.scope})
    return agreement_record(session, who, agreement.agreement_no, ctx.at.date())


def _ended_before(session: Session, agreement_no: str, on: date) -> bool:
    """True when that agreement was terminated on or before ``on`` (a new one may then start)."""
    ivs = refusals(_events(session, agreement_no))
    return any(iv.status == "terminated" and iv.start <= on for iv in ivs)


def _project_institution(session: Session, designation: InsDesignation, agreement: InsAgreement) -> None:
    """The service's ``institutions`` row: created on first signing, its period and level following the agreements."""
    inst = session.get(Institution, agreement.fixmedins_code, with_for_update=True)
    level = agreement.scope["levels"][0]
    if inst is None:
        session.add(Institution(fixmedins_code=agreement.fixmedins_code, fixmedins_name=designation.fixmedins_name,
                                level=level, admdvs=designation.admdvs, designated_from=agreement.valid_from,
                                designated_to=agreement.valid_to,
                                fixmedins_type="2" if designation.kind == "pharmacy" else "1"))
        return
    inst.designated_from = min(inst.designated_from, agreement.valid_from)
    inst.designated_to = max(inst.designated_to, agreement.valid_to)
    inst.level, inst.fixmedins_name = level, designation.fixmedins_name


def _agreement(session: Session, agreement_no: str, lock: bool = False) -> InsAgreement:
    q = select(InsAgreement).where(InsAgreement.agreement_no == agreement_no)
    row = session.scalar(q.with_for_update(of=InsAgreement) if lock else q)
    if row is None:
        raise AgreementNotFound(Problem("INS020", "agreement_no", f"协议 {agreement_no} 不存在"))
    return row


def _event_rows(session: Session, agreement_no: str) -> list[InsAgreementEvent]:
    return list(session.scalars(select(InsAgreementEvent).where(InsAgreementEvent.agreement_no == agreement_no)
                                .order_by(InsAgreementEvent.eff_date, InsAgreementEvent.id)))


def _events(session: Session, agreement_no: str) -> list[Event]:
    return [Event(e.kind, e.eff_date, e.scope, e.reason) for e in _event_rows(session, agreement_no)]


def record_event(session: Session, who: Principal, ctx: Context, *, agreement_no: str, kind: str, eff_date: date,
                 reason: str = "", scope: dict | None = None, case_id: int | None = None) -> dict:
    """变更 / 暂停 / 恢复 / 解除, as a dated fact; the refusal projection is recomputed from all the facts."""
    who.require("institution.agree")
    agreement = _agreement(session, agreement_no, lock=True)
    rows = _event_rows(session, agreement_no)
    events = [Event(e.kind, e.eff_date, e.scope, e.reason) for e in rows]
    new = Event(kind, eff_date, scope, reason.strip())
    problems = next_event_problems(events, new, agreement.valid_from, agreement.valid_to)
    if kind == "change":
        problems += scope_problems(scope if scope is not None else {}, agreement.kind)
    if case_id is not None:
        if kind != "suspend":
            problems.append(Problem("INS030", "case_id", "只有暂停协议可以援引监管案件"))
        else:
            problems += _case_problems(session, case_id, agreement.fixmedins_code)
    if problems:
        cls = AgreementConflict if any(p.code in ("INS023", "INS024", "INS025") for p in problems) else AgreementError
        raise cls(problems)
    event = InsAgreementEvent(agreement_no=agreement_no, fixmedins_code=agreement.fixmedins_code, kind=kind,
                              eff_date=eff_date, scope=_clean(scope) if kind == "change" else None, reason=new.reason,
                              case_id=case_id, actor=who.name, role=who.role, recorded_at=ctx.at)
    session.add(event)
    session.flush()
    _project_standing(session, agreement, _event_rows(session, agreement_no))
    if kind == "change" and event.scope is not None:
        inst = session.get(Institution, agreement.fixmedins_code, with_for_update=True)
        if inst is not None:
            inst.level = event.scope["levels"][0]
    audit(session, who, ctx, f"agreement.{kind}", "agreement", agreement_no,
          {"fixmedins_code": agreement.fixmedins_code, "eff_date": str(eff_date), "reason": new.reason,
           "case_id": case_id, "scope": event.scope})
    return agreement_record(session, who, agreement_no, ctx.at.date())


def _case_problems(session: Session, case_id: int, code: str) -> list[Problem]:
    """A suspension for a violation: the case is this institution's, 认定违规 (or 追回), and serious by the rules."""
    case = session.get(Case, case_id)
    if case is None:
        return [Problem("INS030", "case_id", f"监管案件 {case_id} 不存在")]
    problems = []
    if case.fixmedins_code != code:
        problems.append(Problem("INS031", "case_id", f"监管案件 {case_id} 不是机构 {code} 的案件"))
    if case.status not in ("confirmed", "recovered"):
        problems.append(Problem("INS032", "case_id", f"监管案件 {case_id} 尚未认定违规(状态 {case.status}), 不能据以暂停协议"))
    if not A.serious(case.severity, A.rules()):
        problems.append(Problem("INS033", "case_id", f"监管案件 {case_id} 的严重程度为 {case.severity}; 考核规则只允许 "
                                f"{A.rules().serious_severities} 的违规据以暂停协议"))
    return problems


def _project_standing(session: Session, agreement: InsAgreement, rows: list[InsAgreementEvent]) -> None:
    session.execute(delete(InsStanding).where(InsStanding.agreement_no == agreement.agreement_no))
    events = [Event(e.kind, e.eff_date, e.scope, e.reason) for e in rows]
    for iv in refusals(events):
        session.add(InsStanding(fixmedins_code=agreement.fixmedins_code, agreement_no=agreement.agreement_no,
                                status=iv.status, start_date=iv.start, end_date=iv.end, reason=iv.reason,
                                event_id=rows[iv.event_index].id))
    session.flush()


# --- reading ---------------------------------------------------------------------------------------


def designation_record(row: InsDesignation) -> dict:
    return {"application_no": row.application_no, "fixmedins_code": row.fixmedins_code,
            "fixmedins_name": row.fixmedins_name, "kind": row.kind, "kind_name": KINDS[row.kind],
            "admdvs": row.admdvs, "scope": row.scope, "status": row.status, "status_name": STATUS_ZH[row.status],
            "applied_on": str(row.applied_on), "evaluation": row.evaluation,
            "evaluated_on": None if row.evaluated_on is None else str(row.evaluated_on),
            "agreement_no": row.agreement_no}


def designation(session: Session, who: Principal, application_no: str) -> dict:
    row = _designation(session, application_no, lock=False)
    who.require("institution.read", row.fixmedins_code)
    return designation_record(row)


def agreement_record(session: Session, who: Principal, agreement_no: str, on: date) -> dict:
    a = _agreement(session, agreement_no)
    who.require("institution.read", a.fixmedins_code)
    rows = _event_rows(session, agreement_no)
    events = [Event(e.kind, e.eff_date, e.scope, e.reason) for e in rows]
    state = state_on(events, on, a.valid_from, a.valid_to)
    return {"agreement_no": a.agreement_no, "fixmedins_code": a.fixmedins_code, "kind": a.kind,
            "signed_on": str(a.signed_on), "valid_from": str(a.valid_from), "valid_to": str(a.valid_to),
            "on": str(on), "state": state, "state_name": STATE_ZH[state], "scope_on": scope_on(events, on),
            "scope_names": _scope_names(scope_on(events, on)),
            "refusals": [{"status": iv.status, "start": str(iv.start), "end": None if iv.end is None else str(iv.end),
                          "reason": iv.reason} for iv in refusals(events)],
            "events": [{"kind": e.kind, "kind_name": EVENT_KINDS[e.kind], "eff_date": str(e.eff_date), "reason": e.reason,
                        "scope": e.scope, "case_id": e.case_id, "actor": e.actor,
                        "recorded_at": e.recorded_at.isoformat(sep=" ")} for e in rows]}


STATE_ZH = {"in_force": "有效", "suspended": "暂停", "terminated": "已解除", "not_started": "未生效", "expired": "已到期"}


def _scope_names(scope: dict | None) -> dict | None:
    if scope is None:
        return None
    return {"levels": [LEVELS[v] for v in scope["levels"]], "services": [SERVICES[v] for v in scope["services"]],
            "care_modes": [CARE_MODES[v] for v in scope["care_modes"]]}


def institution_agreements(session: Session, who: Principal, fixmedins_code: str, on: date) -> dict:
    """An institution's agreements with their state on a date (what its settlement officer sees)."""
    who.require("institution.read", fixmedins_code)
    nos = session.scalars(select(InsAgreement.agreement_no).where(InsAgreement.fixmedins_code == fixmedins_code)
                          .order_by(InsAgreement.valid_from)).all()
    assessments = session.scalars(select(InsAssessment).where(InsAssessment.fixmedins_code == fixmedins_code)
                                  .order_by(InsAssessment.year, InsAssessment.id)).all()
    return {"fixmedins_code": fixmedins_code, "on": str(on),
            "agreements": [agreement_record(session, who, n, on) for n in nos],
            "assessments": [_assessment_record(a) for a in assessments]}


def designations(session: Session, who: Principal, *, status: str | None = None,
                 fixmedins_code: str | None = None, limit: int = 500) -> list[dict]:
    """定点申请 list (newest first) for the applications page: each as :func:`designation_record` (status, the
    evaluation, the agreement it led to). ``status``: applied/evaluated/refused/signed; an institution sees its own."""
    if who.role == "institution":
        fixmedins_code = fixmedins_code or who.fixmedins_code
    who.require("institution.read", fixmedins_code)
    if status is not None and status not in STATUS_ZH:
        raise AgreementError(Problem("INS011", "status", f"申请状态须为 {'/'.join(STATUS_ZH)} 之一"))
    q = select(InsDesignation).order_by(InsDesignation.applied_on.desc(), InsDesignation.id.desc()).limit(limit)
    if status is not None:
        q = q.where(InsDesignation.status == status)
    if fixmedins_code is not None:
        q = q.where(InsDesignation.fixmedins_code == fixmedins_code)
    return [designation_record(r) for r in session.scalars(q)]


def agreements(session: Session, who: Principal, on: date, *, state: str | None = None,
               fixmedins_code: str | None = None, limit: int = 500) -> list[dict]:
    """定点协议 list for the agreements page: every agreement with its state and scope on ``on`` (有效, 暂停, 已解除,
    未生效, 已到期) and its refusal intervals, as :func:`agreement_record`; ``state`` filters on the state that day.
    An institution sees its own."""
    if who.role == "institution":
        fixmedins_code = fixmedins_code or who.fixmedins_code
    who.require("institution.read", fixmedins_code)
    q = select(InsAgreement.agreement_no).order_by(InsAgreement.fixmedins_code, InsAgreement.valid_from).limit(limit)
    if fixmedins_code is not None:
        q = q.where(InsAgreement.fixmedins_code == fixmedins_code)
    out = [agreement_record(session, who, no, on) for no in session.scalars(q)]
    return [a for a in out if state is None or a["state"] == state]


def assessments(session: Session, who: Principal, *, year: int | None = None,
                fixmedins_code: str | None = None) -> list[dict]:
    """年度考核 results for the assessment page, in the order made: institution, year, score, grade, consequence,
    the inputs (credit, the date they were taken ``as_of``, findings) and the rules' version."""
    if who.role == "institution":
        fixmedins_code = fixmedins_code or who.fixmedins_code
    who.require("institution.read", fixmedins_code)
    q = select(InsAssessment).order_by(InsAssessment.year, InsAssessment.fixmedins_code, InsAssessment.id)
    if year is not None:
        q = q.where(InsAssessment.year == year)
    if fixmedins_code is not None:
        q = q.where(InsAssessment.fixmedins_code == fixmedins_code)
    return [{"fixmedins_code": a.fixmedins_code, **_assessment_record(a),
             "consequence_name": A.CONSEQUENCES.get(a.consequence, a.consequence),
             "assessed_at": a.assessed_at.isoformat(timespec="seconds")} for a in session.scalars(q)]


# --- annual assessment -----------------------------------------------------------------------------


FOUND = ("confirmed", "recovered")  # 认定违规, 追回: a finding, and a credit deduction


def cases_on(session: Session, fixmedins_code: str, on: date) -> list[dict]:
    """The institution's supervision cases as they stood at the end of ``on``, from the dated case history
    (``sv_case_events``): each case's status after its last status event dated on or before that day, and the
    amount recovered by then. A case created later is left out; a case with no recorded events (entered
    directly) counts with its present status if it was last changed by then, and as not yet concluded otherwise."""
    end = datetime.combine(on, time.max)
    cases = session.execute(select(Case.id, Case.severity, Case.amount_fen, Case.recovered_fen, Case.status,
                                   Case.created_at, Case.updated_at).where(
        Case.fixmedins_code == fixmedins_code, Case.created_at <= end).order_by(Case.id)).all()
    if not cases:
        return []
    history: dict[int, list] = {}
    for case_id, to, amount in session.execute(
            select(CaseEvent.case_id, CaseEvent.to_status, CaseEvent.amount_fen).where(
                CaseEvent.case_id.in_([c.id for c in cases]), CaseEvent.to_status.is_not(None), CaseEvent.at <= end)
            .order_by(CaseEvent.case_id, CaseEvent.at, CaseEvent.id)):
        history.setdefault(case_id, []).append((to, amount))
    out = []
    for c in cases:
        steps = history.get(c.id)
        if steps:
            status = steps[-1][0]
            recovered = next((int(a or 0) for to, a in reversed(steps) if to == "recovered"), 0)
        elif c.updated_at <= end:
            status, recovered = c.status, int(c.recovered_fen)
        else:
            status, recovered = "suspect", 0
        out.append({"case_id": c.id, "severity": c.severity, "amount_fen": int(c.amount_fen), "recovered_fen": recovered,
                    "status": status, "created_at": c.created_at})
    return out


def credit_on(session: Session, fixmedins_code: str, on: date) -> int | None:
    """The institution's credit score (信用评价) as it stood on ``on``: 100 less the supervision points
    (:data:`yibao.supervision.cases.INSTITUTION_POINTS`) of each case found 认定违规/追回 by then — the rule of
    ``yibao supervision case credit``, read from the dated history. None when no case was found by then."""
    found = [c for c in cases_on(session, fixmedins_code, on) if c["status"] in FOUND]
    if not found:
        return None
    return max(0, 100 - sum(INSTITUTION_POINTS.get(c["severity"], 2) for c in found))


def findings(session: Session, fixmedins_code: str, year: int, on: date | None = None) -> list[A.Finding]:
    """The year's findings: cases created in ``year`` and found 认定违规/追回 as of ``on`` (default: today)."""
    rows = cases_on(session, fixmedins_code, on or date.today())
    return [A.Finding(r["case_id"], r["severity"], r["amount_fen"], r["recovered_fen"]) for r in rows
            if r["status"] in FOUND and r["created_at"].year == year]


def assess(session: Session, who: Principal, ctx: Context, *, fixmedins_code: str, year: int,
           on: date | None = None) -> dict:
    """年度考核 of one institution for a year, recorded with its inputs and the rules' version.

    The supervision inputs (the year's findings and the credit score) are taken as they stood on the
    assessment date ``on`` (default: the day of the assessment, ``ctx.at``), from the dated case history, so an
    assessment recomputed later for the same date gives the same score; the date is recorded in the inputs."""
    who.require("institution.evaluate")
    if not 2000 <= year <= 2100:
        raise AgreementError(Problem("INS040", "year", f"考核年度须为 2000–2100, 实际为 {year}"))
    on = on or ctx.at.date()
    if on.year < year:
        raise AgreementError(Problem("INS043", "on", f"考核日期 {on} 早于考核年度 {year}"))
    if session.scalar(select(InsAgreement.agreement_no).where(InsAgreement.fixmedins_code == fixmedins_code)) is None:
        raise AgreementNotFound(Problem("INS041", "fixmedins_code", f"机构 {fixmedins_code} 没有定点协议, 无从考核"))
    r = A.rules()
    found = findings(session, fixmedins_code, year, on)
    credit = credit_on(session, fixmedins_code, on)
    result = A.assess(found, credit, r)
    row = InsAssessment(fixmedins_code=fixmedins_code, year=year, score=result.score, grade=result.grade,
                        consequence=result.consequence,
                        inputs={"credit": result.credit, "as_of": str(on), **result.breakdown},
                        rules_version=r.version, assessed_by=who.name, assessed_at=ctx.at)
    session.add(row)
    session.flush()
    audit(session, who, ctx, "agreement.assess", "assessment", str(row.id),
          {"fixmedins_code": fixmedins_code, "year": year, "as_of": str(on), "score": str(result.score),
           "grade": result.grade})
    return {"fixmedins_code": fixmedins_code, "year": year, "as_of": str(on), "rules_version": r.version,
            **result.as_dict(), "consequence_name": A.CONSEQUENCES[result.consequence]}


def _assessment_record(a: InsAssessment) -> dict:
    return {"year": a.year, "score": str(a.score), "grade": a.grade, "consequence": a.consequence,
            "rules_version": a.rules_version, "inputs": a.inputs, "assessed_by": a.assessed_by}
