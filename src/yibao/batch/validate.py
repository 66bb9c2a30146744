"""Before a batch is settled: every visit must be settleable under the pack, or nothing is.

Each check is a SQL count with example ids, so a region's extract of millions of rows is
checked in the engine itself. The report names the table, the column, how many rows and a
few of their ids; if anything is reported, no visit is settled.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from yibao.batch.inputs import CHECK_NO_LINES, CHECK_NO_PERSON, CHECK_NO_VISIT, CLAIMS_COMBOS
from yibao.batch.lower import OFFSITE
from yibao.errors import Problem, YibaoError
from yibao.handling.effects import certified_visits_sql, chronic_kinds_sql
from yibao.policy.compiled import CompiledPack
from yibao.sql import q

SAMPLE = 5
# the checks counted in one pass over visits ⟕ persons ⟗ classified: by visit_counts here, or by the settle stream
# itself as it reads that join (JoinCounts, check_applicability(joins=False))
JOIN_COUNTED = frozenset({"BAT004", "BAT006", "BAT009", "BAT019", "BAT020", "BAT021"})
MAX_VISIT_FEN = 1_000_000_000  # 10,000,000 yuan: larger visits are refused (BAT008), the kernel's exact range


class BatchError(YibaoError):
    title = "批量结算输入校验失败, 未结算任何就诊"


def applicability_checks(pack: CompiledPack, offsite: bool = False, facts: bool = False) -> list[tuple[str, str, str, str]]:
    """(code, path, Chinese message, SQL selecting the offending ids as ``id``); ``offsite``: the visits carry
    the optional ``offsite_status`` column; ``facts``: the 经办 facts exported from the store are there."""
    levels = ", ".join(q(lv) for lv in pack.levels)
    cats = ", ".join(q(c) for c in pack.categories) or "''"
    statuses = ", ".join(q(s) for s in OFFSITE)
    offsite_check = [("BAT013", "visits.offsite_status", "异地就医状态应为 local(本地)/filed(已备案)/unfiled(未备案) 之一",
                      f"SELECT mdtrt_id AS id FROM visits WHERE offsite_status IS NOT NULL AND offsite_status NOT IN ({statuses})")]
    kinds = chronic_kinds_sql(pack.pack)
    facts_check = []
    if facts and kinds is not None and pack.pack.handling.uncertified_chronic == "refuse":
        facts_check = [("BAT015", "visits.med_type", "门诊慢特病就诊在结算日没有有效的门诊慢特病认定(政策包规定拒绝结算)",
                        f"SELECT v.mdtrt_id AS id FROM visits v ANTI JOIN ({certified_visits_sql()}) c "
                        f"ON c.mdtrt_id = v.mdtrt_id WHERE v.med_type IN ({kinds})")]
    return [
        ("BAT001", "visits.setl_time",
         f"结算时间不在政策包 {pack.id} 有效期 {pack.effective_from} 至 {pack.effective_to} 内",
         f"SELECT mdtrt_id AS id FROM visits WHERE CAST(setl_time AS DATE) < DATE {q(str(pack.effective_from))}"
         f" OR CAST(setl_time AS DATE) > DATE {q(str(pack.effective_to))} OR setl_time IS NULL"),
        ("BAT002", "visits.level", f"机构等级不在政策包声明的 {sorted(pack.levels)} 中",
         f"SELECT mdtrt_id AS id FROM visits WHERE level IS NULL OR level NOT IN ({levels})"),
        ("BAT003", "visits.referral_from_level", "转出机构等级不在政策包声明的等级中",
         f"SELECT mdtrt_id AS id FROM visits WHERE referral_from_level IS NOT NULL AND referral_from_level NOT IN ({levels})"),
        ("BAT004", "visits.med_type", "没有适用的基本医保规则(险种、医疗类别、诊断、机构等级组合不在政策包中)",
         "SELECT v.mdtrt_id AS id FROM visits v JOIN persons p ON p.psn_no = v.psn_no JOIN pack_unmatched u "
         "ON u.insutype = p.insutype AND u.med_type = v.med_type AND u.dise_codg = COALESCE(v.dise_codg, '') "
         "AND u.level = v.level"),
        ("BAT005", "persons.categories", f"人员类别不在政策包声明的 {sorted(pack.categories)} 中",
         f"SELECT psn_no AS id FROM (SELECT psn_no, unnest(categories) AS c FROM persons) WHERE c NOT IN ({cats})"),
        ("BAT006", "visits.psn_no", "就诊的参保人不在 persons 表中",
         "SELECT v.mdtrt_id AS id FROM visits v LEFT JOIN persons p ON p.psn_no = v.psn_no WHERE p.psn_no IS NULL"),
        ("BAT007", "fee_items.chrgitm_lv", "费用明细不在政策包目录中且未给出已声明的收费项目等级",
         "SELECT i.feedetl_sn AS id FROM fee_items i LEFT JOIN pack_catalog c ON c.med_list_codg = i.med_list_codg "
         "LEFT JOIN pack_classes k ON k.chrgitm_lv = i.chrgitm_lv "
         "WHERE (i.chrgitm_lv IS NULL AND c.med_list_codg IS NULL) OR (i.chrgitm_lv IS NOT NULL AND k.chrgitm_lv IS NULL)"),
        ("BAT008", "visits.medfee_sumamt", f"单次就诊费用超过 {MAX_VISIT_FEN // 100:,} 元, 超出批量引擎的精确计算范围",
         f"SELECT mdtrt_id AS id FROM (SELECT mdtrt_id, SUM(det_item_fee_sumamt) AS total FROM fee_items GROUP BY mdtrt_id)"
         f" WHERE total * 100 > {MAX_VISIT_FEN}"),
        ("BAT009", "visits.mdtrt_id", "就诊没有任何费用明细",
         "SELECT v.mdtrt_id AS id FROM visits v LEFT JOIN (SELECT DISTINCT mdtrt_id FROM fee_items) i "
         "ON i.mdtrt_id = v.mdtrt_id WHERE i.mdtrt_id IS NULL"),
        ("BAT018", "fee_items.det_item_fee_sumamt", "金额/数量不能为负数(退费请先与原明细冲销; 与 yibao claims check 的 CLM020 相同)",
         "SELECT feedetl_sn AS id FROM fee_items WHERE det_item_fee_sumamt < 0 OR cnt < 0 OR pric < 0"),
        ("BAT019", "visits.mdtrt_id", "就诊编号重复: 同一次就诊出现多行(会被重复结算)",
         "SELECT mdtrt_id AS id FROM visits GROUP BY mdtrt_id HAVING COUNT(*) > 1"),
        ("BAT020", "persons.psn_no", "人员编号重复: 同一参保人出现多行(就诊无法确定按哪一行的险种与类别结算)",
         "SELECT p.psn_no AS id FROM persons p SEMI JOIN visits v ON v.psn_no = p.psn_no "
         "GROUP BY p.psn_no HAVING COUNT(*) > 1"),
        ("BAT021", "fee_items.mdtrt_id", "费用明细的就诊编号不在 visits 表中(这些明细不会被结算)",
         "SELECT DISTINCT i.mdtrt_id AS id FROM fee_items i ANTI JOIN visits v ON v.mdtrt_id = i.mdtrt_id"),
    ] + (offsite_check if offsite else []) + facts_check


def classified_checks(con) -> dict[str, str]:
    """When the fee lines are already classified (table ``classified``: one row per visit with its amounts
    in fen and its count of lines no class applies to), the three line-level checks read it instead of
    grouping every fee line again: the same ids, a tenth of the work on a region's year."""
    unclassified = con.sql("SELECT COALESCE(SUM(unclassified), 0) FROM classified").fetchone()[0]
    return {
        "BAT007": None if unclassified else "SELECT NULL AS id WHERE FALSE",  # None: run the line-level query
        "BAT008": f"SELECT mdtrt_id AS id FROM classified WHERE fulamt + overlmt + pre + inscp > {MAX_VISIT_FEN}",
        "BAT009": "SELECT v.mdtrt_id AS id FROM visits v ANTI JOIN classified c ON c.mdtrt_id = v.mdtrt_id",
    }


def register_unmatched(con, pack: CompiledPack, combos=None) -> list[tuple]:
    """``pack_unmatched``: the (insutype, med_type, dise_codg, level) combinations of the visits that no basic
    rule takes, decided by the look-up the kernel's input and the scalar engine use (``CompiledPack.basic_rule``)
    once per combination, so batch validation cannot disagree with settlement about which visits it can pay.
    ``combos``: those combinations when the caller has them already (:func:`visit_counts`). Returns them."""
    combos = con.sql(CLAIMS_COMBOS).fetchall() if combos is None else combos
    unmatched = [c for c in combos
                 if c[3] not in pack.levels or pack.basic_rule(c[0], c[1], c[2], c[3]) is None]
    con.register("pack_unmatched", _combos_table(unmatched))
    return unmatched


def _combos_table(combos) -> pa.Table:
    return pa.table({name: pa.array([c[i] for c in combos], pa.string())
                     for i, name in enumerate(("insutype", "med_type", "dise_codg", "level"))})


@dataclass
class JoinCounts:
    """Batch validation's checks of the joins (:data:`JOIN_COUNTED`), counted by the settle stream
    (:func:`yibao.batch.stream.settle_stream`) on the rows of visits ⟕ persons ⟗ classified
    (``visits_in_query(checked=True)``) as it reads them, which saves validation's own pass over that join
    (:func:`visit_counts`, which counts the same rows grouped and decides by the same :meth:`counts`). ``visits``,
    ``classified``: the rows of each (classified has one per mdtrt_id)."""

    visits: int
    classified: int
    rows: int = 0  # joined rows with a visit (more than ``visits``: a person matched twice, BAT020)
    with_lines: int = 0  # ... that have fee lines
    no_person: int = 0  # BAT006
    no_lines: int = 0  # BAT009
    orphans: int = 0  # classified visits without a row in visits: BAT021
    no_rule: int = 0  # visits of a known person that no basic rule takes: BAT004

    def count(self, batch: pa.RecordBatch, program) -> pa.RecordBatch:
        """Count a batch of the stream's ordering query (``program``: its :class:`yibao.batch.lower.Program` with
        the combinations registered); return the rows to settle (a visit with its person, its lines and a rule)."""
        check = batch.column("k_check").to_numpy(zero_copy_only=False)
        visit = (check & CHECK_NO_VISIT) == 0
        person = (check & CHECK_NO_PERSON) == 0
        lines = (check & CHECK_NO_LINES) == 0
        combo = batch.column("k_combo")
        rule = program.combos.codes["bidx"][pc.fill_null(combo, -1).to_numpy(zero_copy_only=False)] >= 0
        # a null code has no combination: left to the kernel, which refuses it (KRN010) as after validation
        unknown = ~combo.is_valid().to_numpy(zero_copy_only=False)
        self.rows += int(visit.sum())
        self.with_lines += int((visit & lines).sum())
        self.no_person += int((visit & ~person).sum())
        self.no_lines += int((visit & ~lines).sum())
        self.orphans += int((~visit).sum())
        self.no_rule += int((visit & person & ~rule & ~unknown).sum())
        keep = visit & person & lines & (rule | unknown)
        return batch if keep.all() else batch.filter(pa.array(keep))

    def counts(self) -> dict[str, int]:
        """Per code, as visit_counts gives them: BAT019 only where BAT020 and BAT009 are 0 (else its own query
        decides: the identity below needs each visit row to meet at most one person and its lines)."""
        counts = {"BAT004": self.no_rule, "BAT006": self.no_person, "BAT009": self.no_lines,
                  "BAT020": self.rows - self.visits, "BAT021": self.orphans}
        if counts["BAT020"] == 0 and counts["BAT009"] == 0:
            counts["BAT019"] = self.with_lines - (self.classified - self.orphans)
        return counts

    def clean(self) -> bool:
        return not any(self.counts().values())


def visit_counts(con, pack: CompiledPack, classified: bool = False) -> dict[str, int]:
    """BAT004, BAT006 and BAT020 — and BAT009, BAT019 and BAT021 when the lines are ``classified`` — counted in one
    pass over visits ⋈ persons (⟗ classified): rows per (insutype, med_type, dise_codg, level), whether the person
    is missing, whether the visit has no fee lines, whether classified lines have no visit. Registers
    ``pack_unmatched`` from the same rows. A problem's ids are still taken by the
    check's own query, only when its count is not 0 (validation at 1M visits 0.44 s → 0.30 s, ``yibao bench
    settle``).

    The duplicate checks are counts of this join, exact because classified has one row per mdtrt_id: a visit
    matching two persons' rows makes more visit rows than ``visits`` has (BAT020, a psn_no twice among persons with
    visits); otherwise each visit row with lines meets exactly one classified row, so more such rows than the
    classified rows met means an mdtrt_id twice among visits (BAT019; where some visit has no lines, BAT009,
    BAT019's own query decides)."""
    visits = con.sql("SELECT COUNT(*) FROM visits").fetchone()[0]
    if classified:
        rows = con.sql("SELECT p.insutype, v.med_type, COALESCE(v.dise_codg, ''), v.level, p.psn_no IS NULL, "
                       "c.mdtrt_id IS NULL, v.mdtrt_id IS NULL, COUNT(*) FROM visits v "
                       "LEFT JOIN persons p ON p.psn_no = v.psn_no FULL JOIN classified c ON c.mdtrt_id = v.mdtrt_id "
                       "GROUP BY ALL").fetchall()
        lines = con.sql("SELECT COUNT(*) FROM classified").fetchone()[0]
    else:
        rows = [(*r[:6], False, r[6]) for r in con.sql(
            "SELECT p.insutype, v.med_type, COALESCE(v.dise_codg, ''), v.level, p.psn_no IS NULL, FALSE, COUNT(*) "
            "FROM visits v LEFT JOIN persons p ON p.psn_no = v.psn_no GROUP BY ALL").fetchall()]
    orphans = sum(r[7] for r in rows if r[6])  # classified visits (their lines) with no row in visits
    rows = [r for r in rows if not r[6]]
    combos = sorted({r[:4] for r in rows if not r[4]}, key=str)
    unmatched = set(register_unmatched(con, pack, combos))
    counts = JoinCounts(visits, lines if classified else 0, rows=sum(r[7] for r in rows),
                        with_lines=sum(r[7] for r in rows if not r[5]), no_person=sum(r[7] for r in rows if r[4]),
                        no_lines=sum(r[7] for r in rows if r[5]), orphans=orphans,
                        no_rule=sum(r[7] for r in rows if not r[4] and r[:4] in unmatched)).counts()
    # the identities are the settle stream's (JoinCounts); without classified lines only the persons' checks
    return counts if classified else {code: counts[code] for code in ("BAT004", "BAT006", "BAT020")}


def check_applicability(con, pack: CompiledPack, counted: dict[str, int] | None = None,
                        joins: bool = True) -> list[Problem]:
    """Run every check on DuckDB relations persons/visits/fee_items/pack_*; return problems.

    ``joins=False``: every check but the :data:`JOIN_COUNTED` ones, which the settle stream counts as it reads the
    join (yibao batch settle: the joins made once, not once to check and once to settle); where anything else is
    found, those are run too, so the report is the whole validation's. ``counted``: the :data:`JOIN_COUNTED`
    checks' counts when the caller has them (:meth:`JoinCounts.counts`): only a check whose
    count is not 0 is asked for its ids."""
    problems = []
    offsite = "offsite_status" in con.sql("SELECT * FROM visits LIMIT 0").columns
    tables = {r[0] for r in con.sql("SHOW TABLES").fetchall()}  # tables, views and registered Arrow (classified)
    if counted is None:
        counted = (visit_counts(con, pack, classified="classified" in tables) if joins
                   else dict.fromkeys(JOIN_COUNTED, 0))  # counted later, by the settle stream
    elif counted.get("BAT004") != 0:
        register_unmatched(con, pack)  # BAT004's query joins the combinations no rule takes
    cheaper = classified_checks(con) if "classified" in tables else {}
    facts = "handling_facts" in tables
    for code, path, message, sql in applicability_checks(pack, offsite, facts):
        if counted.get(code) == 0:
            continue
        sql = cheaper.get(code) or sql
        count, sample = con.sql(
            f"SELECT COUNT(*), list(id ORDER BY id)[1:{SAMPLE}] FROM ({sql})").fetchone()
        if count:
            shown = "、".join(map(str, sample))
            problems.append(Problem(code, path, f"{message}: {count:,} 行, 如 {shown}"))
    if problems and not joins:
        return check_applicability(con, pack)  # the whole report, as when the joins are checked first
    return problems
