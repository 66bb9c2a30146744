"""经办 facts in batch settlement (issue 16): a claims directory carrying the store's export of 门诊慢特病
certifications and 异地就医备案 (`yibao handling facts-export`) settles each visit as the service does online —
the med_type by the certification valid on the settlement day, the 异地 status by the filings valid on the start
day — by the same definitions (handling.effects): batch with the facts = batch given the Python-derived
med_type and offsite_status, to the fen."""

from __future__ import annotations

import random
from datetime import date, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from yibao.cli import app
from yibao.handling.effects import ORDINARY_OUTPATIENT, same_area, same_area_sql
from yibao.handling.effects import FACTS_SCHEMA

runner = CliRunner()
PACK = "shandong-2024-offsite"  # 异地 points, and 门诊慢特病 needs a certification (uncertified: ordinary outpatient)


def test_same_area_sql_is_same_area():
    codes = ["370000", "370100", "370102", "370200", "370203", "110000", "110105", "110100"]
    con = duckdb.connect()
    pairs = [(f, a) for f in codes for a in codes]
    got = con.sql("SELECT " + ", ".join(same_area_sql(f"'{f}'", f"'{a}'") for f, a in pairs)).fetchone()
    assert list(got) == [same_area(f, a) for f, a in pairs]


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    root = tmp_path_factory.mktemp("handling")
    region = root / "region"
    assert runner.invoke(app, ["synth", "-p", PACK, "-n", "600", "-o", str(region)]).exit_code == 0
    rng = random.Random(5)
    persons = pq.read_table(region / "persons.parquet").column("psn_no").to_pylist()
    cities = sorted({a[:4] + "00" for a in pq.read_table(region / "institutions.parquet").column("admdvs").to_pylist()})
    facts = []
    for p in persons:
        if rng.random() < 0.4:  # a certification, valid for part of the year
            start = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 200))
            facts.append({"psn_no": p, "kind": "chronic", "code": "MTB001", "valid_from": start,
                          "valid_to": start + timedelta(days=rng.randrange(30, 300)), "mdtrt_admdvs": None})
        if rng.random() < 0.4:  # a 备案 to a city or the whole province
            start = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 200))
            facts.append({"psn_no": p, "kind": "offsite_filing", "code": "long_term",
                          "valid_from": start, "valid_to": start + timedelta(days=rng.randrange(30, 300)),
                          "mdtrt_admdvs": rng.choice(cities + ["370000"])})
    pq.write_table(pa.Table.from_pylist(facts, FACTS_SCHEMA), region / "handling_facts.parquet")
    return region, facts


def _settle(claims, out):
    result = runner.invoke(app, ["batch", "settle", "--claims", str(claims), "--policy", PACK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return {r["mdtrt_id"]: r for r in pq.read_table(out / "setlinfo.parquet").to_pylist()}


def test_batch_with_facts_equals_batch_given_the_online_derivation(region, tmp_path):
    claims, facts = region
    with_facts = _settle(claims, tmp_path / "facts")
    said = runner.invoke(app, ["batch", "settle", "--claims", str(claims), "--policy", PACK, "--out", str(tmp_path / "f2")])
    summary = " ".join(said.output.split())
    # derive med_type and offsite_status in Python, by the online rules, and hand them over explicitly
    visits = pq.read_table(claims / "visits.parquet")
    area = dict(zip(*[pq.read_table(claims / "institutions.parquet").column(c).to_pylist()
                      for c in ("fixmedins_code", "admdvs")]))
    home = dict(zip(*[pq.read_table(claims / "persons.parquet").column(c).to_pylist() for c in ("psn_no", "admdvs")]))

    def valid(f, kind, psn, on):
        return f["kind"] == kind and f["psn_no"] == psn and f["valid_from"] <= on <= f["valid_to"]

    rows = visits.to_pylist()
    changed = statuses = 0
    for r in rows:
        if r["med_type"] == "14" and not any(valid(f, "chronic", r["psn_no"], r["setl_time"].date()) for f in facts):
            r["med_type"] = ORDINARY_OUTPATIENT
            changed += 1
        mdtrt = area[r["fixmedins_code"]]
        if home[r["psn_no"]][:4] == mdtrt[:4]:
            r["offsite_status"] = "local"
        elif any(valid(f, "offsite_filing", r["psn_no"], r["begntime"].date()) and same_area(f["mdtrt_admdvs"], mdtrt)
                 for f in facts):
            r["offsite_status"] = "filed"
        else:
            r["offsite_status"] = "unfiled"
        statuses += r["offsite_status"] != "local"
    assert changed and statuses  # the facts matter in this region
    assert f"{changed:,} 次门诊慢特病就诊在结算日没有有效认定, 按普通门诊结算 (HDL061)" in summary
    counted = {s: sum(r["offsite_status"] == s for r in rows) for s in ("filed", "unfiled")}
    assert f"异地已备案 {counted['filed']:,} 次" in summary and f"异地未备案 {counted['unfiled']:,} 次" in summary
    given = tmp_path / "given"
    given.mkdir()
    for name in ("persons", "institutions", "fee_items"):
        (given / f"{name}.parquet").write_bytes((claims / f"{name}.parquet").read_bytes())
    pq.write_table(pa.Table.from_pylist(rows, visits.schema.append(pa.field("offsite_status", pa.string()))),
                   given / "visits.parquet")
    explicit = _settle(given, tmp_path / "explicit")
    assert with_facts == explicit
    # and the facts changed the money: without them every visit is local and keeps its med_type
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("persons", "institutions", "fee_items", "visits"):
        (plain / f"{name}.parquet").write_bytes((claims / f"{name}.parquet").read_bytes())
    without = _settle(plain, tmp_path / "without")
    assert sum(r["hifp_pay"] for r in without.values()) > sum(r["hifp_pay"] for r in with_facts.values())


def test_a_facts_file_without_its_columns_is_refused(region, tmp_path):
    claims, _ = region
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("persons", "institutions", "fee_items", "visits"):
        (broken / f"{name}.parquet").write_bytes((claims / f"{name}.parquet").read_bytes())
    pq.write_table(pa.table({"psn_no": ["P1"], "kind": ["chronic"]}), broken / "handling_facts.parquet")
    result = runner.invoke(app, ["batch", "settle", "--claims", str(broken), "--policy", PACK, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "BAT016" in result.output and "handling_facts.valid_from" in result.output


def test_a_pack_that_refuses_uncertified_chronic_visits_refuses_the_batch(region, tmp_path):
    claims, _ = region
    pack = tmp_path / "refuse.yaml"
    pack.write_text("extends: shandong-2024-offsite\npack: {id: refuse-uncertified}\n"
                    "handling: {uncertified_chronic: refuse}\n", encoding="utf-8")
    result = runner.invoke(app, ["batch", "settle", "--claims", str(claims), "--policy", str(pack),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "BAT015" in result.output
    assert not (tmp_path / "o" / "setlinfo.parquet").exists()


def test_facts_export_writes_what_settlement_reads(store_url, tmp_path):
    from datetime import datetime

    from sqlalchemy.orm import Session

    from yibao.handling.models import HdFact
    from yibao.store.database import make_engine

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        for kind, code, detail in (("chronic", "MTB001", {}), ("offsite_filing", "long_term", {"mdtrt_admdvs": "370200"}),
                                   ("assistance", "illness_poverty", {})):  # the last: not read by settlement
            s.add(HdFact(psn_no="P1", kind=kind, code=code, valid_from=date(2024, 1, 1), valid_to=date(2024, 6, 30),
                         detail=detail, case_no="C1", recorded_by="t", recorded_at=datetime(2024, 1, 1)))
    out = tmp_path / "claims" / "handling_facts.parquet"
    result = runner.invoke(app, ["handling", "facts-export", "--out", str(out), "--url", store_url])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert [(r["kind"], r["code"], r["mdtrt_admdvs"]) for r in rows] == [
        ("chronic", "MTB001", None), ("offsite_filing", "long_term", "370200")]
    assert pq.read_schema(out).equals(FACTS_SCHEMA)
    denied = runner.invoke(app, ["handling", "facts-export", "--out", str(out), "--url", store_url, "--role", "institution"])
    assert denied.exit_code == 2
    engine.dispose()
