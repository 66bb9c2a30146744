"""因病返贫致贫风险监测: persons whose annual burden crosses the pack's monitoring thresholds.

From a settled table (one row per visit, amounts in fen), per person and data year:

- 政策范围内个人负担 ``inscp_psn_part`` and 个人负担总额 ``psn_part_amt``, summed over the year;
- each threshold of ``pack.monitoring``: ``income_share`` × last year's per-capita disposable
  income (``pack.reference``), rounded half-up to the fen; a person crosses it when the annual
  measure is **strictly above** it;
- for those who cross any: masked ID and name, categories, the visits behind the burden (how many
  had a personal share, and the three with the largest ``psn_part_amt``), and whether 再救助 /
  依申请救助 would apply (:mod:`yibao.monitoring.assistance`).

Everything up to the list of flagged persons is SQL in DuckDB; Python only shapes the (short) list.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Callable

from yibao.batch.run import BatchRun, settle
from yibao.sql import ident, q
from yibao.errors import Problem
from yibao.money import fen_to_yuan, mul_rate
from yibao.monitoring.assistance import AssistanceCheck, check, income_share_tiers
from yibao.monitoring.export import write_outputs
from yibao.monitoring.measures import MEASURE_NAMES, MonitoringError, income_pct
from yibao.privacy import mask_certno_sql, mask_name_sql
from yibao.policy.compiled import CompiledPack

TOP_VISITS = 3
Progress = Callable[[str, int, int], None]
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NEEDED = ("psn_no", "mdtrt_id", "yr", "setl_time", "insutype", "med_type", "level", "medfee_sumamt",
          "fund_pay_sumamt", "maf_pay", "inscp_psn_part", "psn_part_amt")


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else str(fen_to_yuan(fen))


@dataclass(frozen=True)
class ThresholdInfo:
    id: str
    name: str
    measure: str  # inscp_psn_part | psn_part_amt
    income_share: Decimal
    amount: int  # fen

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "measure": self.measure,
                "measure_name": MEASURE_NAMES[self.measure], "income_share": str(self.income_share),
                "amount": _yuan(self.amount)}


@dataclass(frozen=True)
class TopVisit:
    mdtrt_id: str
    setl_time: datetime
    med_type: str
    level: str
    psn_part_amt: int
    inscp_psn_part: int

    def to_dict(self) -> dict:
        return {"mdtrt_id": self.mdtrt_id, "setl_time": self.setl_time.isoformat(sep=" "),
                "med_type": self.med_type, "level": self.level, "psn_part_amt": _yuan(self.psn_part_amt),
                "inscp_psn_part": _yuan(self.inscp_psn_part)}


@dataclass(frozen=True)
class FlaggedPerson:
    yr: int
    psn_no: str
    certno: str | None  # masked
    name: str | None  # masked
    insutype: str
    categories: tuple[str, ...]  # codes
    category_names: tuple[str, ...]
    hh_no: str | None
    admdvs: str | None
    visits: int  # settled visits of the year
    burden_visits: int  # of which with a personal share > 0
    medfee_sumamt: int
    fund_pay_sumamt: int
    maf_pay: int
    inscp_psn_part: int
    psn_part_amt: int
    thresholds: tuple[str, ...]  # ids crossed
    top_visits: tuple[TopVisit, ...]
    assistance: tuple[AssistanceCheck, ...]

    def route(self, route: str) -> list[AssistanceCheck]:
        return [a for a in self.assistance if a.route == route]

    def route_text(self, route: str) -> str:
        checks = self.route(route)
        return "; ".join(a.message for a in checks) if checks else "不适用(非救助对象)"

    def to_dict(self, income: int) -> dict:
        return {
            "yr": self.yr, "psn_no": self.psn_no, "certno": self.certno, "psn_name": self.name,
            "insutype": self.insutype, "categories": list(self.categories), "category_names": list(self.category_names),
            "hh_no": self.hh_no, "admdvs": self.admdvs, "visits": self.visits, "burden_visits": self.burden_visits,
            "medfee_sumamt": _yuan(self.medfee_sumamt), "fund_pay_sumamt": _yuan(self.fund_pay_sumamt),
            "maf_pay": _yuan(self.maf_pay), "inscp_psn_part": _yuan(self.inscp_psn_part),
            "psn_part_amt": _yuan(self.psn_part_amt),
            "inscp_income_pct": str(income_pct(self.inscp_psn_part, income)),
            "oop_income_pct": str(income_pct(self.psn_part_amt, income)),
            "thresholds": list(self.thresholds),
            "top_visits": [v.to_dict() for v in self.top_visits],
            "assistance": [a.to_dict() for a in self.assistance],
        }


@dataclass
class MonitoringResult:
    pack: dict  # id, name, version
    income: int  # fen, last year's per-capita disposable income
    reference_year: int
    thresholds: list[ThresholdInfo]
    years: list[int]
    persons_screened: int  # insured person-years
    persons_with_visits: int
    counts: dict[str, int]  # threshold id → person-years crossing it
    people: list[FlaggedPerson]
    table: str
    outputs: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def assistance_counts(self) -> dict[str, int]:
        """How many flagged person-years each status concerns, e.g. {'依申请救助 可申请': 3}."""
        labels = {"paid": "已享受", "eligible": "可申请", "below": "未达起付线", "superseded": "已由同组救助"}
        out: dict[str, int] = {}
        for p in self.people:
            for key in {f"{a.tier_name}: {labels[a.status]}" for a in p.assistance}:
                out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict:
        return {
            "kind": "yibao.monitoring",
            "pack": self.pack,
            "reference": {"year": self.reference_year, "per_capita_disposable_income": _yuan(self.income)},
            "thresholds": [t.to_dict() for t in self.thresholds],
            "years": self.years,
            "persons_screened": self.persons_screened,
            "persons_with_visits": self.persons_with_visits,
            "counts": self.counts,
            "flagged": len(self.people),
            "assistance_counts": self.assistance_counts(),
            "units": {"amounts": "元, 精确到分的十进制字符串 (yuan, exact decimal strings)",
                      "rule": "年度金额严格大于阈值即触发 (annual amount strictly above the threshold)",
                      "masking": "证件号码保留前 6 位和后 4 位, 姓名保留第一个字"},
            "people": [p.to_dict(self.income) for p in self.people],
        }


def thresholds_of(pack: CompiledPack) -> list[ThresholdInfo]:
    mon = pack.pack.monitoring
    if mon is None:
        raise MonitoringError(Problem(
            "MON001", "monitoring",
            f"政策包 {pack.id} 没有 monitoring(返贫监测阈值)一节; 请在政策包中加入 monitoring.thresholds, "
            "如 {id: warn_inscp_25, name: ..., measure: inscp_psn_part, income_share: 0.25}"))
    return [ThresholdInfo(t.id, t.name, t.measure, t.income_share, mul_rate(pack.income, t.income_share))
            for t in mon.thresholds]


def _check_table(run: BatchRun, table: str, pack: CompiledPack) -> None:
    if not _TABLE.match(table):
        raise MonitoringError(Problem("MON002", "table", f"结算结果表名不合法: {table!r}"))
    tables = {r[0] for r in run.con.sql("SHOW TABLES").fetchall()}
    if table not in tables:
        raise MonitoringError(Problem("MON002", "table", f"找不到结算结果表 {table}; 请先批量结算, 或不指定表名"))
    cols = {r[0] for r in run.con.sql(f"DESCRIBE {table}").fetchall()}
    missing = [c for c in NEEDED if c not in cols]
    missing += [f"pay__{ident(t.id)}" for t in income_share_tiers(pack) if f"pay__{ident(t.id)}" not in cols]
    if missing:
        raise MonitoringError(Problem(
            "MON003", table, f"结算结果表缺少列 {', '.join(missing)}; 它是否按政策包 {pack.id} 结算?"))


def _tier_filter(tier) -> str:
    conds = []
    if tier.med_types is not None:
        conds.append(f"s.med_type IN ({', '.join(q(m) for m in sorted(tier.med_types))})")
    if tier.insutypes is not None:
        conds.append(f"s.insutype IN ({', '.join(q(i) for i in sorted(tier.insutypes))})")
    return " AND ".join(conds) or "TRUE"


def monitor(run: BatchRun, pack: CompiledPack, table: str | None = None, out_dir: Path | None = None,
            *, progress: Progress | None = None) -> MonitoringResult:
    """Screen the settled year for persons crossing the pack's monitoring thresholds.

    ``table``: a table settled under ``pack`` (``settled_<tag>``); if None the claims are settled
    here into ``settled_monitor``. With ``out_dir``, monitoring.csv and monitoring.xlsx are written.
    """
    thresholds = thresholds_of(pack)
    out_path = None
    if out_dir is not None:
        out_path = Path(out_dir)
        if out_path.exists() and not out_path.is_dir():
            raise MonitoringError(Problem("MON004", "out_dir", f"{out_path} 已存在且不是目录"))
    note = progress or (lambda *_: None)
    total = (1 if table is None else 0) + 1 + (1 if out_path is not None else 0)
    step = 0
    timings: dict[str, float] = {}
    if table is None:
        t = time.perf_counter()
        note(f"结算 {pack.id}", step, total)
        table = settle(run, pack, "monitor")
        timings["settle"] = time.perf_counter() - t
        step += 1
    _check_table(run, table, pack)
    t = time.perf_counter()
    note("筛查", step, total)
    result = screen(run, pack, table, thresholds)
    timings["screen"] = time.perf_counter() - t
    step += 1
    if out_path is not None:
        t = time.perf_counter()
        note("写出名单", step, total)
        result.outputs = write_outputs(result, pack, out_path)
        timings["write"] = time.perf_counter() - t
        step += 1
    note("完成", total, total)
    result.timings = timings
    return result


def screen(run: BatchRun, pack: CompiledPack, table: str, thresholds: list[ThresholdInfo]) -> MonitoringResult:
    con = run.con
    tiers = income_share_tiers(pack)
    tier_cols = "".join(
        f', SUM(s."pay__{ident(t.id)}") AS "paid_{i}"'
        f', SUM(s.inscp_psn_part) FILTER (WHERE {_tier_filter(t)}) AS "inscp_{i}"'
        f', SUM(s.psn_part_amt) FILTER (WHERE {_tier_filter(t)}) AS "oop_{i}"'
        for i, t in enumerate(tiers))
    con.sql(f"""
        CREATE OR REPLACE TABLE monitor_py AS
        SELECT s.psn_no, s.yr, COUNT(*) AS visits, COUNT(*) FILTER (WHERE s.psn_part_amt > 0) AS burden_visits,
               SUM(s.medfee_sumamt) AS medfee, SUM(s.fund_pay_sumamt) AS fund, SUM(s.maf_pay) AS maf,
               SUM(s.inscp_psn_part) AS inscp, SUM(s.psn_part_amt) AS oop{tier_cols}
        FROM {table} s GROUP BY s.psn_no, s.yr""")
    measure_col = {"inscp_psn_part": "m.inscp", "psn_part_amt": "m.oop"}
    hits = ", ".join(f'({measure_col[t.measure]} > {t.amount}) AS "hit_{i}"' for i, t in enumerate(thresholds))
    any_hit = " OR ".join(f"{measure_col[t.measure]} > {t.amount}" for t in thresholds)
    con.sql(f"""
        CREATE OR REPLACE TABLE monitor_flagged AS
        SELECT m.*, {hits}, p.insutype AS p_insutype, list_distinct(COALESCE(p.categories, []::VARCHAR[])) AS cats,
               {mask_certno_sql('p.certno')} AS certno_masked, {mask_name_sql('p.psn_name')} AS name_masked,
               p.hh_no, p.admdvs
        FROM monitor_py m JOIN persons p ON p.psn_no = m.psn_no
        WHERE {any_hit}""")
    top = {(r[0], r[1]): r[2] for r in con.sql(f"""
        SELECT s.psn_no, s.yr,
               list([s.mdtrt_id, CAST(s.setl_time AS VARCHAR), s.med_type, s.level,
                     CAST(s.psn_part_amt AS VARCHAR), CAST(s.inscp_psn_part AS VARCHAR)]
                    ORDER BY s.psn_part_amt DESC, s.mdtrt_id)[1:{TOP_VISITS}]
        FROM {table} s JOIN monitor_flagged f ON f.psn_no = s.psn_no AND f.yr = s.yr
        GROUP BY s.psn_no, s.yr""").fetchall()}
    cur = con.sql("""SELECT * FROM monitor_flagged
                      ORDER BY inscp DESC, oop DESC, psn_no, yr""")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    people = []
    for row in rows:
        cats = frozenset(row["cats"] or ())
        ordered = tuple(c for c in pack.categories if c in cats) + tuple(sorted(c for c in cats if c not in pack.categories))
        paid = {t.id: int(row[f"paid_{i}"] or 0) for i, t in enumerate(tiers)}
        bases = {t.id: (int(row[f"inscp_{i}"] or 0), int(row[f"oop_{i}"] or 0)) for i, t in enumerate(tiers)}
        visits = tuple(TopVisit(v[0], datetime.fromisoformat(v[1]), v[2], v[3], int(v[4]), int(v[5]))
                       for v in top.get((row["psn_no"], row["yr"]), []))
        people.append(FlaggedPerson(
            yr=row["yr"], psn_no=row["psn_no"], certno=row["certno_masked"], name=row["name_masked"],
            insutype=row["p_insutype"], categories=ordered,
            category_names=tuple(pack.categories.get(c, c) for c in ordered),
            hh_no=row["hh_no"], admdvs=row["admdvs"], visits=row["visits"], burden_visits=row["burden_visits"],
            medfee_sumamt=int(row["medfee"]), fund_pay_sumamt=int(row["fund"]), maf_pay=int(row["maf"]),
            inscp_psn_part=int(row["inscp"]), psn_part_amt=int(row["oop"]),
            thresholds=tuple(t.id for i, t in enumerate(thresholds) if row[f"hit_{i}"]),
            top_visits=visits,
            assistance=tuple(check(pack, row["p_insutype"], cats, paid, bases)),
        ))
    counts_row = con.sql(
        "SELECT " + ", ".join(f'COUNT(*) FILTER (WHERE "hit_{i}")' for i in range(len(thresholds)))
        + " FROM monitor_flagged").fetchone()
    years = [r[0] for r in con.sql(f"SELECT DISTINCT yr FROM {table} ORDER BY yr").fetchall()]
    n_persons = con.sql("SELECT COUNT(*) FROM persons").fetchone()[0]
    with_visits = con.sql("SELECT COUNT(*) FROM monitor_py").fetchone()[0]
    return MonitoringResult(
        pack={"id": pack.id, "name": pack.name, "version": pack.version},
        income=pack.income, reference_year=pack.pack.reference.year, thresholds=thresholds, years=years,
        persons_screened=n_persons * max(1, len(years)), persons_with_visits=with_visits,
        counts={t.id: int(c) for t, c in zip(thresholds, counts_row)}, people=people, table=table)
