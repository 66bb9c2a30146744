"""DIP on a hand-computed region: groups, scores, level coefficients, deviation, points, exclusions.

History (2023), min_cases 2, scale 1000; all-case average = 48,000 / 8 = 6,000.00 元:

| case | diagnosis | operations | level | cost | group |
| --- | --- | --- | --- | ---: | --- |
| A1, A2 | K80.100 | 51.2301 | 3 | 10,000 / 14,000 | core K80.100|51.2301 (avg 10,000, score 1666.6667) |
| A3 | K80.100 | 51.2301 | 2 | 6,000 | same |
| B1, B2 | J18.900 | — | 2 / 1 | 3,000 / 1,000 | core J18.900|- (avg 2,000, score 333.3333) |
| C1 | J18.000 | — | 2 | 2,000 | comprehensive ZH|J18|0 (avg 3,000, score 500.0000) |
| E1 | J18.100 | — | 1 | 4,000 | same |
| D1 | K80.000 | 51.2201 | 3 | 8,000 | comprehensive ZH|K80|3 (avg 8,000, score 1333.3333) |

Level coefficients = level's cost / the same cases at group averages:
L3 32,000 / 28,000 = 1.1429; L2 11,000 / 15,000 = 0.7333; L1 5,000 / 5,000 = 1.0000.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from yibao.payment.run import build_catalog, connect, settle_period
from yibao.policy.loader import resolve_pack
from yibao.policy.model import DipPayment, Payment, ShareBand

SCHEMA = pa.schema([("mdtrt_id", pa.string()), ("psn_no", pa.string()), ("insutype", pa.string()),
                    ("fixmedins_code", pa.string()), ("level", pa.string()), ("dise_codg", pa.string()),
                    ("oprn_oprt_code", pa.string()), ("medfee_sumamt", pa.decimal128(16, 2)),
                    ("hifp_pay", pa.decimal128(16, 2)), ("fund_pay_sumamt", pa.decimal128(16, 2)),
                    ("psn_part_amt", pa.decimal128(16, 2)), ("setl_time", pa.timestamp("ms"))])


def row(mdtrt_id, inst, level, dise, oprn, cost, year=2023, hifp_share="0.7"):
    from datetime import datetime

    cost = Decimal(cost)
    hifp = (cost * Decimal(hifp_share)).quantize(Decimal("0.01"))
    return {"mdtrt_id": mdtrt_id, "psn_no": "P" + mdtrt_id, "insutype": "390", "fixmedins_code": inst,
            "level": level, "dise_codg": dise, "oprn_oprt_code": oprn, "medfee_sumamt": cost, "hifp_pay": hifp,
            "fund_pay_sumamt": hifp, "psn_part_amt": cost - hifp, "setl_time": datetime(year, 6, 1)}


HISTORY = [
    row("A1", "H1", "3", "K80.100", "51.2301", "10000"),
    row("A2", "H1", "3", "K80.100", "51.2301", "14000"),
    row("A3", "H3", "2", "K80.100", "51.2301", "6000"),
    row("B1", "H3", "2", "J18.900", None, "3000"),
    row("B2", "H2", "1", "J18.900", None, "1000"),
    row("C1", "H3", "2", "J18.000", "", "2000"),
    row("E1", "H2", "1", "J18.100", None, "4000"),
    row("D1", "H1", "3", "K80.000", "51.2201", "8000"),
]
PERIOD = [
    row("S1", "H1", "3", "K80.100", "51.2301", "12000", 2024),
    row("S2", "H1", "3", "k80.100 ", "51.2301", "30000", 2024),  # trimmed and upper-cased
    row("S3", "H2", "1", "J18.900", None, "400", 2024),
    row("S4", "H3", "2", "J18.200", None, "2000", 2024),
    row("S5", "H3", "2", "123", None, "2000", 2024),
    row("S6", "H3", "2", None, None, "2000", 2024),
    {**row("S7", "H3", "2", "J18.900", None, "0", 2024)},
    row("S8", "H3", "2", "A09.900", None, "900", 2024),
    row("S9", "H2", "1", "K80.000", "51.2201", "8000", 2024),
    row("S10", "H2", "1", "K80.000", "51.2201+5122", "8000", 2024),
]


def write_cases(path: Path, rows) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, SCHEMA), path)
    return path


def pack_with(**dip):
    base = resolve_pack("shandong-2024")
    return base.model_copy(update={"payment": Payment(dip=DipPayment(min_cases=2, **dip))})


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    root = tmp_path_factory.mktemp("dip")
    cases = write_cases(root / "cases.parquet", HISTORY + PERIOD)
    manifest = build_catalog(pack_with(), "dip", root / "catalog", {2023: 1}, cases=cases)
    return root, cases, manifest


def test_catalog_groups_scores_and_level_coefficients(region):
    root, _cases, manifest = region
    con = connect()
    groups = {r[0]: r[1:] for r in con.sql(
        f"SELECT group_code, group_kind, cases, avg_cost, score_e4 FROM '{root}/catalog/groups.parquet'").fetchall()}
    assert groups == {
        "K80.100|51.2301": ("core", 3, 1_000_000, 16_666_667),
        "J18.900|-": ("core", 2, 200_000, 3_333_333),
        "ZH|J18|0": ("comprehensive", 2, 300_000, 5_000_000),
        "ZH|K80|3": ("comprehensive", 1, 800_000, 13_333_333),
    }
    levels = dict(con.sql(f"SELECT level, coeff_e4 FROM '{root}/catalog/levels.parquet'").fetchall())
    assert levels == {"3": 11_429, "2": 7_333, "1": 10_000}
    assert manifest["avg_cost_all_fen"] == 600_000 and manifest["cases"] == 8
    assert manifest["version"].startswith("dip-2023-")
    assert (root / "catalog" / "catalog.md").read_text(encoding="utf-8").count("| ZH|") == 2


def test_catalog_version_is_reproducible(region, tmp_path):
    root, cases, manifest = region
    again = build_catalog(pack_with(), "dip", tmp_path / "c", {2023: 1}, cases=cases)
    assert again["version"] == manifest["version"]
    other = build_catalog(pack_with(scale=Decimal(100)), "dip", tmp_path / "d", {2023: 1}, cases=cases)
    assert other["version"] != manifest["version"]


def test_settlement_points_deviation_and_exclusions(region, tmp_path):
    root, cases, _ = region
    con = connect()
    result = settle_period(pack_with(), "dip", root / "catalog", "2024", tmp_path / "out", budget=3_000_000,
                           con=con, cases=cases)
    got = {r[0]: r[1:] for r in con.sql(
        "SELECT mdtrt_id, group_code, deviation, ref_cost, points_e4 FROM points").fetchall()}
    assert got == {
        # 1666.6667 × 1.1429 = 1904.83337… → 1904.8334
        "S1": ("K80.100|51.2301", "normal", 1_200_000, 19_048_334),
        # 30,000 > 2 × 12,000: [(30,000/12,000 − 2) + 1] × 1666.6667 = 2500.00005 → 2500.0001
        "S2": ("K80.100|51.2301", "high", 1_200_000, 25_000_001),
        # 400 < 0.5 × 1,000: 400/1,000 × 333.3333 = 133.33332 → 133.3333
        "S3": ("J18.900|-", "low", 100_000, 1_333_333),
        # J18.200 is no core group: comprehensive J18 conservative; 500 × 0.7333 = 366.65
        "S4": ("ZH|J18|0", "normal", 200_000, 3_666_500),
        # level 1 has no K80 comprehensive history: the group's own average is the reference
        "S9": ("ZH|K80|3", "normal", 800_000, 13_333_333),
    }
    excluded = {r[0]: r[1] for r in con.sql("SELECT mdtrt_id, reason FROM cases_all WHERE year = 2024 "
                                            "AND reason IS NOT NULL").fetchall()}
    assert excluded == {"S5": "PAY011", "S6": "PAY010", "S7": "PAY013", "S8": "PAY030", "S10": "PAY012"}
    assert result.counts == {"in_period": 10, "settled": 5, "excluded": 5}
    csv_text = (tmp_path / "out" / "exclusions.csv").read_text(encoding="utf-8-sig")
    assert all(f"S{i}," in csv_text for i in (5, 6, 7, 8, 10))

    s = result.settlement
    assert s.total_points_e4 == 62_381_501
    by_code = {i.fixmedins_code: i for i in s.institutions}
    assert by_code["H1"].points_e4 == 44_048_335 and by_code["H2"].points_e4 == 14_666_666
    # others = 30% of each case's cost: 3,600 + 9,000 + 120 + 600 + 2,400 = 15,720.00 元
    assert s.total_others == 1_572_000
    # budget point value = (30,000 + 15,720) / 6238.1501 元 < cost point value 52,400 / 6238.1501
    assert s.point_value == s.budget_point_value < s.cost_point_value
    assert s.total_due == 3_000_000 + 1_572_000  # to the fen
    assert s.total_paid == 3_000_000


def test_budget_from_pack_and_missing_budget(region):
    from yibao.payment.cases import PaymentError
    from yibao.policy.model import BudgetShare

    root, cases, _ = region
    with pytest.raises(PaymentError) as err:
        settle_period(pack_with(), "dip", root / "catalog", "2024", None, cases=cases)
    assert err.value.problems[0].code == "PAY050"
    # budget = 0.9 × item-by-item pool payments 8,400 + 21,000 + 280 + 1,400 + 5,600 = 36,680 → 33,012.00
    result = settle_period(pack_with(budgets={"2024": BudgetShare(hifp_share=Decimal("0.9"))}), "dip",
                           root / "catalog", "2024", None, cases=cases)
    assert result.settlement.budget == 3_301_200 and result.budget_source.endswith("2024")
    with pytest.raises(PaymentError) as err:
        settle_period(pack_with(), "dip", root / "catalog", "2025", None, cases=cases, budget=1)
    assert err.value.problems[0].code == "PAY052"


def test_cap_at_cost_and_bands(region):
    root, cases, _ = region
    # a budget far above cost: the settlement point value falls back to the cost point value
    result = settle_period(pack_with(), "dip", root / "catalog", "2024", None, cases=cases, budget=10_000_000)
    s = result.settlement
    assert s.point_value == s.cost_point_value and s.total_due == 5_240_000
    loose = settle_period(pack_with(cap_at_cost=False), "dip", root / "catalog", "2024", None, cases=cases,
                          budget=10_000_000)
    assert loose.settlement.total_paid == 10_000_000
    banded = settle_period(pack_with(cap_at_cost=False, surplus_bands=[ShareBand(upto=Decimal("0.1"), share=Decimal(1)),
                                                                       ShareBand(share=Decimal("0.5"))]),
                           "dip", root / "catalog", "2024", None, cases=cases, budget=10_000_000)
    for inst, plain in zip(banded.settlement.institutions, loose.settlement.institutions):
        assert inst.due == plain.due
        if inst.cost < inst.due:
            assert inst.adjustment < 0 and inst.paid == inst.due + inst.adjustment - inst.others


def test_bad_cases_file_is_refused(tmp_path):
    from yibao.payment.cases import PaymentError

    bad = pa.Table.from_pylist([{"mdtrt_id": "X", "medfee_sumamt": 1.5}])
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(PaymentError) as err:
        build_catalog(pack_with(), "dip", tmp_path / "c", {}, cases=tmp_path / "bad.parquet")
    assert err.value.problems[0].code == "PAY002"
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_paths_with_single_quotes(tmp_path):
    """Directory and file names are SQL string literals: a quote in them must not break the SQL."""
    import csv

    from yibao.payment.cases import load_cases

    root = tmp_path / "q'x"
    root.mkdir()
    cases = write_cases(root / "it's.parquet", HISTORY + PERIOD)
    build_catalog(pack_with(), "dip", root / "cat'alog", {2023: 1}, cases=cases)
    result = settle_period(pack_with(), "dip", root / "cat'alog", "2024", root / "o'ut", budget=3_000_000, cases=cases)
    assert result.counts["settled"] == 5 and (root / "o'ut" / "cases.parquet").exists()
    text = root / "it's.csv"
    with text.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SCHEMA.names)
        writer.writeheader()
        writer.writerows(PERIOD)
    assert load_cases(connect(), ["1", "2", "3"], cases=text) == {"cases": 10, "excluded": 4}  # S8 (PAY030) only at settlement
    # claims directory + batch output directory, both with quotes
    visits = pa.Table.from_pylist([{**{k: v for k, v in r.items() if k in ("mdtrt_id", "psn_no", "insutype",
                                   "fixmedins_code", "level", "dise_codg", "oprn_oprt_code", "medfee_sumamt",
                                   "setl_time")}, "med_type": "21"} for r in PERIOD[:3]])
    setl = pa.Table.from_pylist([{k: r[k] for k in ("mdtrt_id", "hifp_pay", "fund_pay_sumamt", "psn_part_amt")}
                                 for r in PERIOD[:3]])
    (root / "cl'aims").mkdir()
    (root / "sett'led").mkdir()
    pq.write_table(visits, root / "cl'aims" / "visits.parquet")
    pq.write_table(setl, root / "sett'led" / "setlinfo.parquet")
    assert load_cases(connect(), ["1", "2", "3"], claims=root / "cl'aims", settled=root / "sett'led") == \
        {"cases": 3, "excluded": 0}


def test_moves_csv_amounts_are_exact_decimals(region, tmp_path):
    import csv

    from yibao.payment.settlement import _scaled

    root, cases, _ = region
    settle_period(pack_with(), "dip", root / "catalog", "2024", tmp_path / "out", budget=3_000_000, cases=cases)
    with (tmp_path / "out" / "moves.csv").open(encoding="utf-8") as fh:
        moves = {r["mdtrt_id"]: (r["medfee_sumamt"], r["ref_avg_cost"], r["points"]) for r in csv.DictReader(fh)}
    assert moves == {"S2": ("30000.00", "12000.00", "2500.0001"), "S3": ("400.00", "1000.00", "133.3333"),
                     "S4": ("2000.00", "2000.00", "366.6500"), "S9": ("8000.00", "8000.00", "1333.3333")}
    # beyond 2⁵³ a float division drops the last digit; the decimal text keeps it
    big = 2**53 + 1
    assert connect().sql(f"SELECT {_scaled('x', 4)}, {_scaled('x', 2)} FROM (SELECT {big}::BIGINT AS x)").fetchone() == \
        ("900719925474.0993", "90071992547409.93")
