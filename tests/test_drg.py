"""DRG grouping by the shipped illustrative table, and the CLI end to end on a synthetic region."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

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
    assert sum(Decimal(i["fund_paid"]) for i in doc["institutions"]) == Decimal(doc["fund_paid"])
    assert Decimal(doc["fund_paid"]) == Decimal(doc["total_due"]) + Decimal(doc["band_adjustment"]) \
        - Decimal(doc["others_paid"])
    r = runner.invoke(app, [kind, "settle", "-p", "shandong-2024", "--catalog", str(root / f"{kind}-cat"),
                            "--period", "2023", *src])
    assert r.exit_code == 2 and "PAY052" in r.output
    wrong = "drg" if kind == "dip" else "dip"
    r = runner.invoke(app, [wrong, "settle", "-p", "shandong-2024", "--catalog", str(root / f"{kind}-cat"),
                            "--period", "2024", *src])
    assert r.exit_code == 2 and "PAY042" in r.output


def test_drg_settlement_by_hand(tmp_path):
    """History 2023 (level 2, all-case average 16,000 / 4 = 4,000 元, scale 100):
    FR35 avg 2,000 → 50 points; FM15 avg 8,000 → 200; FR33 (CC E11) avg 4,000 → 100.

    2024: A: P1 FR35 2,000 (normal, 50) + P2 FM15 20,000 (high: [(20,000/8,000 − 2) + 1] × 200 = 300);
    B: P3 FR33 1,000 (low: 1,000/4,000 × 100 = 25) + P4 FR35 2,000 (normal, 50). Total 425 points.
    Others (30% of cost) 7,500; budget 13,750 → budget point value (13,750 + 7,500) / 425 = 50 元
    (< cost point value 25,000 / 425). Due A 17,500, B 3,750.
    A overspends 4,500: first 10% of due (1,750) shared 50% → +875.
    B saves 750: first 10% (375) kept, the rest kept at 50% → −187.50.
    Paid A 17,500 + 875 − 6,600 = 11,775; B 3,750 − 187.50 − 900 = 2,662.50;
    Σ paid 14,437.50 = budget 13,750 + adjustments 687.50.
    """
    from datetime import datetime

    import pyarrow.parquet as pq

    from yibao.payment.run import build_catalog, settle_period
    from yibao.policy.loader import resolve_pack
    from yibao.policy.model import DrgPayment, Payment, ShareBand

    def case(mdtrt_id, inst, oprn, sec, cost, year):
        cost = Decimal(cost)
        hifp = cost * Decimal("0.7")
        return {"mdtrt_id": mdtrt_id, "psn_no": "P" + mdtrt_id, "insutype": "390", "fixmedins_code": inst,
                "level": "2", "dise_codg": "I25.100", "oprn_oprt_code": oprn, "sec_dise_codg": sec,
                "medfee_sumamt": cost, "hifp_pay": hifp, "fund_pay_sumamt": hifp, "psn_part_amt": cost - hifp,
                "setl_time": datetime(year, 6, 1)}

    money = pa.decimal128(16, 2)
    schema = pa.schema([(c, pa.string()) for c in ("mdtrt_id", "psn_no", "insutype", "fixmedins_code", "level",
                                                   "dise_codg", "oprn_oprt_code", "sec_dise_codg")]
                       + [(c, money) for c in ("medfee_sumamt", "hifp_pay", "fund_pay_sumamt", "psn_part_amt")]
                       + [("setl_time", pa.timestamp("ms"))])
    rows = [case("H1", "A", None, None, "1000", 2023), case("H2", "B", None, None, "3000", 2023),
            case("H3", "A", "36.0700", None, "8000", 2023), case("H4", "B", None, "E11.900", "4000", 2023),
            case("P1", "A", None, None, "2000", 2024), case("P2", "A", "36.0700", None, "20000", 2024),
            case("P3", "B", None, "E11.900", "1000", 2024), case("P4", "B", None, None, "2000", 2024)]
    cases = tmp_path / "cases.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema), cases)
    params = DrgPayment(cap_at_cost=True, level_coefficients=False,
                        overspend_bands=[ShareBand(upto=Decimal("0.1"), share=Decimal("0.5")),
                                         ShareBand(share=Decimal(0))],
                        surplus_bands=[ShareBand(upto=Decimal("0.1"), share=Decimal(1)),
                                       ShareBand(share=Decimal("0.5"))])
    pack = resolve_pack("shandong-2024").model_copy(update={"payment": Payment(drg=params)})
    build_catalog(pack, "drg", tmp_path / "cat", {2023: 1}, cases=cases)
    con = duckdb.connect()
    result = settle_period(pack, "drg", tmp_path / "cat", "2024", None, budget=1_375_000, con=con, cases=cases)
    points = {r[0]: r[1:] for r in con.sql("SELECT mdtrt_id, group_code, deviation, points_e4 FROM points").fetchall()}
    assert points == {"P1": ("FR35", "normal", 500_000), "P2": ("FM15", "high", 3_000_000),
                      "P3": ("FR33", "low", 250_000), "P4": ("FR35", "normal", 500_000)}
    s = result.settlement
    assert s.total_points_e4 == 4_250_000 and s.total_others == 750_000 and s.total_cost == 2_500_000
    assert s.point_value == s.budget_point_value == Fraction(5_000)  # fen per point = 50 元
    got = {i.fixmedins_code: (i.points_e4, i.due, i.adjustment, i.others, i.paid, i.hifp) for i in s.institutions}
    assert got == {"A": (3_500_000, 1_750_000, 87_500, 660_000, 1_177_500, 1_540_000),
                   "B": (750_000, 375_000, -18_750, 90_000, 266_250, 210_000)}
    assert s.total_paid == 1_443_750 == s.budget + s.total_adjustment
    assert result.to_dict()["fund_paid"] == "14437.50"
