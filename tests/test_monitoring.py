"""Return-to-poverty monitoring on the tiny hand-checked region of ``test_simulation`` (shandong-2024).

Thresholds (per-capita income 40,000): 政策范围内个人负担 > 10,000 and 个人负担总额 > 20,000.

| person | inscp_psn_part | psn_part_amt | crosses | 再救助 | 依申请救助 |
| --- | --- | --- | --- | --- | --- |
| P3 职工, no category | 15,800 + 80 | 20,800 + 80 | both | not a 救助对象 | on application: (15,800 − 10,000) × 60% = 3,480 (住院 only) |
| P6 居民, 监测对象 | 10,300 | 10,300 | 25% line | paid 700 | no: already 医疗救助 as 监测对象 (same exclusive group) |

Nobody else crosses: P1 2,200, P2 40, P4 (低保) 2,302.50, P5 no visit.
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
import yaml
from openpyxl import load_workbook
from typer.testing import CliRunner

from test_simulation import tiny_tables, write_tiny_region
from yibao.batch.run import open_claims, settle
from yibao.cli import app
from yibao.monitoring.measures import MonitoringError
from yibao.monitoring.render import format_monitoring
from yibao.monitoring.screen import monitor
from yibao.privacy import mask_certno, mask_name
from yibao.monitoring.assistance import application_categories, income_share_tiers
from yibao.privacy import mask_certno_sql, mask_name_sql
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack, shipped_pack_path
from yibao.synth import generate, write_region

runner = CliRunner()
D = Decimal
RAW_IDS = ("370102199001011234", "37010219800101123X", "370106196001011238")


def y(value: str) -> int:
    return int(D(value) * 100)


@pytest.fixture(scope="module")
def pack():
    return CompiledPack(resolve_pack("shandong-2024"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_region(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_dir, pack, tmp_path_factory):
    return monitor(open_claims(tiny_dir), pack, None, tmp_path_factory.mktemp("tiny-mon"))


def test_thresholds_and_who_crosses_them(tiny):
    assert [(t.id, t.amount) for t in tiny.thresholds] == [("warn_inscp_25", y("10000")), ("alert_oop_50", y("20000"))]
    assert [(p.psn_no, p.thresholds) for p in tiny.people] == [
        ("P3", ("warn_inscp_25", "alert_oop_50")), ("P6", ("warn_inscp_25",))]
    assert tiny.counts == {"warn_inscp_25": 2, "alert_oop_50": 1}
    assert (tiny.persons_screened, tiny.persons_with_visits, tiny.years) == (6, 5, [2024])
    p3, p6 = tiny.people
    assert (p3.inscp_psn_part, p3.psn_part_amt, p3.medfee_sumamt) == (y("15880"), y("20880"), y("106000"))
    assert (p3.visits, p3.burden_visits, p3.insutype, p3.categories) == (2, 2, "310", ())
    assert (p6.inscp_psn_part, p6.psn_part_amt, p6.maf_pay) == (y("10300"), y("10300"), y("8700"))
    assert p6.category_names == ("防止返贫监测帮扶对象",) and p6.hh_no == "H5"


def test_masked_ids_names_and_the_visits_behind(tiny):
    p3, p6 = tiny.people
    assert (p3.certno, p3.name) == ("370102********123X", "欧***")
    assert (p6.certno, p6.name) == ("370106********1238", "钱*")
    assert [(v.mdtrt_id, v.psn_part_amt, v.med_type) for v in p3.top_visits] == [
        ("V3", y("20800"), "21"), ("V6", y("80"), "11")]
    assert str(p3.top_visits[0].setl_time) == "2024-05-10 16:00:00"


def test_reassistance_and_application(tiny):
    p3, p6 = tiny.people
    [app3] = p3.route("application")
    assert (app3.status, app3.estimate, app3.paid) == ("eligible", y("3480"), 0)
    assert app3.message == "可申请依申请救助(因病致贫重病患者): 经认定为因病致贫重病患者后, 预计救助 3,480.00 元"
    assert p3.route("reassistance") == [] and p3.route_text("reassistance") == "不适用(非救助对象)"
    [re6] = p6.route("reassistance")
    assert (re6.status, re6.paid) == ("paid", y("700")) and re6.message == "已享受再救助(倾斜救助) 700.00 元"
    [app6] = p6.route("application")
    assert app6.status == "superseded" and "医疗救助(低保边缘家庭成员、防止返贫监测帮扶对象)" in app6.message


def test_application_estimate_is_what_the_engine_pays_once_recognised(pack, tmp_path):
    tables = tiny_tables()
    persons = tables["persons"].to_pylist()
    for row in persons:
        if row["psn_no"] == "P3":
            row["categories"] = ["illness_poverty"]
    tables["persons"] = pa.Table.from_pylist(persons, schema=tables["persons"].schema)
    write_region(tables, tmp_path)
    run = open_claims(tmp_path)
    table = settle(run, pack, "recognised")
    paid = run.con.sql(f"SELECT SUM(pay__assistance_on_application) FROM {table} WHERE psn_no = 'P3'").fetchone()[0]
    assert paid == y("3480")
    result = monitor(run, pack, table)
    p3 = next(p for p in result.people if p.psn_no == "P3")
    [check] = p3.route("application")
    assert (check.status, check.paid) == ("paid", y("3480"))
    assert p3.inscp_psn_part == y("12400")  # 15,880 − 3,480 left after 依申请救助


def test_given_table_equals_settling_here(tiny_dir, pack, tiny):
    run = open_claims(tiny_dir)
    table = settle(run, pack, "mine")
    again = monitor(run, pack, table)
    assert again.table == "settled_mine" and again.people == tiny.people


def test_exports_csv_with_bom_and_xlsx(tiny):
    raw = tiny.outputs["csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(tiny.outputs["csv"].read_text(encoding="utf-8-sig").splitlines()))
    header = rows[0]
    assert header[:4] == ["年度", "人员编号", "证件号码(脱敏)", "姓名(脱敏)"]
    first = dict(zip(header, rows[1]))
    assert first["人员编号"] == "P3" and first["证件号码(脱敏)"] == "370102********123X"
    assert first["政策范围内个人负担(元)"] == "15880.00" and first["预计依申请救助金额(元)"] == "3480.00"
    assert first["政策范围内个人负担占上年人均可支配收入%"] == "39.70"
    assert first["人员类别"] == "普通参保人" and first["险种"] == "职工基本医疗保险"
    assert "V3 2024-05-10 普通住院 三级 个人负担 20800.00 元" in first["个人负担最高的就诊"]
    assert len(rows) == 3
    wb = load_workbook(tiny.outputs["xlsx"])
    assert wb.sheetnames == ["预警名单", "阈值", "汇总"]
    sheet = wb["预警名单"]
    assert sheet["B2"].value == "P3" and sheet["C3"].value == "370106********1238"
    texts = [str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    texts.append(tiny.outputs["csv"].read_text(encoding="utf-8-sig"))
    for raw_id in RAW_IDS:
        assert not any(raw_id in t for t in texts), raw_id
    assert not any("欧阳娜娜" in t for t in texts)


def test_masking_sql_matches_python():
    values = ["370102199001011234", "37010219800101123X", "1234567890", "12345678901", "", "欧阳娜娜", "张三", "王",
              None]
    con = duckdb.connect()
    for v in values:
        got = con.execute(f"SELECT {mask_certno_sql('$1')}, {mask_name_sql('$1')}", [v]).fetchone()
        assert got == (mask_certno(v), mask_name(v)), v


def test_assistance_tiers_of_the_shipped_pack(pack):
    assert [t.id for t in income_share_tiers(pack)] == ["reassistance", "assistance_on_application"]
    assert application_categories(pack) == frozenset({"illness_poverty"})


def test_pack_without_monitoring_is_refused(tiny_dir, pack, tmp_path):
    bare = CompiledPack(pack.pack.model_copy(update={"monitoring": None}))
    with pytest.raises(MonitoringError) as exc:
        monitor(open_claims(tiny_dir), bare)
    assert exc.value.problems[0].code == "MON001" and "monitoring" in exc.value.problems[0].message


def test_missing_or_foreign_table_is_refused(tiny_dir, pack):
    run = open_claims(tiny_dir)
    with pytest.raises(MonitoringError) as exc:
        monitor(run, pack, "settled_nothing")
    assert exc.value.problems[0].code == "MON002"
    run.con.sql("CREATE TABLE partial AS SELECT 'P1' AS psn_no")
    with pytest.raises(MonitoringError) as exc:
        monitor(run, pack, "partial")
    assert exc.value.problems[0].code == "MON003"


def test_format_monitoring_shows_masked_people(tiny):
    from rich.console import Console

    console = Console(width=220, record=True)
    console.print(format_monitoring(tiny))
    text = console.export_text()
    assert "370102********123X" in text and "欧***" in text and "10,000.00" in text
    assert "欧阳娜娜" not in text


def test_synthetic_region_flags_exactly_those_above_the_lines(pack, tmp_path):
    region = tmp_path / "region"
    write_region(generate(pack.pack, persons=3000, seed=9), region)
    run = open_claims(region)
    result = monitor(run, pack, None, tmp_path / "out")
    expected = run.con.sql("""
        SELECT psn_no FROM settled_monitor GROUP BY psn_no, yr
        HAVING SUM(inscp_psn_part) > 1000000 OR SUM(psn_part_amt) > 2000000 ORDER BY psn_no""").fetchall()
    assert sorted(p.psn_no for p in result.people) == [r[0] for r in expected] and result.people
    for p in result.people:
        raw_id, raw_name = run.con.sql(f"SELECT certno, psn_name FROM persons WHERE psn_no = '{p.psn_no}'").fetchone()
        assert (p.certno, p.name) == (mask_certno(raw_id), mask_name(raw_name)) and p.certno.count("*") == 8
        assert 1 <= len(p.top_visits) <= 3 and p.top_visits[0].psn_part_amt == max(v.psn_part_amt for v in p.top_visits)
        paid = dict(run.con.sql(f"""SELECT 'reassistance', SUM(pay__reassistance) FROM settled_monitor
                                    WHERE psn_no = '{p.psn_no}' UNION ALL
                                    SELECT 'assistance_on_application', SUM(pay__assistance_on_application)
                                    FROM settled_monitor WHERE psn_no = '{p.psn_no}'""").fetchall())
        for check in p.assistance:
            assert check.paid == paid[check.tier_id]
            assert (check.status == "paid") == (paid[check.tier_id] > 0)
    assert (tmp_path / "out" / "monitoring.csv").exists() and (tmp_path / "out" / "monitoring.xlsx").exists()


# --- the command ---------------------------------------------------------------------------


def test_cli_monitor_json(tiny_dir, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["monitor", "--claims", str(tiny_dir), "--policy", "shandong-2024",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["flagged"] == 2 and doc["people"][0]["certno"] == "370102********123X"
    assert doc["people"][0]["assistance"][0]["estimate"] == "3480.00"
    assert not any(raw in result.stdout for raw in RAW_IDS)
    assert (out / "monitoring.csv").exists() and (out / "monitoring.xlsx").exists()
    text = runner.invoke(app, ["monitor", "-c", str(tiny_dir), "-p", "shandong-2024"], env={"COLUMNS": "220"})
    assert text.exit_code == 0, text.stderr
    assert "预警名单" in text.stdout


def test_cli_monitor_bad_input_writes_nothing(tiny_dir, tmp_path):
    doc = yaml.safe_load(shipped_pack_path("shandong-2024").read_text(encoding="utf-8"))
    del doc["monitoring"]
    doc["assumptions"] = [a for a in doc["assumptions"] if a["path"] != "monitoring"]
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"
    for argv, code in (
        (["--claims", str(tiny_dir), "--policy", str(bare)], "MON001"),
        (["--claims", str(tmp_path / "missing"), "--policy", "shandong-2024"], "BAT010"),
        (["--claims", str(tiny_dir), "--policy", "jishou-2022"], "BAT001"),
    ):
        result = runner.invoke(app, ["monitor", "--out", str(out)] + argv)
        assert result.exit_code == 2, result.stdout
        assert code in result.stderr
        assert not out.exists()
