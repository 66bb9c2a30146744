"""The catalogue as versioned data (import all-or-nothing with a per-row report, the version in force on the visit
date classifying the settlement), 限定支付范围 checks, 集采 progress and 结余留用, 双通道, and prices with 价格监测."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.errors import YibaoError
from yibao.fund.outflows import outflows
from yibao.institutions import applications as ap
from yibao.institutions import catalogue_store as cs
from yibao.institutions import prices, procurement, store
from yibao.institutions.models import InsCatalogueEntry, InsCatalogueVersion, InsPriceEvent
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.store.database import make_engine
from yibao.store.models import AuditLog

PACKS = PackSet.load(["shandong-2024"])
ADMIN, CLERK = Principal("root", "admin"), Principal("clerk1", "clerk")
REVIEWER, RECHECKER = Principal("rev1", "reviewer"), Principal("rck1", "rechecker")
HEADER = "药品代码,注册名称,注册剂型,注册规格,甲乙类,先行自付比例,支付标准,限定支付范围,限定条件代码,药品企业\n"
V1 = HEADER + (
    "XA01AAA001A001010100001,示例降压片,片剂,5mg,乙类,,,,,示例药业\n"
    "XB02BBB002B002020200002,示例注射液,注射剂,2ml,乙类,20%,20.00,限女性患者,gend=2,示例药业\n"
    "ZC03CCC003C003030300003,示例中成药,颗粒剂,10g,丙类,,,,,示例药业\n")
V2 = HEADER + (
    "XA01AAA001A001010100001,示例降压片,片剂,5mg,甲类,,,,,示例药业\n"
    "XB02BBB002B002020200002,示例注射液,注射剂,2ml,乙类,20%,18.00,限女性患者,gend=2,示例药业\n")


def ctx(day: date) -> tx.Context:
    return tx.Context("req", "x", datetime.combine(day, datetime.min.time()).replace(hour=9))


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 4)
    yield eng
    eng.dispose()


def write(engine, fn):
    with Session(engine) as s, s.begin():
        return fn(s)


def csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def settle(engine, day: date, lines: list[dict], psn_no: str = "P000000002", code: str = sample.HOSPITAL) -> dict:
    his = Principal("his", "institution", code)
    c = ctx(day)
    v = write(engine, lambda s: tx.register_visit(s, his, c, fixmedins_code=code, psn_no=psn_no, insutype="310",
                                                  med_type="11", begntime=c.at))
    items = [FeeItemIn.model_validate({"feedetl_sn": f"F{i}", **x}) for i, x in enumerate(lines)]
    write(engine, lambda s: tx.upload_items(s, his, c, PACKS, mdtrt_id=v["mdtrt_id"], items=items))
    return write(engine, lambda s: tx.settle(s, his, c, PACKS, mdtrt_id=v["mdtrt_id"]))


def line(code: str, price: str, cnt: str) -> dict:
    return {"med_list_codg": code, "pric": price, "cnt": cnt, "det_item_fee_sumamt": str(Decimal(price) * Decimal(cnt))}


def test_the_version_in_force_on_the_visit_date_classifies_the_settlement(engine, tmp_path):
    v1 = write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2023, 12, 20)), csv(tmp_path, "v1.csv", V1),
                                                   kind="drug", version="2024-A", effective_from=date(2024, 1, 1)))
    write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2024, 2, 20)), csv(tmp_path, "v2.csv", V2),
                                              kind="drug", version="2024-B", effective_from=date(2024, 3, 1),
                                              default_preselfpay="0.05"))
    assert v1["rows"] == 3
    lines = [line("XA01AAA001A001010100001", "10.00", "30"), line("XB02BBB002B002020200002", "25.00", "2"),
             line("ZC03CCC003C003030300003", "40.00", "1")]
    feb = settle(engine, date(2024, 2, 5), lines[:3])["setlinfo"]
    # 2024-A: XA01 乙类 at the version's 10% → 30.00; XB02 乙类 20% own share, 支付标准 20.00: 10.00 above it,
    # 20% of 40.00 → 8.00; ZC03 丙类 → 40.00 全自费
    assert (feb["overlmt_selfpay"], feb["preselfpay_amt"], feb["fulamt_ownpay_amt"]) == (
        Decimal("10.00"), Decimal("38.00"), Decimal("40.00"))
    assert feb["inscp_scp_amt"] == Decimal("300.00") + Decimal("50.00") - Decimal("10.00") - Decimal("38.00")
    mar = settle(engine, date(2024, 3, 5), lines[:2], psn_no="P000000004")["setlinfo"]
    # 2024-B: XA01 甲类 → no share; XB02 支付标准 18.00: 14.00 above, 20% of 36.00 → 7.20; ZC03 is gone from the
    # catalogue (only the pack's example entries remain) and would now need a class
    assert (mar["overlmt_selfpay"], mar["preselfpay_amt"]) == (Decimal("14.00"), Decimal("7.20"))
    with Session(engine) as s:
        assert cs.entry_on(s, CLERK, "XA01AAA001A001010100001", date(2024, 2, 29))["chrgitm_lv"] == "02"
        assert cs.entry_on(s, CLERK, "XA01AAA001A001010100001", date(2024, 3, 1))["version"] == "2024-B"
    with pytest.raises(YibaoError) as gone:
        settle(engine, date(2024, 3, 6), [lines[2]], psn_no="P000000004")
    assert gone.value.problems[0].code == "SET021"


def test_the_exported_pack_classifies_as_the_service_does(engine, tmp_path):
    """Batch and simulation read a pack: the exported one carries the catalogue in force, rule for rule."""
    from yibao.institutions.in_force import pack_in_force
    from yibao.policy.compiled import CompiledPack
    from yibao.policy.loader import resolve_pack

    write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2023, 12, 20)), csv(tmp_path, "v1.csv", V1),
                                              kind="drug", version="2024-A", effective_from=date(2024, 1, 1)))
    out = tmp_path / "pack.yaml"
    with Session(engine) as s:
        info = cs.export_pack(s, CLERK, policy="shandong-2024", on=date(2024, 2, 1), path=out)
        online = pack_in_force(s, PACKS.pick("370102", date(2024, 2, 1)), date(2024, 2, 1))
    batch = CompiledPack(resolve_pack(str(out)))
    assert info["entries"] == len(online.catalog) == len(batch.catalog) == 4 + 3
    assert batch.catalog == online.catalog


def test_a_bad_file_is_reported_row_by_row_and_nothing_is_written(engine, tmp_path):
    bad = HEADER + (
        "XA01AAA001A001010100001,甲药,片剂,5mg,乙类,,,,,企业\n"
        "XA01AAA001A001010100001,重复,片剂,5mg,甲类,,,,,企业\n"
        "CA1,错类编码,片剂,5mg,甲类,,,,,企业\n"
        "XZ99,,片剂,5mg,丁类,0.5,,,,企业\n"
        "XA09AAA001A001010100009,比例给甲类,片剂,5mg,甲类,10%,-3,,,企业\n"
        "XA10AAA001A001010100010,条件错,片剂,5mg,乙类,1.5,12.345,,sex=3,企业\n")
    with Session(engine) as s:
        audits = s.scalar(select(func.count()).select_from(AuditLog))
    with pytest.raises(YibaoError) as exc:
        write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "bad.csv", bad),
                                                  kind="drug", version="bad", effective_from=date(2024, 1, 1)))
    got = [(p.path, p.code) for p in exc.value.problems]
    assert got == [("第3行.med_list_codg", "INS303"), ("第4行.med_list_codg", "INS302"),
                   ("第5行.chrgitm_lv", "INS305"), ("第5行.med_list_codg", "INS302"), ("第5行.name", "INS304"),
                   ("第6行.pay_std", "INS307"), ("第6行.preselfpay_ratio", "INS306"),
                   ("第7行.pay_std", "INS307"), ("第7行.preselfpay_ratio", "INS306"), ("第7行.limit_codes", "INS309")]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(InsCatalogueEntry)) == 0
        assert s.scalar(select(func.count()).select_from(InsCatalogueVersion)) == 0
        assert s.scalar(select(func.count()).select_from(AuditLog)) == audits
    with pytest.raises(YibaoError) as header:
        write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "h.csv", "编码,名字\nX,Y\n"),
                                                  kind="drug", version="h", effective_from=date(2024, 1, 1)))
    assert header.value.problems[0].code == "INS301"
    good = csv(tmp_path, "v1.csv", V1)
    write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2024, 1, 2)), good, kind="drug", version="A",
                                              effective_from=date(2024, 1, 1)))
    with pytest.raises(YibaoError) as twice:
        write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2024, 1, 2)), good, kind="drug", version="B",
                                                  effective_from=date(2024, 1, 1)))
    assert twice.value.problems[0].code == "INS311"


def test_an_excel_table_in_the_national_layout_imports_alike(engine, tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["医疗服务项目代码", "项目名称", "计价单位", "甲乙类", "先行自付比例", "支付标准", "说明"])
    ws.append(["001102000010000", "普通门诊诊查费", "次", "甲类", None, 10, "不导入的列"])
    ws.append(["003107020010000", "磁共振平扫", "每部位", "乙", "0.2", "350.5", None])
    path = tmp_path / "服务项目.xlsx"
    wb.save(path)
    out = write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2024, 1, 2)), path, kind="service",
                                                    version="2024", effective_from=date(2024, 1, 1)))
    assert out["rows"] == 2
    with Session(engine) as s:
        mri = cs.entry_on(s, CLERK, "003107020010000", date(2024, 6, 1))
    assert (mri["chrgitm_lv"], mri["preselfpay_ratio"], mri["pay_std"]) == ("02", "0.2", "350.5")


def test_limit_conditions_of_the_version_in_force_flag_a_visit(engine, tmp_path):
    write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2023, 12, 20)), csv(tmp_path, "v1.csv", V1),
                                              kind="drug", version="2024-A", effective_from=date(2024, 1, 1)))
    out = settle(engine, date(2024, 2, 5), [line("XB02BBB002B002020200002", "20.00", "1"),
                                            line("XA01AAA001A001010100001", "1.00", "1")])  # P000000002 is male
    with Session(engine) as s:
        hits = cs.limit_hits(s, CLERK, out["setlinfo"]["mdtrt_id"])
    assert [(h["med_list_codg"], h["failed"], h["amount_fen"]) for h in hits["hits"]] == [
        ("XB02BBB002B002020200002", "gend=2", 2000)]


def signed_pharmacy(engine, code: str, care_modes: list[str]) -> None:
    app = write(engine, lambda s: store.apply_designation(s, CLERK, ctx(date(2023, 11, 1)), fixmedins_code=code,
                                                           fixmedins_name="示例大药房", kind="pharmacy", admdvs="370102",
                                                           scope={"levels": ["0"], "services": ["41"], "care_modes": care_modes}))
    write(engine, lambda s: store.evaluate(s, REVIEWER, ctx(date(2023, 11, 5)), application_no=app["application_no"],
                                           items={k: True for k in ("licence", "operating_3m", "staff", "his", "pricing",
                                                                    "records")}))
    write(engine, lambda s: store.sign(s, RECHECKER, ctx(date(2023, 11, 9)), application_no=app["application_no"],
                                       valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31)))


def test_dual_channel_drugs_only_at_pharmacies_whose_agreement_covers_it(engine, tmp_path):
    write(engine, lambda s: cs.import_version(s, CLERK, ctx(date(2023, 12, 20)), csv(tmp_path, "v1.csv", V1),
                                              kind="drug", version="2024-A", effective_from=date(2024, 1, 1)))
    signed_pharmacy(engine, "P37010200001", ["dual_channel"])
    signed_pharmacy(engine, "P37010200002", [])
    drug = "XB02BBB002B002020200002"
    write(engine, lambda s: procurement.add_dual_channel(s, CLERK, ctx(date(2024, 1, 5)), med_list_codg=drug,
                                                         fixmedins_code="P37010200001", valid_from=date(2024, 1, 5),
                                                         valid_to=date(2024, 12, 31)))
    with pytest.raises(YibaoError) as refused:
        write(engine, lambda s: procurement.add_dual_channel(s, CLERK, ctx(date(2024, 1, 5)), med_list_codg="XNOPE",
                                                             fixmedins_code="P37010200002", valid_from=date(2024, 1, 5),
                                                             valid_to=date(2024, 12, 31)))
    assert sorted(p.code for p in refused.value.problems) == ["INS313", "INS326"]
    with Session(engine) as s:
        assert procurement.dual_channel_pharmacies(s, CLERK, drug, date(2024, 6, 1))["pharmacies"] == ["P37010200001"]
        assert procurement.dual_channel_pharmacies(s, CLERK, drug, date(2024, 1, 4))["pharmacies"] == []


def test_vbp_progress_and_retention_paid_through_the_ledger(engine, tmp_path):
    drug = "XA01AAA001A001010100001"
    write(engine, lambda s: procurement.add_product(s, CLERK, ctx(date(2024, 1, 2)), batch="国家第九批", year=2024,
                                                    fixmedins_code=sample.HOSPITAL, med_list_codg=drug, name="示例降压片",
                                                    contract_volume="50", selected_price="1.50", reference_price="4.80",
                                                    period_from=date(2024, 1, 1), period_to=date(2024, 12, 31)))
    settle(engine, date(2024, 2, 5), [line(drug, "1.50", "30") | {"chrgitm_lv": "01"}])
    with Session(engine) as s:
        half = procurement.progress(s, CLERK, sample.HOSPITAL, 2024)
    assert (half["products"][0]["completion"], half["retained_fen"]) == ("0.6000", 0)  # 30 of 50: not complete
    settle(engine, date(2024, 6, 5), [line(drug, "1.50", "30") | {"chrgitm_lv": "01"}], psn_no="P000000004")
    app = write(engine, lambda s: procurement.post_retention(s, CLERK, ctx(date(2025, 1, 5)), fixmedins_code=sample.HOSPITAL,
                                                             year=2024))
    # 60 used ≥ 50 agreed: savings (4.80 − 1.50) × 50 = 165.00; retained 50% = 82.50
    assert (app["products"][0]["savings_fen"], app["payable"], app["kind"]) == (16500, Decimal("82.50"), "retention")
    for step, who in (("review", REVIEWER), ("approve", RECHECKER), ("order", CLERK), ("pay", CLERK)):
        write(engine, lambda s: ap.act(s, who, ctx(date(2025, 1, 10)), app_no=app["app_no"], action=step))
    with Session(engine) as s:
        assert [(r["kind"], r["amount_fen"]) for r in outflows(s, 2025)] == [("retention", 8250)]
    with pytest.raises(YibaoError) as again:
        write(engine, lambda s: procurement.post_retention(s, CLERK, ctx(date(2025, 1, 6)), fixmedins_code=sample.HOSPITAL,
                                                           year=2024))
    assert again.value.problems[0].code == "INS324"


def test_prices_by_level_are_dated_and_monitoring_flags_overcharges_and_moves(engine):
    item = "001102000010000"  # 示例: 普通门诊诊查费
    for level, price, day in (("1", "10.00", date(2024, 1, 1)), ("3", "20.00", date(2024, 1, 1)),
                              ("1", "14.00", date(2024, 4, 1))):
        write(engine, lambda s: prices.set_price(s, ADMIN, ctx(date(2023, 12, 1)), med_list_codg=item, level=level,
                                                 price=price, eff_date=day, doc_no="鲁医保发〔2023〕1号"))
    with pytest.raises(YibaoError) as back:
        write(engine, lambda s: prices.set_price(s, ADMIN, ctx(date(2024, 5, 1)), med_list_codg=item, level="1",
                                                 price="9.00", eff_date=date(2024, 3, 1), doc_no="x"))
    assert back.value.problems[0].code == "INS405"
    with pytest.raises(YibaoError) as bad:
        write(engine, lambda s: prices.set_price(s, ADMIN, ctx(date(2024, 5, 1)), med_list_codg="bad code", level="5",
                                                 price="0", eff_date=date(2024, 6, 1), doc_no=""))
    assert sorted(p.code for p in bad.value.problems) == ["INS401", "INS402", "INS403", "INS404"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(InsPriceEvent)) == 3
        assert [i["price"] for i in prices.price_list(s, CLERK, level="1", on=date(2024, 3, 31))["items"]] == [Decimal("10.00")]
    settle(engine, date(2024, 3, 5), [line(item, "12.00", "2") | {"chrgitm_lv": "01"}])  # 2.00 above 10.00, twice
    settle(engine, date(2024, 4, 5), [line(item, "14.00", "1") | {"chrgitm_lv": "01"}], psn_no="P000000004")
    with Session(engine) as s:
        report = prices.monitor(s, CLERK, begndate=date(2024, 1, 1), enddate=date(2024, 12, 31))
    assert [(o["date"], o["excess_fen"]) for o in report["over_price"]] == [("2024-03-05", 400)]
    assert [(m["level"], m["change"]) for m in report["price_moves"]] == [("1", "0.4000")]  # 10 → 14: +40% > 30%
    assert [(m["from_month"], m["to_month"]) for m in report["charge_moves"]] == []  # 12 → 14: +16.7%
