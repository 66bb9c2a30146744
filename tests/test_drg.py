"""DRG grouping by the shipped illustrative table, and the CLI end to end on a synthetic region."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from yibao.cli import app
from yibao.payment import drg

runner = CliRunner()


@pytest.mark.parametrize("dise, procs, secondary, expected", [
    ("I25.100", ["36.0700"], [], "FM15"),          # surgical ADRG before the medical one, no CC
    ("I25.100", ["36.0700"], ["E11.900"], "FM13"),  # CC from a secondary diagnosis
    ("I25.100", [], ["E11.900", "J96.000"], "FR31"),  # medical; MCC outranks CC
    ("I25.100", ["88.5501"], [], "FR35"),          # a procedure no surgical ADRG lists: medical ADRG
    ("H25.900", ["13.4100"], ["A41.900"], "CB39"),  # not split: 9 whatever the complications
    ("C34.900", [], [], "ER15"),                   # C34 belongs to MDCE by its own prefix
    ("Z00.000", [], [], None),                     # no MDC takes it: excluded at settlement (PAY030)
])
def test_grouping_by_table(dise, procs, secondary, expected):
    con = duckdb.connect()
    for name, arrow in drg.table_arrow(drg.load_table()).items():
        con.register(name, arrow)
    con.register("src", pa.Table.from_pylist([{"mdtrt_id": "V1", "dise_codg": dise}]))
    con.register("p", pa.Table.from_pylist([{"mdtrt_id": "V1", "code": c} for c in procs],
                                           pa.schema([("mdtrt_id", pa.string()), ("code", pa.string())])))
    con.register("s", pa.Table.from_pylist([{"mdtrt_id": "V1", "code": c} for c in secondary],
                                           pa.schema([("mdtrt_id", pa.string()), ("code", pa.string())])))
    assert con.sql(f"SELECT group_code FROM ({drg.grouping_sql('src', 'p', 's')})").fetchone()[0] == expected


def test_table_format_errors_name_the_field(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("table: {id: x, version: '1', name: x}\nmdcs:\n  - {code: MDCX, name: x, diagnoses: [A], "
                   "adrgs: [{code: bad code, name: y}]}\n", encoding="utf-8")
    result = runner.invoke(app, ["drg", "table", str(bad)])
    assert result.exit_code == 2 and "PAY071" in result.output and "mdcs[0].adrgs[0].code" in result.output


@pytest.fixture(scope="module")
def settled_region(tmp_path_factory):
    root = tmp_path_factory.mktemp("region")
    assert runner.invoke(app, ["synth", "-p", "shandong-2024", "-n", "3000", "-o", str(root / "claims")]).exit_code == 0
    r = runner.invoke(app, ["batch", "settle", "-c", str(root / "claims"), "-p", "shandong-2024", "-o", str(root / "settled")])
    assert r.exit_code == 0, r.output
    return root


@pytest.mark.parametrize("kind", ["dip", "drg"])
def test_build_and_settle_from_claims(settled_region, kind):
    root = settled_region
    src = ["-c", str(root / "claims"), "-s", str(root / "settled")]
    r = runner.invoke(app, [kind, "build", "-p", "shandong-2024", "-o", str(root / f"{kind}-cat"), *src])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [kind, "settle", "-p", "shandong-2024", "--catalog", str(root / f"{kind}-cat"),
                            "--period", "2024", "--json", *src])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["cases"]["settled"] + doc["cases"]["excluded"] == doc["cases"]["in_period"] > 0
    # the pack's budget is 98% of item-by-item pool payments; bands are applied on top
    paid = sum(float(i["fund_paid"]) for i in doc["institutions"])
    assert abs(paid - float(doc["fund_paid"])) < 0.005
    r = runner.invoke(app, [kind, "settle", "-p", "shandong-2024", "--catalog", str(root / f"{kind}-cat"),
                            "--period", "2023", *src])
    assert r.exit_code == 2 and "PAY052" in r.output
    wrong = "drg" if kind == "dip" else "dip"
    r = runner.invoke(app, [wrong, "settle", "-p", "shandong-2024", "--catalog", str(root / f"{kind}-cat"),
                            "--period", "2024", *src])
    assert r.exit_code == 2 and "PAY042" in r.output
