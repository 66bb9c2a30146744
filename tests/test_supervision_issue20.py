"""Issue 20's rules, case by case: each with an exact hit and a near miss, batch (DuckDB) and online
(SQLite) giving the same hits; the learned baselines; the evaluation's arithmetic."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from yibao.supervision import audit as A
from yibao.supervision.evaluate import by_pattern, evaluate, overall
from yibao.synth.fraud import schema_with_optional, write_supervised
from yibao.supervision.online import Baselines, precheck
from yibao.supervision.peers import peer_scores
from yibao.supervision.ruleset import load_ruleset
from yibao.supervision.views import BASELINE_SCHEMA

NEW = ["SV-DATE-01", "SV-DUP-04", "SV-ADM-04", "SV-ID-04", "SV-PRICE-02", "SV-QTY-03", "SV-TEST-01", "SV-PRICE-03"]
INSTS = [{"fixmedins_code": "H1", "fixmedins_name": "济南甲医院", "level": "2", "admdvs": "370102", "fixmedins_type": "1"},
         {"fixmedins_code": "H2", "fixmedins_name": "济南乙医院", "level": "2", "admdvs": "370103", "fixmedins_type": "1"},
         {"fixmedins_code": "H3", "fixmedins_name": "青岛丙医院", "level": "2", "admdvs": "370202", "fixmedins_type": "1"}]
D = datetime(2024, 5, 1, 9, 0)


class Region:
    def __init__(self):
        self.persons, self.visits, self.items = [], [], []

    def person(self, psn):
        self.persons.append({"psn_no": psn, "certno": "x" + psn, "psn_name": "张三", "gend": "1", "age": 40,
                             "insutype": "390", "retiree": False, "categories": [], "admdvs": "370102", "hh_no": "H" + psn,
                             "hh_income": Decimal("50000.00")})
        return psn

    def visit(self, vid, psn, inst, begn, end, med_type="11", dise="J06.900", medfee="100.00", atddr=None, referral=None):
        self.visits.append({"mdtrt_id": vid, "psn_no": psn, "insutype": "390", "med_type": med_type,
                            "fixmedins_code": inst, "level": "2", "begntime": begn, "endtime": end, "setl_time": end,
                            "dise_codg": dise, "oprn_oprt_code": None, "referral_from_level": referral,
                            "acct_balance": Decimal("0.00"), "medfee_sumamt": Decimal(medfee), "atddr_no": atddr or inst + "-D1"})
        return vid

    def line(self, sn, vid, code, pric, cnt="1", when=None, cat="04"):
        v = next(x for x in self.visits if x["mdtrt_id"] == vid)
        amt = (Decimal(pric) * Decimal(cnt)).quantize(Decimal("0.01"))
        self.items.append({"feedetl_sn": sn, "mdtrt_id": vid, "med_list_codg": code, "chrgitm_lv": "01",
                           "pric": Decimal(pric), "cnt": Decimal(cnt), "det_item_fee_sumamt": amt,
                           "preselfpay_ratio": None, "fee_ocur_time": when or v["begntime"], "med_chrgitm_type": cat})

    def tables(self):
        return {"persons": pa.Table.from_pylist(self.persons, schema=schema_with_optional("persons")),
                "institutions": pa.Table.from_pylist(INSTS, schema=schema_with_optional("institutions")),
                "visits": pa.Table.from_pylist(self.visits, schema=schema_with_optional("visits")),
                "fee_items": pa.Table.from_pylist(self.items, schema=schema_with_optional("fee_items"))}


def baselines(*rows) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(BASELINE_SCHEMA.names, r)) for r in rows], schema=BASELINE_SCHEMA)


# price: code SV-X-PRICE at level 2 outpatient, median 10.00 yuan, MAD 0, 30 lines; quantity: SV-X-QTY
# median 1, MAD 0 (no price row); SV-X-PACK median 1 pack at 3.00 yuan; tests: diagnosis J06 at level 2
# outpatient, median 2, MAD 1, 30 visits
LEARNED = baselines(("price", "SV-X-PRICE", "2", "11", 30, 1000, 0), ("qty", "SV-X-QTY", "2", "11", 30, 10000, 0),
                    ("qty", "SV-X-PACK", "2", "11", 30, 10000, 0), ("price", "SV-X-PACK", "2", "11", 30, 300, 0),
                    ("tests", "J06", "2", "11", 30, 2, 1))


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    r = Region()
    # SV-DATE-01: a line 5 days after the visit (hit), one the next day (within the 1-day tolerance)
    r.visit("V1", r.person("P1"), "H1", D, D + timedelta(hours=1))
    r.line("F1a", "V1", "SV-X-A", "80.00", when=D + timedelta(days=5))
    r.line("F1b", "V1", "SV-X-B", "20.00", when=D + timedelta(days=1))
    # SV-DUP-04: a test re-billed 150 minutes later (hit), another 240 minutes later (over the 180-minute
    # window) and a drug 60 minutes later (drugs are not in the categories)
    r.visit("V2", r.person("P2"), "H1", D, D + timedelta(days=4), med_type="21", dise="J18.900")
    t = D + timedelta(days=1)
    for sn, code, when, cat in [("F2a", "SV-X-CT", t, "03"), ("F2b", "SV-X-CT", t + timedelta(minutes=150), "03"),
                                ("F2c", "SV-X-LAB", t, "04"), ("F2d", "SV-X-LAB", t + timedelta(minutes=240), "04"),
                                ("F2e", "SV-X-DRUG", t, "09"), ("F2f", "SV-X-DRUG", t + timedelta(minutes=60), "09")]:
        r.line(sn, "V2", code, "45.00", when=when, cat=cat)
    # SV-ADM-04: readmitted 2 days later, same diagnosis, other hospital of the city (hit); the same at a
    # hospital in another city; a same-day transfer
    # hospital in another city; a same-day transfer; a referral recorded from the first stay's level (2)
    for psn, second, gap, ref in [("P3", "H2", 2, None), ("P4", "H3", 2, None), ("P5", "H2", 0, None),
                                  ("P5r", "H2", 2, "2")]:
        r.person(psn)
        r.visit(f"V3{psn}a", psn, "H1", D, D + timedelta(days=4), med_type="21", dise="J18.900")
        b = D + timedelta(days=4 + gap, hours=2)
        r.visit(f"V3{psn}b", psn, second, b, b + timedelta(days=3), med_type="21", dise="J18.901", referral=ref)
    # SV-ID-04: another district 15 minutes later (hit: 30 needed), Qingdao 90 minutes later (hit: 150
    # needed), Qingdao 3 hours later (possible)
    for psn, second, minutes in [("P6", "H2", 15), ("P7", "H3", 90), ("P8", "H3", 180)]:
        r.person(psn)
        r.visit(f"V4{psn}a", psn, "H1", D, D + timedelta(minutes=30))
        b = D + timedelta(minutes=30 + minutes)
        r.visit(f"V4{psn}b", psn, second, b, b + timedelta(minutes=30))
    # SV-PRICE-02 / SV-QTY-03: 6× the median price (hit) and 4× (under the 5× factor); 10× the median
    # quantity (hit) and 9×
    r.visit("V5", r.person("P9"), "H1", D, D + timedelta(hours=1))
    r.line("F5a", "V5", "SV-X-PRICE", "60.00")
    r.visit("V6", r.person("P10"), "H1", D, D + timedelta(hours=1))
    r.line("F6a", "V6", "SV-X-PRICE", "40.00")
    r.visit("V7", r.person("P11"), "H1", D, D + timedelta(hours=1))
    r.line("F7a", "V7", "SV-X-QTY", "3.00", "10", cat="09")
    r.visit("V8", r.person("P12"), "H1", D, D + timedelta(hours=1))
    r.line("F8a", "V8", "SV-X-QTY", "3.00", "9", cat="09")
    # 10 packs at 2.00 (≥ 0.5 × the usual 3.00: hit) and 10 units at 1.00 (a smaller unit: no hit)
    r.visit("V12", r.person("P16"), "H1", D, D + timedelta(hours=1))
    r.line("F12a", "V12", "SV-X-PACK", "2.00", "10", cat="09")
    r.visit("V13", r.person("P17"), "H1", D, D + timedelta(hours=1))
    r.line("F13a", "V13", "SV-X-PACK", "1.00", "10", cat="09")
    # SV-PRICE-03: SV-D-CAPX (cap 30.00) at 3× the cap (hit) and at 1.5× (超限价自费, under the 2× factor)
    r.visit("V11", r.person("P15"), "H1", D, D + timedelta(hours=1))
    r.line("F11a", "V11", "SV-D-CAPX", "90.00", "2", cat="09")
    r.line("F11b", "V11", "SV-S-OTHER", "45.00", "1", cat="05")
    r.visit("V14", r.person("P18"), "H1", D, D + timedelta(hours=1))
    r.line("F14a", "V14", "SV-D-CAPX", "45.00", "1", cat="09")
    # SV-TEST-01: 12 distinct tests (hit) and 9 (under min_tests 10) against a J06 median of 2
    r.visit("V9", r.person("P13"), "H1", D, D + timedelta(hours=1))
    for k in range(12):
        r.line(f"F9{k:02d}", "V9", f"SV-X-T{k:02d}", "25.00")
    r.visit("V10", r.person("P14"), "H1", D, D + timedelta(hours=1))
    for k in range(9):
        r.line(f"F10{k:02d}", "V10", f"SV-X-T{k:02d}", "25.00")
    tables = r.tables()
    path = tmp_path_factory.mktemp("i20") / "region"
    write_supervised(tables, path)
    run = A.open_claims(path)
    run.baselines = LEARNED  # a table learned elsewhere: the tiny region has too few lines to learn one
    A.run_rules(run, load_ruleset(only=NEW))
    return tables, run


def batch_hits(run):
    return {(h["rule_id"], h["mdtrt_id"]): (int(h["amount_yuan"] * 100), h["feedetl_sns"] or [], h["detail"])
            for h in A.hits_table(run).to_pylist()}


def test_each_rule_hits_exactly_its_case(region):
    _, run = region
    got = {k: v[:2] for k, v in batch_hits(run).items()}
    assert got == {
        ("SV-DATE-01", "V1"): (8000, ["F1a"]),
        ("SV-DUP-04", "V2"): (4500, ["F2b"]),
        ("SV-ADM-04", "V3P3b"): (10000, []),
        ("SV-ID-04", "V4P6b"): (10000, []),
        ("SV-ID-04", "V4P7b"): (10000, []),
        ("SV-PRICE-02", "V5"): (5000, ["F5a"]),  # 60.00 − the median 10.00
        ("SV-QTY-03", "V7"): (2700, ["F7a"]),  # 30.00 × (10 − 1) / 10
        ("SV-QTY-03", "V12"): (1800, ["F12a"]),  # 20.00 × (10 − 1) / 10
        ("SV-PRICE-03", "V11"): (12000, ["F11a"]),  # 180.00 − 2 × 30.00
        ("SV-TEST-01", "V9"): (25000, []),  # 12 tests 300.00 × (12 − 2) / 12
    }


def test_hits_explain_themselves(region):
    _, run = region
    hits = batch_hits(run)
    assert hits[("SV-PRICE-02", "V5")][2] == ("SV-X-PRICE 单价(分) 6000, 同级(2)同类别(11)基线中位数 1000, MAD 0(30 行), "
                                              "为中位数的 6.0 倍; 阈值 ≥ 5 倍且偏离 ≥ 10 × MAD")
    assert hits[("SV-ID-04", "V4P7b")][2] == ("同日已在 370102 的 H1 就诊, 结束后 90 分钟即在 370202 就诊, "
                                             "两地路程约需 150 分钟")
    assert "相隔 150 分钟" in hits[("SV-DUP-04", "V2")][2]
    assert hits[("SV-TEST-01", "V9")][2] == "不同检查化验项目 12 项, 同诊断(J06)同级基线中位数 2, MAD 1(30 次就诊)"
    assert hits[("SV-PRICE-03", "V11")][2] == "SV-D-CAPX 示例限价注射剂(支) 单价 9000 分, 支付限价 3000 分, 为限价的 3.0 倍(阈值 2 倍)"


def test_online_gives_the_same_hits(region):
    tables, run = region
    batch = {k: v for k, v in batch_hits(run).items() if k[0] != "SV-ID-04"}  # SV-ID-04 is after-only
    persons = {p["psn_no"]: p for p in tables["persons"].to_pylist()}
    insts = {i["fixmedins_code"]: i for i in tables["institutions"].to_pylist()}
    items: dict[str, list] = {}
    for it in tables["fee_items"].to_pylist():
        items.setdefault(it["mdtrt_id"], []).append(it)
    visits = tables["visits"].to_pylist()
    rs = load_ruleset(only=NEW)
    learned = Baselines(LEARNED)
    seen = {}
    for v in visits:
        hist = [h for h in visits if h["psn_no"] == v["psn_no"] and h["begntime"] < v["begntime"]]
        res = precheck(persons[v["psn_no"]], insts[v["fixmedins_code"]], v, items.get(v["mdtrt_id"], []),
                       [(h, items.get(h["mdtrt_id"], [])) for h in hist], stage="during", params=rs, baselines=learned,
                       history_institutions=[insts[h["fixmedins_code"]] for h in hist])
        for h in res.warnings + res.blocking:
            seen[(h.rule_id, h.mdtrt_id)] = (h.amount_fen, h.feedetl_sns, h.detail)
    assert seen == batch
    # without a learned table the statistical rules find nothing online (they never learn from one visit)
    v5 = next(v for v in visits if v["mdtrt_id"] == "V5")
    assert not precheck(persons["P9"], insts["H1"], v5, items["V5"], params=rs).warnings


def test_learned_baselines_are_median_and_mad(tmp_path):
    r = Region()
    prices = ["9.00", "10.00", "10.00", "10.00", "11.00", "12.00", "30.00"]
    for k, p in enumerate(prices):
        r.visit(f"V{k}", r.person(f"P{k}"), "H1", D + timedelta(days=k), D + timedelta(days=k, hours=1))
        r.line(f"F{k}", f"V{k}", "SV-X-PRICE", p, str(k + 1))
    write_supervised(r.tables(), tmp_path / "r")
    run = A.open_claims(tmp_path / "r")
    learned = {(x["kind"], x["code"]): x for x in A.learn_baselines(run.con, load_ruleset()).to_pylist()}
    fen = [int(Decimal(p) * 100) for p in prices]
    med = statistics.median_low(fen)
    assert learned[("price", "SV-X-PRICE")] == {"kind": "price", "code": "SV-X-PRICE", "level": "2", "med_type": "11",
                                                "n": 7, "med": med, "mad": statistics.median_low([abs(x - med) for x in fen])}
    assert (learned[("qty", "SV-X-PRICE")]["med"], learned[("qty", "SV-X-PRICE")]["mad"]) == (40000, 20000)
    assert (learned[("tests", "J06")]["med"], learned[("tests", "*")]["n"]) == (1, 7)


def test_evaluation_counts_recall_precision_and_clean_visits():
    hits = pa.table({"rule_id": ["SV-DATE-01", "SV-DATE-01", "SV-DUP-04", "SV-ID-04"],
                     "subject": ["V1", "V9", "V2", "V7"], "mdtrt_id": ["V1", "V9", "V2", "V7"]})
    labels = pa.table({"rule_id": ["SV-DATE-01", "SV-DATE-01", "SV-DUP-04"], "subject": ["V1", "V3", "V2"]})
    q = {x.rule_id: x for x in evaluate(hits, labels, ["SV-DATE-01", "SV-DUP-04", "SV-ID-04"])}
    assert (q["SV-DATE-01"].recall, q["SV-DATE-01"].precision) == (0.5, 0.5)
    assert (q["SV-DUP-04"].recall, q["SV-ID-04"].recall, q["SV-ID-04"].precision) == (1.0, None, 0.0)
    o = overall(list(q.values()), hits, labels, [f"V{k}" for k in range(1, 11)])
    # 3 injected, 2 found; 3 hits of labelled rules; 7 unlabelled visits, V7 and V9 flagged
    assert (o.labelled, o.true_hits, o.hits, o.clean_visits, o.clean_flagged) == (3, 2, 3, 7, 2)
    assert o.clean_rate == pytest.approx(2 / 7)
    # a correct provider hit names a visit (the 61st patient of a labelled physician's day): not a clean one
    hits2 = pa.concat_tables([hits, pa.table({"rule_id": ["SV-DOC-01"], "subject": ["H1-D9"], "mdtrt_id": ["V8"]})])
    labels2 = pa.concat_tables([labels, pa.table({"rule_id": ["SV-DOC-01"], "subject": ["H1-D9"]})])
    o2 = overall(evaluate(hits2, labels2, ["SV-DATE-01", "SV-DUP-04", "SV-ID-04", "SV-DOC-01"]), hits2, labels2,
                 [f"V{k}" for k in range(1, 11)])
    assert (o2.clean_visits, o2.clean_flagged) == (7, 2)


def test_recall_per_pattern():
    hits = pa.table({"rule_id": ["SV-QTY-03", "SV-QTY-03", "SV-PRICE-03"], "subject": ["V1", "V2", "V9"]})
    labels = pa.table({"rule_id": ["SV-QTY-03", "SV-QTY-03", "SV-QTY-03", "SV-PRICE-03"],
                       "subject": ["V1", "V2", "V3", "V4"], "pattern": ["qty-10x", "qty-upper", "qty-upper", "cap-4x"]})
    rule_of = {"qty-10x": "SV-QTY-03", "qty-upper": "SV-QTY-03", "cap-4x": "SV-PRICE-03", "unused": "SV-ID-04"}
    got = [(x.pattern, x.labelled, x.true_hits, x.recall) for x in by_pattern(hits, labels, rule_of)]
    assert got == [("qty-10x", 1, 1, 1.0), ("qty-upper", 2, 1, 0.5), ("cap-4x", 1, 0, 0.0)]
    # an older label file without the column: each rule's first pattern
    old = labels.select(["rule_id", "subject"])
    assert [(x.pattern, x.labelled) for x in by_pattern(hits, old, rule_of)] == [("qty-10x", 3), ("cap-4x", 1)]


def test_pack_caps_join_the_listed_ones():
    from yibao.policy.loader import resolve_pack
    from yibao.supervision.ruleset import with_pack_caps

    rs = with_pack_caps(load_ruleset(), resolve_pack("shandong-2024"))
    items = rs.by_id()["SV-PRICE-03"].params.items
    assert [(i.code, i.cap) for i in items] == [("SV-D-CAPX", Decimal("30.00")), ("SD-EX-D001", Decimal("0.50")),
                                                ("SD-EX-D002", Decimal("45.00")), ("SD-EX-M001", Decimal("3000.00"))]
    assert rs.by_id()["SV-PRICE-01"].params == load_ruleset().by_id()["SV-PRICE-01"].params


def test_physician_peer_outlier(tmp_path):
    """Per-visit averages 100, 110, 120 and 800 yuan: peer median 115.00, MAD median(15, 5, 5, 685) = 10.00;
    800 ≥ 2 × 115 and 800 − 115 ≥ 6 × 10: flagged, 违规金额 (800.00 − 115.00) × 2 = 1,370.00 yuan."""
    r = Region()
    for k, (doc, fee) in enumerate([("A", "100.00"), ("B", "110.00"), ("C", "120.00"), ("D", "800.00")]):
        for j in range(2):
            r.visit(f"V{k}{j}", r.person(f"P{k}{j}"), "H1", D + timedelta(days=j), D + timedelta(days=j, hours=1),
                    medfee=fee, atddr=f"H1-{doc}")
    write_supervised(r.tables(), tmp_path / "r")
    (tmp_path / "p.yaml").write_text("extends: default\nrules:\n  SV-DOC-02:\n    params: {min_visits: 2}\n",
                                     encoding="utf-8")
    run = A.open_claims(tmp_path / "r")
    A.run_rules(run, load_ruleset(str(tmp_path / "p.yaml"), only=["SV-DOC-02"]))
    assert [(h["subject"], h["amount_yuan"], h["detail"]) for h in A.hits_table(run).to_pylist()] == [
        ("H1-D", Decimal("1370.00"), "医师 H1-D 医疗类别 11 2 人次, 次均 80000 分, 同级同类别医师中位数 11500 分, "
                                      "MAD 1000 分, 偏离 69 个 MAD")]
    # the peer-group scores: (800.00 − 115.00) / (1.4826 × 10.00) = 46.20; (100.00 − 115.00) / 14.826 = −1.01;
    # one institution makes no peer group; no test lines: every value, median and MAD 0, score 0
    scores = {(r["subject"], r["metric"]): r for r in peer_scores(run.con, min_visits=2).to_pylist()}
    d = scores[("H1-D", "cost_per_visit")]
    assert (d["value"], d["peers"], d["peer_median"], d["peer_mad"], d["score"], d["outlier"]) == (800.0, 4, 115.0, 10.0,
                                                                                                46.2, True)
    assert (scores[("H1-A", "cost_per_visit")]["score"], scores[("H1-A", "cost_per_visit")]["outlier"]) == (-1.01, False)
    assert scores[("H1-D", "tests_per_visit")]["score"] == 0.0 and scores[("H1-D", "flagged_share")]["score"] == 0.0
    assert {r[0] for r in scores} == {"H1-A", "H1-B", "H1-C", "H1-D"}


def test_clean_region_keeps_people_in_one_place_and_prescriptions_bounded():
    """The generator's clean data, checked where it used to look like fraud: a person's same-day outpatient
    visits at two institutions leave the travel gap (20 / 60 / 240 minutes: same district / city / other
    city); a drug line holds at most 6 packs (12 for a 门诊慢特病 长处方); an item repeated in a stay is
    billed on another day whenever the stay has 24 hours for each repeat."""
    import duckdb

    from yibao.policy.loader import resolve_pack
    from yibao.synth.fraud import add_supervision_columns
    from yibao.synth import generate

    tables = add_supervision_columns(generate(resolve_pack("shandong-2024"), persons=1500, seed=11), 11)
    con = duckdb.connect()
    for name in ("visits", "fee_items", "institutions"):
        con.register(name, tables[name])
    too_close = con.sql("""
        SELECT COUNT(*) FROM visits a JOIN visits b ON a.psn_no = b.psn_no AND a.mdtrt_id <> b.mdtrt_id
        JOIN institutions ia ON ia.fixmedins_code = a.fixmedins_code JOIN institutions ib ON ib.fixmedins_code = b.fixmedins_code
        WHERE a.med_type IN ('11', '14') AND b.med_type IN ('11', '14') AND a.fixmedins_code <> b.fixmedins_code
          AND CAST(a.begntime AS DATE) = CAST(b.begntime AS DATE) AND a.begntime <= b.begntime
          AND b.begntime < a.endtime + INTERVAL (CASE WHEN ia.admdvs = ib.admdvs THEN 20
              WHEN LEFT(ia.admdvs, 4) = LEFT(ib.admdvs, 4) THEN 60 ELSE 240 END) MINUTE""").fetchone()[0]
    assert too_close == 0
    same_day = con.sql("""SELECT COUNT(*) FROM (SELECT psn_no, CAST(begntime AS DATE) FROM visits
        WHERE med_type IN ('11', '14') GROUP BY ALL HAVING COUNT(DISTINCT fixmedins_code) > 1)""").fetchone()[0]
    assert same_day > 0  # the rule had cases to keep apart
    most = dict(con.sql("""SELECT v.med_type, MAX(f.cnt) FROM fee_items f JOIN visits v USING (mdtrt_id)
        WHERE f.med_list_codg LIKE 'YB-D%' GROUP BY 1""").fetchall())
    assert (most["11"], most["14"]) == (Decimal(6), Decimal(12))
    assert most["21"] <= 30
    close_repeats = con.sql("""
        SELECT COUNT(*) FROM fee_items a JOIN fee_items b ON a.mdtrt_id = b.mdtrt_id AND a.med_list_codg = b.med_list_codg
          AND a.feedetl_sn < b.feedetl_sn JOIN visits v ON v.mdtrt_id = a.mdtrt_id
        JOIN (SELECT mdtrt_id, med_list_codg, COUNT(*) AS k FROM fee_items GROUP BY ALL) n
          ON n.mdtrt_id = a.mdtrt_id AND n.med_list_codg = a.med_list_codg
        WHERE v.med_type IN ('21', '52') AND n.k <= DATE_DIFF('second', v.begntime, v.endtime) // 86400
          AND CAST(a.fee_ocur_time AS DATE) = CAST(b.fee_ocur_time AS DATE)""").fetchone()[0]
    assert close_repeats == 0


def test_travel_tolerance_forgives_recorded_times(region, tmp_path):
    """Qingdao 90 minutes after Jinan (needs 150) and another district 15 minutes later (needs 30): both
    flagged without tolerance and with 10 minutes (90 < 140, 15 < 20); with 60 minutes for how the region
    records times (booking / payment times) neither (90 ≥ 90, 15 ≥ −30)."""
    _, run = region
    found = {}
    for tol in (0, 10, 60):
        (tmp_path / "t.yaml").write_text(f"extends: default\nrules:\n  SV-ID-04:\n    params: {{tolerance_minutes: {tol}}}\n",
                                         encoding="utf-8")
        A.run_rules(run, load_ruleset(str(tmp_path / "t.yaml"), only=["SV-ID-04"]))
        found[tol] = {m for r, m in batch_hits(run) if r == "SV-ID-04"}
    A.run_rules(run, load_ruleset(only=NEW))  # the module's region as the other tests saw it
    assert found == {0: {"V4P6b", "V4P7b"}, 10: {"V4P6b", "V4P7b"}, 60: set()}
