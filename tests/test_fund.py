"""Fund operation on a tiny hand-computed year, and the projection arithmetic.

Employees: 2 active + 1 retiree, pool income 2 × 6,000 × 7% = 840.00 元 a month (10,080 a year);
pool expense 1,000 (Jan) + 500 (Feb) = 1,500; opening 9 × 125 = 1,125; closing
1,125 + 10,080 − 1,500 = 9,705 = 77.64 months of 125 → over-accumulation.
Residents: 3 persons × (400 + 670) = 3,210 a year (267.50 a month); one 低保 person's 400 is
paid 70% by assistance (280); expense 3,000 in March; opening 9 × 250 = 2,250;
end of March 2,250 + 3 × 267.50 − 3,000 = 52.50, 52.50 / (3,000 / 3) = 0.05 months → severe;
closing 2,250 + 3,210 − 3,000 = 2,460 = 9.84 months → normal.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from yibao.fund.operation import operate, project
from yibao.policy.loader import resolve_pack

FUND = resolve_pack("shandong-2024").fund


def region(con):
    persons = pa.Table.from_pylist([
        {"psn_no": "E1", "insutype": "310", "retiree": False, "categories": []},
        {"psn_no": "E2", "insutype": "310", "retiree": False, "categories": []},
        {"psn_no": "E3", "insutype": "310", "retiree": True, "categories": []},
        {"psn_no": "R1", "insutype": "390", "retiree": False, "categories": ["dibao"]},
        {"psn_no": "R2", "insutype": "390", "retiree": False, "categories": []},
        {"psn_no": "R3", "insutype": "390", "retiree": False, "categories": []},
    ])
    y = pa.decimal128(16, 2)
    setl = pa.Table.from_pylist([
        {"psn_no": "E1", "setl_time": datetime(2024, 1, 5), "hifp_pay": Decimal("1000.00")},
        {"psn_no": "E3", "setl_time": datetime(2024, 2, 5), "hifp_pay": Decimal("500.00")},
        {"psn_no": "R1", "setl_time": datetime(2024, 3, 5), "hifp_pay": Decimal("3000.00")},
        {"psn_no": "R1", "setl_time": datetime(2023, 3, 5), "hifp_pay": Decimal("99.00")},  # another year
    ], pa.schema([("psn_no", pa.string()), ("setl_time", pa.timestamp("ms")), ("hifp_pay", y)]))
    con.register("persons", persons)
    con.register("setlinfo", setl)
    return persons, setl


def test_tiny_year_by_hand():
    con = duckdb.connect()
    region(con)
    emp, res = operate(con, FUND, 2024)
    assert (emp.income, emp.expense, emp.opening, emp.closing) == (1_008_000, 150_000, 112_500, 970_500)
    assert emp.account_income == 2 * 12_000 * 12 and emp.contributors == 2
    assert emp.months_of_payout == Decimal("77.64") and emp.level == "over"
    assert res.income_sources == {"individual": 92_000, "assistance": 28_000, "subsidy": 201_000}
    assert res.income == 321_000 and res.months[0].income == 26_750
    march = res.months[2]
    assert (march.accumulated, march.months_of_payout, march.level) == (5_250, Decimal("0.05"), "severe")
    assert (res.closing, res.months_of_payout, res.level) == (246_000, Decimal("9.84"), "normal")


def test_projection_grows_income_and_expense():
    con = duckdb.connect()
    region(con)
    years = operate(con, FUND, 2024)
    rows = project(years, FUND, {"390": Decimal("1.1")}, "reform")
    first = [r for r in rows if r.insutype == "390"][0]
    # income 3,210 × 1.05 = 3,370.50; expense 3,000 × 1.08 × 1.01 × 1.1 = 3,599.64
    assert (first.year, first.income, first.expense) == (2025, 337_050, 359_964)
    assert first.closing == 246_000 + 337_050 - 359_964
    assert len(rows) == 2 * FUND.projection.years


def test_fund_command_writes_workbook_and_charts(tmp_path):
    from yibao.cli import app

    con = duckdb.connect()
    persons, setl = region(con)
    (tmp_path / "c").mkdir()
    (tmp_path / "s").mkdir()
    pq.write_table(persons, tmp_path / "c" / "persons.parquet")
    pq.write_table(setl, tmp_path / "s" / "setlinfo.parquet")
    result = CliRunner().invoke(app, ["fund", "run", "-p", "shandong-2024", "-c", str(tmp_path / "c"),
                                      "-s", str(tmp_path / "s"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"fund.json", "fund.xlsx", "months_of_payout.png",
                                                             "projection.png"}
    bad = CliRunner().invoke(app, ["fund", "run", "-p", "jishou-2022", "-c", str(tmp_path / "c"),
                                   "-s", str(tmp_path / "s")])
    assert bad.exit_code == 2 and "FUND001" in bad.output


def write_region(root):
    con = duckdb.connect()
    persons, setl = region(con)
    (root / "c").mkdir(parents=True)
    (root / "s").mkdir(parents=True)
    pq.write_table(persons, root / "c" / "persons.parquet")
    pq.write_table(setl, root / "s" / "setlinfo.parquet")
    return ["-p", "shandong-2024", "-c", str(root / "c"), "-s", str(root / "s")]


def fund_cli(args):
    from yibao.cli import app

    # wide enough that a long temporary path (xdist adds popen-gwN/) is never wrapped inside a file name
    return CliRunner().invoke(app, ["fund", "run", *args], env={"COLUMNS": "240"})


@pytest.mark.parametrize("doc, expected", [
    ({"groups": [{"dimension": "insutype", "key": "310"}]}, "amounts"),  # a group without amounts
    ({"groups": [{"dimension": "insutype", "key": "310",
                  "amounts": {"hifp_pay": {"baseline": "abc", "reform": "1"}}}]}, "数值"),
    ({"groups": [{"dimension": "insutype", "key": "310",
                  "amounts": {"hifp_pay": {"baseline": "Infinity", "reform": "1"}}}]}, "有限"),
    ({"groups": [["not", "a", "group"]]}, "JSON"),
    ("{not json", "JSON"),
])
def test_malformed_simulation_json_is_fund003(tmp_path, doc, expected):
    from yibao.fund.operation import FundError, simulation_factors

    path = tmp_path / "sim.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    with pytest.raises(FundError) as err:
        simulation_factors(path)
    assert err.value.problems[0].code == "FUND003" and expected in err.value.problems[0].message
    result = fund_cli([*write_region(tmp_path / "r"), "--simulation", str(path)])
    assert result.exit_code == 2 and "FUND003" in result.output and "Traceback" not in result.output


def test_simulation_factors_by_hand(tmp_path):
    from yibao.fund.operation import simulation_factors

    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"groups": [
        {"dimension": "insutype", "key": "390", "amounts": {"hifp_pay": {"baseline": "200.00", "reform": "220.00"}}},
        {"dimension": "insutype", "key": "310", "amounts": {"hifp_pay": {"baseline": "0", "reform": "5"}}},
        {"dimension": "level", "key": "3"}]}), encoding="utf-8")
    assert simulation_factors(path) == {"390": Decimal("1.1")}


def test_paths_with_quotes_are_read(tmp_path):
    args = write_region(tmp_path / "q'x")
    result = fund_cli(args)
    assert result.exit_code == 0, result.output
    assert "77.64" in result.output


def test_unreadable_or_incomplete_inputs_are_fund006(tmp_path):
    args = write_region(tmp_path)
    (tmp_path / "c" / "persons.parquet").write_text("psn_no,insutype\nE1,310\n", encoding="utf-8")
    result = fund_cli(args)
    assert result.exit_code == 2 and "FUND006" in result.output and "persons.parquet" in result.output
    pq.write_table(pa.Table.from_pylist([{"psn_no": "E1", "insutype": "310"}]), tmp_path / "c" / "persons.parquet")
    result = fund_cli(args)
    assert result.exit_code == 2 and "FUND006" in result.output
    assert "persons.parquet.retiree" in result.output and "persons.parquet.categories" in result.output


def test_year_without_settlements_is_refused(tmp_path):
    result = fund_cli([*write_region(tmp_path), "--year", "2022"])
    assert result.exit_code == 2 and "FUND007" in result.output and "2022" in result.output
    assert "None" not in result.output
