"""LTC over files: a synthetic year settled and audited, CSV = Parquet, bad files refused whole, reform and fund."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from yibao.cli import app
from yibao.ltc.assess import LtcError
from yibao.ltc.audit import audit_month
from yibao.ltc.batch import load, settle_region
from yibao.ltc.settle import CarePerson, CareRecord, LevelSpan, settle_month
from yibao.ltc.synth import RECORD_SCHEMA
from yibao.policy.loader import resolve_pack

runner = CliRunner()
PACK = resolve_pack("shandong-2024")
LTC = PACK.ltc


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    from yibao.synth.region import generate_to

    d = tmp_path_factory.mktemp("ltc")
    generate_to(PACK, d, persons=4000, seed=5)
    result = runner.invoke(app, ["ltc", "synth", "--claims", str(d), "--seed", "5"])
    assert result.exit_code == 0, result.output
    return d


def test_batch_pays_what_the_month_function_pays_on_rows_read_independently(region, tmp_path):
    result = runner.invoke(app, ["ltc", "settle", "--data", str(region), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = pq.read_table(tmp_path / "out" / "ltc_settlements.parquet").to_pylist()
    assert len(out) > 100
    # rebuild every person-month from the files with pyarrow alone (no DuckDB, no batch module)
    persons = {r["psn_no"]: r for r in pq.read_table(region / "ltc_persons.parquet").to_pylist()}
    spans: dict[str, list] = {}
    for a in sorted(pq.read_table(region / "ltc_assessments.parquet").to_pylist(), key=lambda a: a["begin"]):
        spans.setdefault(a["psn_no"], []).append(LevelSpan(a["level"], a["begin"], a["end"]))
    months: dict[tuple[str, str], list[CareRecord]] = {}
    for r in pq.read_table(region / "ltc_records.parquet").to_pylist():
        months.setdefault((r["psn_no"], r["srv_date"].strftime("%Y-%m")), []).append(
            CareRecord(r["srv_id"], r["srv_date"], r["mode"], r["item_class"], int(r["amount"] * 100), r["days"]))
    assert len(months) == len(out)
    for row in out:
        p = persons[row["psn_no"]]
        who = CarePerson(p["psn_no"], p["insutype"], tuple(spans.get(p["psn_no"], ())), p["enrolled_since"], p["death_date"])
        s = settle_month(LTC, who, row["month"], months[(row["psn_no"], row["month"])])
        assert (row["fund_pay"], row["psn_pay"], row["ltc_sumamt"]) == (
            Decimal(s.fund_pay) / 100, Decimal(s.psn_pay) / 100, Decimal(s.ltc_sumamt) / 100)
    assert all(r["fund_pay"] <= Decimal("3450.00") for r in out)
    hits = pq.read_table(tmp_path / "out" / "ltc_hits.parquet").to_pylist()
    labels = pq.read_table(region / "ltc_labels.parquet").to_pylist()
    flagged = {(h["rule_id"], h["psn_no"]) for h in hits}
    rule = {"after_death": "LTC-A04", "above_level": "LTC-A03", "double_days": "LTC-A01"}
    assert {label["pattern"] for label in labels} >= set(rule)
    for label in labels:
        if label["pattern"] in rule:
            assert (rule[label["pattern"]], label["psn_no"]) in flagged, label


def test_csv_input_settles_like_parquet(region, tmp_path):
    for name in ("ltc_persons", "ltc_assessments", "ltc_records"):
        pacsv.write_csv(pq.read_table(region / f"{name}.parquet"), tmp_path / f"{name}.csv")
    a, _ = settle_region(LTC, load(duckdb.connect(), region))
    b, _ = settle_region(LTC, load(duckdb.connect(), tmp_path))
    assert [(s.psn_no, s.month, s.fund_pay, s.psn_pay) for s in a] == [(s.psn_no, s.month, s.fund_pay, s.psn_pay) for s in b]


def write_inputs(d: Path, records: list[dict], persons=None, assessments=None) -> None:
    pq.write_table(pa.Table.from_pylist(persons or [
        {"psn_no": "P1", "insutype": "310", "enrolled_since": date(2020, 1, 1), "death_date": None}]), d / "ltc_persons.parquet")
    pq.write_table(pa.Table.from_pylist(assessments or [
        {"assessment_id": "A1", "psn_no": "P1", "level": "4", "begin": date(2024, 1, 1), "end": date(2025, 12, 31),
         "assessor": "E1"}]), d / "ltc_assessments.parquet")
    pq.write_table(pa.Table.from_pylist(records, schema=RECORD_SCHEMA), d / "ltc_records.parquet")


def rec(**kw) -> dict:
    base = {"srv_id": "S1", "psn_no": "P1", "fixmedins_code": "C1", "srv_date": date(2024, 3, 1), "days": 1,
            "mode": "home", "item_class": "care", "amount": Decimal("50.00"), "srv_level": "4"}
    return {**base, **kw}


def test_bad_files_are_refused_whole_with_row_and_column(tmp_path):
    write_inputs(tmp_path, [rec(), rec(srv_id="S2", days=0), rec(srv_id="S3", mode="spa")])
    result = runner.invoke(app, ["ltc", "settle", "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "LTC022" in result.output and "ltc_records.parquet[第 2 行].days" in result.output
    assert "ltc_records.parquet[第 3 行].mode" in result.output
    assert not (tmp_path / "out").exists()
    (tmp_path / "ltc_persons.parquet").unlink()
    with pytest.raises(LtcError) as exc:
        load(duckdb.connect(), tmp_path)
    assert [p.code for p in exc.value.problems][0] == "LTC020"
    write_inputs(tmp_path, [rec(psn_no="NOBODY")])
    with pytest.raises(LtcError) as exc:
        load(duckdb.connect(), tmp_path)
    assert [(p.code, p.path) for p in exc.value.problems] == [("LTC023", "ltc_records[第 1 行].psn_no")]
    write_inputs(tmp_path, [rec(fixmedins_code="C1"), rec(srv_id="S2", fixmedins_code="C2")])
    pq.write_table(pa.Table.from_pylist([{"fixmedins_code": "C1", "modes": ["home"]}]), tmp_path / "ltc_institutions.parquet")
    with pytest.raises(LtcError) as exc:
        load(duckdb.connect(), tmp_path)
    assert [(p.code, p.path) for p in exc.value.problems] == [("LTC045", "ltc_records[第 2 行].fixmedins_code")]
    pq.write_table(pa.Table.from_pylist([{"srv_id": "S1"}]), tmp_path / "ltc_records.parquet")
    with pytest.raises(LtcError) as exc:
        load(duckdb.connect(), tmp_path)
    assert {p.code for p in exc.value.problems} == {"LTC021"}


def test_each_audit_rule_hits_and_misses():
    who = CarePerson("P1", "310", (LevelSpan("3", date(2024, 1, 1), date(2025, 1, 1)),), date(2020, 1, 1), date(2024, 4, 20))
    recs = [CareRecord("a", date(2024, 4, 1), "institution", "care", 300000, days=20),
            CareRecord("b", date(2024, 4, 5), "institution", "care", 150000, days=15),  # 35 days billed in April
            CareRecord("c", date(2024, 4, 18), "institution", "bed", 9000, days=3),      # 18–20: stay 17–19 → 18 inside
            CareRecord("v", date(2024, 4, 22), "visit", "care", 10000)]                  # after death on the 20th
    hits = audit_month(LTC, who, "2024-04", recs, {"a": "3", "b": "5"}, [(date(2024, 4, 17), date(2024, 4, 19))])
    got = {h.rule_id: (h.srv_ids, h.amount) for h in hits}
    assert got == {"LTC-A01": (("a", "b"), 450000), "LTC-A02": (("a", "b", "c"), 459000),
                   "LTC-A03": (("b",), 150000), "LTC-A04": (("v",), 10000)}
    clean = audit_month(LTC, CarePerson("P1", "310", who.levels, date(2020, 1, 1)), "2024-04",
                        [CareRecord("a", date(2024, 4, 1), "institution", "care", 1000, days=30)], {"a": "3"},
                        [(date(2024, 3, 1), date(2024, 4, 1))])  # discharged on the 1st: care may start that day
    assert clean == []


def test_reform_raises_home_care_only(region):
    result = runner.invoke(app, ["ltc", "simulate", "--data", str(region), "--baseline", "shandong-2024",
                                 "--reform", "shandong-2024-ltc-reform", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["group"]: r for r in json.loads(result.output)["rows"]}
    assert Decimal(rows["mode:home"]["change"]) > 0
    assert Decimal(rows["mode:institution"]["change"]) == 0 and Decimal(rows["mode:visit"]["change"]) <= 0
    assert Decimal(rows["total"]["change"]) == sum(Decimal(r["change"]) for k, r in rows.items() if k.startswith("mode:"))


def test_statement_explains_a_month(region):
    first = pq.read_table(region / "ltc_records.parquet").slice(0, 1).to_pylist()[0]
    month = first["srv_date"].strftime("%Y-%m")
    result = runner.invoke(app, ["ltc", "statement", "--data", str(region), "--psn", first["psn_no"], "--month", month,
                                 "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert Decimal(doc["fund_pay"]) + Decimal(doc["psn_pay"]) == Decimal(doc["ltc_sumamt"])
    assert len(doc["explanation"]) == len(doc["lines"])


def test_the_ltc_fund_stands_beside_the_pools(tmp_path):
    from yibao.fund.commands import open_table
    from yibao.ltc.fund import ltc_year

    con = duckdb.connect()
    pq.write_table(pa.Table.from_pylist([
        {"psn_no": "E1", "insutype": "310", "retiree": False, "categories": []},
        {"psn_no": "E2", "insutype": "310", "retiree": True, "categories": []},
        {"psn_no": "R1", "insutype": "390", "retiree": False, "categories": []}]), tmp_path / "persons.parquet")
    open_table(con, "persons", tmp_path / "persons.parquet")
    y = pa.decimal128(16, 2)
    con.register("ltc_settlements", pa.table({"month": ["2024-01", "2024-02"],
                                              "fund_pay": pa.array([Decimal("600.00"), Decimal("300.00")], y)}))
    year = ltc_year(con, PACK, 2024)
    # 2 employees × 6,000 × 0.5% = 60.00 a month; 1 resident × 100 a year (half subsidised)
    assert (year.income, year.expense) == (60 * 100 * 12 + 100 * 100, 90000)
    assert year.income_sources == {"employee": 72000, "resident_individual": 5000, "resident_subsidy": 5000}
    assert year.opening == 45000  # 6 months of 75.00
    assert year.closing == 45000 + 82000 - 90000
    assert str(year.months_of_payout) == "4.93" and year.level == "warning"


def test_due_lists_conclusions_ending_soon_and_refuses_a_bad_date(region):
    assessments = pq.read_table(region / "ltc_assessments.parquet").to_pylist()
    soon = sorted(a["end"] for a in assessments)[0]
    result = runner.invoke(app, ["ltc", "due", "--data", str(region), "--on", soon.isoformat(), "--within", "0"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    ending = {a["psn_no"] for a in assessments if a["end"] == soon}
    assert f"到期须重新评估: {len(ending):,} 人" in result.output
    assert all(p in result.output for p in ending)
    bad = runner.invoke(app, ["ltc", "due", "--data", str(region), "--on", "2024-02-30"])
    assert bad.exit_code == 2 and "LTC007" in bad.output
