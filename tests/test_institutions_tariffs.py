"""Price tables and 集采 selected-product lists imported from files: dated versions, all or nothing with a per-row
coded report, and read where prices (超标准收费) and 集采 (执行进度, 结余留用) are checked."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from test_api_auth import api  # noqa: F401
from test_institutions_catalogue import CLERK, csv, ctx, line, settle, write
from yibao.errors import YibaoError
from yibao.institutions import prices, procurement, tariffs
from yibao.institutions.models import InsPriceEvent, InsTariffFile, InsVbpProduct
from yibao.service import sample
from yibao.store.database import make_engine

ITEM, ITEM2 = "001102000010000", "120100001000000"
PRICE_HEADER = "项目编码,项目名称,计价单位,三级价格,二级价格,一级价格,项目内涵\n"
PRICES_2024 = PRICE_HEADER + f"{ITEM},普通门诊诊察费,次,20.00,15.00,10.00,\n{ITEM2},一般专项护理,日,,8.00,6.50,\n"
PRICES_2024_B = PRICE_HEADER + f"{ITEM},普通门诊诊察费,次,22.00,16.00,14.00,调价\n"
DRUG = "XA01AAA001A001010100001"
VBP_HEADER = "采购批次,医保药品代码,药品通用名,规格,中选企业,医疗机构编码,约定采购量,中选价格,集采前参考价\n"


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 4)
    yield eng
    eng.dispose()


def codes(exc: YibaoError) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in exc.problems]


def test_a_price_table_is_a_dated_version_read_by_price_monitoring(engine, tmp_path):
    out = write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2023, 12, 20)), csv(tmp_path, "p.csv", PRICES_2024),
                                                      kind="price", version="鲁医保发〔2023〕88号", effective_from=date(2024, 1, 1)))
    assert (out["rows"], out["records"]) == (2, 5)  # ITEM2 has no 三级 price
    write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 3, 20)), csv(tmp_path, "p2.csv", PRICES_2024_B),
                                                kind="price", version="鲁医保发〔2024〕9号", effective_from=date(2024, 4, 1)))
    with Session(engine) as s:
        assert prices.price_on(s, ITEM, "1", date(2024, 3, 31)) == 1000
        assert prices.price_on(s, ITEM, "1", date(2024, 4, 1)) == 1400
        assert prices.price_on(s, ITEM2, "3", date(2024, 4, 1)) is None
        listed = tariffs.files(s, CLERK, "price")
    assert [(f["version"], f["effective_from"], f["records"]) for f in listed] == [
        ("鲁医保发〔2023〕88号", "2024-01-01", 5), ("鲁医保发〔2024〕9号", "2024-04-01", 3)]
    # a level-1 hospital charges 12.00 twice on 3/5 (price 10.00) and 14.00 on 4/5 (price 14.00)
    settle(engine, date(2024, 3, 5), [{**line(ITEM, "12.00", "2"), "chrgitm_lv": "01"}])
    settle(engine, date(2024, 4, 5), [{**line(ITEM, "14.00", "1"), "chrgitm_lv": "01"}], psn_no="P000000004")
    with Session(engine) as s:
        m = prices.monitor(s, CLERK, begndate=date(2024, 1, 1), enddate=date(2024, 12, 31))
    assert [(o["date"], o["excess_fen"]) for o in m["over_price"]] == [("2024-03-05", 400)]  # (12.00 − 10.00) × 2
    assert [(x["level"], x["from_fen"], x["to_fen"]) for x in m["price_moves"]] == [("1", 1000, 1400)]  # +40%


def test_a_bad_price_table_is_reported_row_by_row_and_nothing_is_written(engine, tmp_path):
    bad = PRICE_HEADER + (f"{ITEM},诊察费,次,20.00,15.00,10.00,\n"
                          f"{ITEM},诊察费,次,20.00,,,\n"               # duplicate code
                          "12-AB,某项目,次,5.00,,,\n"                     # bad code
                          f"{ITEM2},护理,日,,,,\n"                       # no price at all
                          "310100001000000,检查,次,-3,1.234,0,\n")      # bad prices
    with pytest.raises(YibaoError) as refused:
        write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "bad.csv", bad),
                                                    kind="price", version="X1", effective_from=date(2024, 1, 1)))
    assert codes(refused.value) == [("INS343", "第3行.med_list_codg"), ("INS342", "第4行.med_list_codg"),
                                    ("INS345", "第5行.price"), ("INS344", "第6行.price_3"), ("INS344", "第6行.price_2"),
                                    ("INS344", "第6行.price_1")]
    assert "重复" in refused.value.problems[0].message
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(InsPriceEvent)) == 0
        assert s.scalar(select(func.count()).select_from(InsTariffFile)) == 0
    # a price dated at or before one already recorded is refused for that row; the same 文件号 twice is a conflict
    write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "ok.csv", PRICES_2024),
                                                kind="price", version="X1", effective_from=date(2024, 1, 1)))
    with pytest.raises(YibaoError) as early:
        write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "b.csv", PRICES_2024_B),
                                                    kind="price", version="X2", effective_from=date(2023, 12, 1)))
    assert codes(early.value) == [("INS346", "第2行.price_3"), ("INS346", "第2行.price_2"), ("INS346", "第2行.price_1")]
    with pytest.raises(YibaoError) as again:
        write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "ok.csv", PRICES_2024),
                                                    kind="price", version="X1", effective_from=date(2024, 6, 1)))
    assert codes(again.value) == [("INS350", "version")]
    with pytest.raises(YibaoError) as header:
        write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "h.csv", "编码,价格\nA,1\n"),
                                                    kind="price", version="X3", effective_from=date(2024, 6, 1)))
    assert codes(header.value) == [("INS341", "header")]


def test_a_vbp_list_feeds_progress_and_retention(engine, tmp_path):
    text = VBP_HEADER + (f"国家第九批,{DRUG},示例降压片,5mg,示例药业,{sample.HOSPITAL},50,1.50,4.80\n"
                         f"国家第九批,{DRUG},示例降压片,5mg,示例药业,{sample.OTHER_HOSPITAL},200,1.50,4.80\n")
    out = write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "vbp.csv", text),
                                                      kind="vbp", version="国家第九批(鲁)", effective_from=date(2024, 1, 1)))
    assert out["records"] == 2
    with Session(engine) as s:
        p = s.scalars(select(InsVbpProduct).where(InsVbpProduct.fixmedins_code == sample.HOSPITAL)).one()
        assert (p.period_from, p.period_to, p.year, p.file_id) == (date(2024, 1, 1), date(2024, 12, 31), 2024, out["file_id"])
    settle(engine, date(2024, 2, 5), [{**line(DRUG, "1.50", "60"), "chrgitm_lv": "01"}])
    with Session(engine) as s:
        prog = procurement.progress(s, CLERK, sample.HOSPITAL, 2024)
        usage = tariffs.vbp_usage(s, CLERK, year=2024)
    # used 60 of 50 → 结余 (4.80 − 1.50) × 50 = 165.00, 留用 50% = 82.50
    (x,) = prog["products"]
    assert (x["used_volume"], x["completion"], x["savings_fen"], x["retained_fen"]) == ("60.0000", "1.2000", 16500, 8250)
    assert usage["products"] == [{"batch": "国家第九批", "med_list_codg": DRUG, "contract_volume": "250.0000",
                                  "used_volume": "60.0000", "completion": "0.2400", "retained": Decimal("82.50")}]
    # charged above the 中选价 at either institution holding the product: (1.80 − 1.50) × 10 = 3.00 each in 价格监测
    settle(engine, date(2024, 5, 6), [{**line(DRUG, "1.80", "10"), "chrgitm_lv": "01"}], psn_no="P000000004")
    settle(engine, date(2024, 5, 7), [{**line(DRUG, "1.80", "10"), "chrgitm_lv": "01"}], psn_no="P000000004",
           code=sample.OTHER_HOSPITAL)
    with Session(engine) as s:
        m = prices.monitor(s, CLERK, begndate=date(2024, 1, 1), enddate=date(2024, 12, 31))
    assert [(o["fixmedins_code"], o["date"], o["excess_fen"]) for o in m["over_vbp_price"]] == [
        (sample.HOSPITAL, "2024-05-06", 300), (sample.OTHER_HOSPITAL, "2024-05-07", 300)]
    assert m["over_vbp_price_fen"] == 600


def test_a_bad_vbp_list_writes_nothing(engine, tmp_path):
    text = "采购批次,医保药品代码,药品通用名,医疗机构编码,约定采购量,中选价格,集采前参考价,执行期起,执行期止\n" + (
        f"第九批,{DRUG},降压片,{sample.HOSPITAL},50,1.50,4.80,2024-03-01,2025-02-28\n"
        f"第九批,{DRUG},降压片,{sample.HOSPITAL},50,1.50,4.80,,\n"            # duplicate
        f"第九批,{DRUG},降压片,H99999999999,0,1.5x,4.80,2024-03-01,2024-02-01\n")  # unknown, volume, price, period
    with pytest.raises(YibaoError) as refused:
        write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2024, 1, 2)), csv(tmp_path, "v.csv", text),
                                                    kind="vbp", version="V1", effective_from=date(2024, 3, 1)))
    assert codes(refused.value) == [("INS343", "第3行.med_list_codg"), ("INS347", "第4行.fixmedins_code"),
                                    ("INS348", "第4行.contract_volume"), ("INS344", "第4行.selected_price"),
                                    ("INS349", "第4行.period_to")]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(InsVbpProduct)) == 0


def test_price_and_vbp_files_through_the_api_and_the_command(api, tmp_path):  # noqa: F811
    call, _ = api
    r = call("clerk", "POST", "/institutions/prices/files", content=PRICES_2024.encode(),
             params={"version": "鲁医保发〔2023〕88号", "effective_from": "2024-01-01"})
    assert r.status_code == 201 and r.json()["records"] == 5, r.text
    bad = call("clerk", "POST", "/institutions/vbp/files", content=(VBP_HEADER + f"B,{DRUG},x,,,NOPE,1,1.00,2.00\n").encode(),
               params={"version": "V", "effective_from": "2024-01-01"})
    assert bad.status_code == 422 and [p["code"] for p in bad.json()["problems"]] == ["INS347"]
    assert call("his1", "POST", "/institutions/prices/files", content=b"x", params={"version": "V", "effective_from":
                                                                                   "2024-01-01"}).status_code == 403
    listed = call("auditor", "GET", "/institutions/tariff-files").json()
    assert [(f["kind"], f["records"]) for f in listed] == [("price", 5)]
    assert call("auditor", "GET", "/institutions/vbp", params={"year": 2024}).json()["products"] == []
    level1 = call("auditor", "GET", "/institutions/prices", params={"level": "1", "on": "2024-02-01"}).json()["items"]
    assert [(i["med_list_codg"], Decimal(str(i["price"])), i["doc_no"]) for i in level1] == [
        (ITEM, Decimal("10.00"), "鲁医保发〔2023〕88号"), (ITEM2, Decimal("6.50"), "鲁医保发〔2023〕88号")]


def test_price_import_command_reports_rows_and_exits_non_zero(store_url, tmp_path):
    from typer.testing import CliRunner

    from yibao.cli import app

    bad = csv(tmp_path, "bad.csv", PRICE_HEADER + "12-AB,某项目,次,5.00,,,\n")
    r = CliRunner().invoke(app, ["institutions", "price-import", str(bad), "--doc", "X1", "--from", "2024-01-01",
                                 "--url", store_url])
    assert r.exit_code != 0 and "INS342" in r.output and "第2行" in r.output
    good = csv(tmp_path, "good.csv", PRICES_2024)
    r = CliRunner().invoke(app, ["institutions", "price-import", str(good), "--doc", "X1", "--from", "2024-01-01",
                                 "--url", store_url])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["institutions", "tariff-files", "--url", store_url])
    assert r.exit_code == 0 and '"records": 5' in r.output


def test_the_tariff_benchmark_stores_what_the_row_by_row_path_stores():
    from yibao.institutions.bench_tariffs import run

    r = run(n=120, alt_rows=30, institutions=7)
    assert (r["vbp"]["records"], r["vbp"]["same_records"], r["price"]["same_records"]) == (120, True, True)


def test_a_price_table_in_excel_imports_alike(engine, tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for row in [r.split(",") for r in PRICES_2024.strip().splitlines()]:
        ws.append([float(v) if v.replace(".", "").isdigit() and "." in v else v for v in row])
    path = tmp_path / "价格表.xlsx"
    wb.save(path)
    out = write(engine, lambda s: tariffs.import_file(s, CLERK, ctx(date(2023, 12, 20)), path, kind="price",
                                                      version="X", effective_from=date(2024, 1, 1)))
    with Session(engine) as s:
        assert out["records"] == 5 and prices.price_on(s, ITEM2, "1", date(2024, 1, 1)) == 650


def test_the_lists_through_the_api(api):  # noqa: F811
    call, _ = api
    r = call("his1", "POST", "/institutions/designations", json={
        "fixmedins_code": sample.HOSPITAL, "fixmedins_name": "示例社区卫生服务中心", "kind": "hospital",
        "admdvs": "370102", "scope": {"levels": ["1"], "services": ["11"]}})
    assert r.status_code == 201, r.text
    mine = call("his1", "GET", "/institutions/designations").json()
    assert [(d["fixmedins_code"], d["status"]) for d in mine] == [(sample.HOSPITAL, "applied")]
    assert call("his2", "GET", "/institutions/designations").json() == []
    assert call("his2", "GET", "/institutions/designations", params={"fixmedins_code": sample.HOSPITAL}).status_code == 403
    assert call("auditor", "GET", "/institutions/agreements", params={"on": "2024-05-01"}).json() == []
    assert call("auditor", "GET", "/institutions/assessments", params={"year": 2024}).json() == []
    assert call("auditor", "GET", "/institutions/payments/ledger", params={"year": 2024}).json() == {
        "payments": [], "total_fen": 0}
    bad = call("auditor", "GET", "/institutions/payments/ledger", params={"fund": "x"})
    assert bad.status_code == 422 and bad.json()["problems"][0]["code"] == "INS221"
