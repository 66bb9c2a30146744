"""Batch settlement and batch audit read the catalogue in force on each visit's date straight from the catalogue store
(``--catalogue-db``), with the online service's classification: the same visits, spanning a version change, give
the same amounts to the fen online and in batch; a code gone from the version in force is refused in both."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from test_institutions_catalogue import CLERK, PACKS, V1, V2, csv, ctx, line, write
from yibao.batch.run import open_claims, settle as batch_settle
from yibao.batch.validate import BatchError
from yibao.claims.schema import SCHEMAS
from yibao.cli import app
from yibao.institutions import batch_catalogue as bc
from yibao.institutions import catalogue_store as cs
from yibao.institutions.in_force import pack_in_force
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.settlement.request import FeeItemIn
from yibao.store.database import make_engine
from yibao.store.models import Person

DRUG_A, DRUG_B, TCM = "XA01AAA001A001010100001", "XB02BBB002B002020200002", "ZC03CCC003C003030300003"
COMPARED = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt", "hifp_pay",
            "fund_pay_sumamt", "psn_part_amt")
# (person, visit day, lines): before, on and after the 2024-B version's first day (2024-03-01)
VISITS = [
    ("P000000003", date(2024, 1, 15), [line(DRUG_A, "10.00", "30"), line(DRUG_B, "25.00", "2"), line(TCM, "40.00", "1")]),
    ("P000000005", date(2024, 2, 29), [line(DRUG_B, "19.00", "3"), line("SD-EX-D002", "50.00", "1"),
                                       {**line("SD-EX-S001", "8.00", "1")}]),
    ("P000000003", date(2024, 3, 1), [line(DRUG_A, "10.00", "30"), line(DRUG_B, "25.00", "2")]),
    ("P000000005", date(2024, 3, 20), [line(DRUG_B, "18.50", "4"), {**line(TCM, "40.00", "1"), "chrgitm_lv": "03"},
                                       line("SD-EX-D001", "0.80", "10")]),
]


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 6)
    yield eng
    eng.dispose()


def two_versions(engine, tmp_path: Path) -> None:
    write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2023, 12, 20)), csv(tmp_path, "v1.csv", V1),
                                              kind="drug", version="2024-A", effective_from=date(2024, 1, 1)))
    write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2024, 2, 20)), csv(tmp_path, "v2.csv", V2),
                                              kind="drug", version="2024-B", effective_from=date(2024, 3, 1),
                                              default_preselfpay="0.05"))


def online(engine, psn_no: str, day: date, lines: list[dict]) -> dict:
    his = Principal("his", "institution", sample.HOSPITAL)
    c = ctx(day)
    v = write(engine, lambda s: tx.register_visit(s, his, c, fixmedins_code=sample.HOSPITAL, psn_no=psn_no,
                                                  insutype="390", med_type="11", begntime=c.at))
    items = [FeeItemIn.model_validate({"feedetl_sn": f"{v['mdtrt_id']}-{i}", **x}) for i, x in enumerate(lines)]
    write(engine, lambda s: tx.upload_items(s, his, c, PACKS, mdtrt_id=v["mdtrt_id"], items=items))
    return write(engine, lambda s: tx.settle(s, his, c, PACKS, mdtrt_id=v["mdtrt_id"]))["setlinfo"]


def claims_dir(engine, root: Path, visits: list[tuple[str, str, date, list[dict]]]) -> Path:
    """The same visits as a claims directory (docs/claims-schema.md)."""
    root.mkdir()
    with Session(engine) as s:
        people = {p: s.get(Person, p) for p in {v[1] for v in visits}}
    persons = [{"psn_no": p.psn_no, "certno": sample.certno(k + 1), "psn_name": "测试", "gend": p.gend,
                "age": 63, "insutype": "390", "retiree": False, "categories": [], "admdvs": "370102",
                "hh_no": p.psn_no, "hh_income": Decimal(0)} for k, p in enumerate(people.values())]
    rows, items = [], []
    for mdtrt_id, psn_no, day, lines in visits:
        at = datetime.combine(day, datetime.min.time()).replace(hour=9)
        rows.append({"mdtrt_id": mdtrt_id, "psn_no": psn_no, "insutype": "390", "med_type": "11",
                     "fixmedins_code": sample.HOSPITAL, "level": "1", "begntime": at, "endtime": at, "setl_time": at,
                     "dise_codg": "", "acct_balance": Decimal(0),
                     "medfee_sumamt": sum(Decimal(x["det_item_fee_sumamt"]) for x in lines)})
        items += [{"feedetl_sn": f"{mdtrt_id}-{i}", "mdtrt_id": mdtrt_id, "med_list_codg": x["med_list_codg"],
                   "chrgitm_lv": x.get("chrgitm_lv"), "pric": Decimal(x["pric"]), "cnt": Decimal(x["cnt"]),
                   "det_item_fee_sumamt": Decimal(x["det_item_fee_sumamt"])} for i, x in enumerate(lines)]
    for name, data in (("persons", persons), ("visits", rows), ("fee_items", items)):
        pq.write_table(pa.Table.from_pylist(data, schema=SCHEMAS[name]), root / f"{name}.parquet")
    pq.write_table(pa.Table.from_pylist([{"fixmedins_code": sample.HOSPITAL, "fixmedins_name": "示例社区卫生服务中心",
                                          "level": "1", "admdvs": "370102"}], schema=SCHEMAS["institutions"]),
                   root / "institutions.parquet")
    return root


def test_batch_classifies_with_the_version_in_force_as_the_service_does(engine, store_url, tmp_path):
    two_versions(engine, tmp_path)
    settled = [(online(engine, p, d, lines), p, d, lines) for p, d, lines in VISITS]
    claims = claims_dir(engine, tmp_path / "claims", [(s["mdtrt_id"], p, d, lines) for s, p, d, lines in settled])
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["batch", "settle", "--claims", str(claims), "--policy", "shandong-2024",
                                 "--out", str(out), "--catalogue-db", store_url])
    assert r.exit_code == 0, r.output
    batch = {row["mdtrt_id"]: row for row in pq.read_table(out / "setlinfo.parquet").to_pylist()}
    for s, *_ in settled:
        assert {f: batch[s["mdtrt_id"]][f] for f in COMPARED} == {f: Decimal(s[f]) for f in COMPARED}, s["mdtrt_id"]
    # the version change shows: 1/15 XA01 乙类 10% of 300.00 = 30.00; 3/1 甲类 under 2024-B → only XB02's 20% share
    first, third = (batch[settled[k][0]["mdtrt_id"]] for k in (0, 2))
    assert (first["preselfpay_amt"], first["overlmt_selfpay"]) == (Decimal("38.00"), Decimal("10.00"))
    assert (third["preselfpay_amt"], third["overlmt_selfpay"]) == (Decimal("7.20"), Decimal("14.00"))
    # each visit is classified within the segment whose versions are the ones the service used on its day
    run = open_claims(claims)
    with Session(engine) as s:
        segs = bc.segments(s, date(2024, 1, 15), date(2024, 3, 20))
        assert [(g.first, g.until) for g in segs] == [(None, date(2024, 3, 1)), (date(2024, 3, 1), None)]
        for _, _, day, _ in settled:
            seg = next(g for g in segs if (g.first or day) <= day and (g.until is None or day < g.until))
            assert seg.versions == pack_in_force(s, PACKS.pick("370102", day), day).catalogue_versions
        union = bc.classify_in_force(run, PACKS.pick("370102", date(2024, 1, 1)), s)
    assert batch_settle(run, union) == "settled_main"
    assert run.con.sql("SELECT COUNT(*), SUM(unclassified) FROM classified").fetchone() == (4, 0)


def test_a_code_gone_from_the_version_in_force_is_refused_in_batch_too(engine, store_url, tmp_path):
    two_versions(engine, tmp_path)
    claims = claims_dir(engine, tmp_path / "claims", [("M1", "P000000003", date(2024, 2, 5), [line(TCM, "40.00", "1")]),
                                                      ("M2", "P000000003", date(2024, 3, 6), [line(TCM, "40.00", "1")])])
    run = open_claims(claims)
    with Session(engine) as s, pytest.raises(BatchError) as refused:
        bc.classify_in_force(run, PACKS.pick("370102", date(2024, 1, 1)), s)
    (p,) = refused.value.problems
    assert p.code == "BAT007" and "2024-03-01–" in p.message and "M2-0" in p.message and "M1-0" not in p.message
    # the run's tables are as they were: the fee_items view is whole again
    assert run.con.sql("SELECT COUNT(*) FROM fee_items").fetchone()[0] == 2
    r = CliRunner().invoke(app, ["batch", "settle", "--claims", str(claims), "--policy", "shandong-2024",
                                 "--out", str(tmp_path / "out"), "--catalogue-db", store_url])
    assert r.exit_code != 0 and "BAT007" in r.output and not (tmp_path / "out").exists()


def test_batch_audit_flags_limits_and_prices_in_force(engine, store_url, tmp_path):
    """XB02 is 限女性患者 (gend=2) in both versions; a man's line is flagged, a woman's is not. A service item charged
    above the level-1 price in force on the visit's day is flagged with the excess online monitoring computes."""
    from yibao.institutions import tariffs

    two_versions(engine, tmp_path)
    prices = "项目编码,项目名称,计价单位,三级价格,二级价格,一级价格\n001102000010000,普通门诊诊察费,次,20.00,15.00,{}\n"
    for version, day, price in (("P1", date(2024, 1, 1), "10.00"), ("P2", date(2024, 4, 1), "14.00")):
        write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(day), csv(tmp_path, f"{version}.csv", prices.format(price)),
                                                    kind="price", version=version, effective_from=day))
    exam = {**line("001102000010000", "12.00", "2"), "chrgitm_lv": "01"}
    vbp = "采购批次,医保药品代码,药品通用名,医疗机构编码,约定采购量,中选价格,集采前参考价\n" \
          f"第九批,{DRUG_A},示例降压片,{sample.HOSPITAL},100,9.50,20.00\n"
    write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 1)), csv(tmp_path, "vbp.csv", vbp),
                                                kind="vbp", version="第九批", effective_from=date(2024, 3, 1)))
    claims = claims_dir(engine, tmp_path / "claims", [
        ("M1", "P000000002", date(2024, 2, 5), [line(DRUG_B, "25.00", "2")]),   # 男: hit, 50.00
        ("M2", "P000000003", date(2024, 3, 6), [line(DRUG_B, "25.00", "2"), exam]),   # 女: fine; 12.00 > 10.00: 4.00
        ("M3", "P000000004", date(2024, 4, 7), [line(DRUG_A, "10.00", "1"), line(DRUG_B, "18.00", "1"), exam])])  # 男: hit; 12.00 ≤ 14.00
    r = CliRunner().invoke(app, ["audit", "--claims", str(claims), "--rules", "SV-GEND-01", "--no-excel",
                                 "--out", str(tmp_path / "audit"), "--catalogue-db", store_url])
    assert r.exit_code == 0, r.output
    hits = pq.read_table(tmp_path / "audit" / "hits.parquet").to_pylist()
    cat = sorted((h["mdtrt_id"], h["subject"], h["amount_yuan"]) for h in hits if h["rule_id"] == "SV-CAT-LIMIT")
    assert cat == [("M1", "M1-0", Decimal("50.00")), ("M3", "M3-1", Decimal("18.00"))]
    assert all("gend=2" in h["message"] for h in hits if h["rule_id"] == "SV-CAT-LIMIT")
    price = [(h["mdtrt_id"], h["subject"], h["amount_yuan"]) for h in hits if h["rule_id"] == "SV-CAT-PRICE"]
    assert price == [("M2", "M2-1", Decimal("4.00"))]  # (12.00 − 10.00) × 2
    by_rule = {row["rule_id"]: row for row in pq.read_table(tmp_path / "audit" / "by_rule.parquet").to_pylist()}
    assert (by_rule["SV-CAT-LIMIT"]["hits"], by_rule["SV-CAT-LIMIT"]["amount_yuan"]) == (2, Decimal("68.00"))
    assert (by_rule["SV-CAT-PRICE"]["hits"], by_rule["SV-CAT-PRICE"]["family"]) == (1, "超标准收费")
    # DRUG_A at 10.00 above the 中选价 9.50 from 3/1: only M3 (4/7) is in the product's period → 0.50
    vbp_hits = [(h["mdtrt_id"], h["subject"], h["amount_yuan"]) for h in hits if h["rule_id"] == "SV-CAT-VBP"]
    assert vbp_hits == [("M3", "M3-0", Decimal("0.50"))]


def test_an_unreadable_catalogue_store_is_a_coded_error(tmp_path):
    with pytest.raises(cs.CatalogueError) as bad:
        bc.open_catalogue(f"sqlite:///{tmp_path / 'none' / 'x.db'}")
    assert bad.value.problems[0].code == "INS330"


def test_fee_items_held_as_a_table_are_put_back_as_they_were(engine, tmp_path):
    two_versions(engine, tmp_path)
    claims = claims_dir(engine, tmp_path / "claims", [("M1", "P000000003", date(2024, 2, 5), [line(DRUG_A, "10.00", "3")])])
    run = open_claims(claims)
    run.con.sql("CREATE TABLE fee_items_t AS SELECT * FROM fee_items")
    run.con.sql("DROP VIEW fee_items")
    run.con.sql("ALTER TABLE fee_items_t RENAME TO fee_items")
    with Session(engine) as s:
        bc.classify_in_force(run, PACKS.pick("370102", date(2024, 1, 1)), s)
    assert run.con.sql("SELECT pre FROM classified").fetchone() == (300,)  # 乙类 10% of 30.00, in fen
    assert run.con.sql("SELECT table_name FROM duckdb_tables() WHERE table_name = 'fee_items'").fetchone() == ("fee_items",)


def test_a_visit_without_a_start_time_is_refused(engine, tmp_path):
    claims = claims_dir(engine, tmp_path / "claims", [("M1", "P000000003", date(2024, 2, 5), [line(DRUG_A, "10.00", "3")])])
    run = open_claims(claims)
    run.con.sql("CREATE TABLE v2 AS SELECT * REPLACE (CAST(NULL AS TIMESTAMP) AS begntime) FROM visits")
    run.con.sql("DROP VIEW visits")
    run.con.sql("ALTER TABLE v2 RENAME TO visits")
    with Session(engine) as s, pytest.raises(BatchError) as refused:
        bc.classify_in_force(run, PACKS.pick("370102", date(2024, 1, 1)), s)
    assert [(p.code, p.path) for p in refused.value.problems] == [("INS331", "visits.begntime")]
