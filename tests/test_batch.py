"""Differential proof: the batch engine (the compiled kernel, fed by DuckDB or run inside Spark) settles exactly
like the scalar engine.

Random packs (the property-test strategy) and random visits of many persons over a year; every
setlinfo amount of every visit must agree to the fen. A mismatch prints the visit and the
scalar engine's explanation beside the batch row.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import Phase, given, settings

from conftest import sized
from strategies import valid_packs
from yibao.batch.duck import settle_visits
from yibao.batch.inputs import visits_in_query
from yibao.sql import ident
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.engine import settle_in_order
from yibao.settlement.model import SETLINFO_FIELDS, ClassifiedAmounts, Person, Visit
from yibao.settlement.statement import explain

DISEASES = ["I10", "E11.9", "N18.5", "J18.0", "C34.1", "K35", ""]


def random_region(pack: CompiledPack, visits: int, seed: int, offsite: bool = False, big: float = 0.0):
    """Persons and settleable visits (each visit matches a basic rule), as scalar objects and rows; ``offsite``:
    visits carry a random 异地就医 status (the optional claims column); ``big``: the share of visits with a bill of
    100,000–600,000 yuan in scope (annual and household caps bind). A pack with household caps: persons in
    households of one to four (every person has an hh_no, on the rows too)."""
    rng = random.Random(seed)
    year = pack.effective_from.year
    start = datetime.combine(pack.effective_from, datetime.min.time())
    span = max(1, (pack.effective_to - pack.effective_from).days + 1) * 24 * 60 - 1
    cats = sorted(pack.categories)
    insutypes = sorted({r.rule.insutype for r in pack.basic})
    persons: dict[str, Person] = {}
    rows = []
    has_full = any(c.full for c in pack.classes.values())  # a class without co-share: visits carry inscp_full
    for i in range(visits):
        pid = f"P{rng.randrange(max(1, visits // 5)):06d}"
        if pid not in persons:
            k = rng.choice([0, 0, 0, 1, 1, 2])
            persons[pid] = Person(pid, rng.choice(insutypes), frozenset(rng.sample(cats, min(k, len(cats)))),
                                  rng.random() < 0.3, age=rng.randrange(0, 101),
                                  hh_no=f"H{int(pid[1:]) // rng.randrange(1, 5):06d}" if pack.uses_households else None)
        person = persons[pid]
        rule = rng.choice([r for r in pack.basic if r.rule.insutype == person.insutype])
        levels = list(rule.by_level)
        dise = rng.choice(list(rule.diseases) or DISEASES)
        amounts = [int(rng.lognormvariate(8, 1.6)) if rng.random() < 0.6 else 0 for _ in range(3)]
        inscp = 0 if rng.random() < 0.03 else int(rng.lognormvariate(10.5, 1.9))
        if big and rng.random() < big:
            inscp = rng.randrange(10_000_000, 60_000_000)
        rows.append({
            "psn_no": pid, "yr": year, "setl_time": start + timedelta(minutes=rng.randrange(span)),
            "mdtrt_id": f"M{i:08d}", "insutype": person.insutype, "retiree": person.retiree, "age": person.age,
            **{f"cat_{ident(c)}": c in person.categories for c in cats},
            "med_type": rng.choice(rule.rule.med_types), "level": rng.choice(levels), "dise_codg": dise,
            "referral_from_level": rng.choice(levels) if rng.random() < 0.15 else None,
            "acct_balance": rng.choice([0, rng.randrange(1, 800_000)]),
            "fulamt": amounts[0], "overlmt": amounts[1], "pre": amounts[2], "inscp": min(inscp, 300_000_000),
        })
        if pack.uses_households:
            rows[-1]["hh_no"] = person.hh_no
        if offsite:
            rows[-1]["offsite_status"] = rng.choice(["local", "filed", "unfiled", None])
        if has_full:
            inscp = rows[-1]["inscp"]
            rows[-1]["inscp_full"] = rng.randrange(0, inscp + 1) if inscp and rng.random() < 0.4 else 0
    return persons, rows


def scalar_results(pack: CompiledPack, persons, rows):
    """The scalar engine on every visit in time order (persons, and households, do not interact otherwise):
    each visit on its person's — and household's — running accumulators."""
    ordered = sorted(rows, key=lambda r: (r["setl_time"], r["mdtrt_id"]))
    visits = [(r["psn_no"], Visit(r["mdtrt_id"], r["med_type"], r["level"], r["setl_time"].date(),
                                  dise_codg=r["dise_codg"], referral_from_level=r["referral_from_level"],
                                  acct_balance=r["acct_balance"], offsite_status=r.get("offsite_status") or "local",
                                  amounts=ClassifiedAmounts(r["fulamt"], r["overlmt"], r["pre"], r["inscp"],
                                                            r.get("inscp_full", 0))))
              for r in ordered]
    return {s.mdtrt_id: s for s in settle_in_order(pack, persons, visits)}


def assert_same(pack: CompiledPack, rows, batch: pa.Table, scalar) -> int:
    by_id = {r["mdtrt_id"]: r for r in rows}
    checked = 0
    for b in batch.to_pylist():
        s = scalar[b["mdtrt_id"]]
        expected = s.setlinfo.as_dict()
        got = {f: b[f] for f in SETLINFO_FIELDS}
        if got != expected:
            diff = {f: (expected[f], got[f]) for f in SETLINFO_FIELDS if expected[f] != got[f]}
            pytest.fail(
                f"visit {b['mdtrt_id']} differs (scalar, batch): {diff}\n"
                f"visit: {by_id[b['mdtrt_id']]}\nscalar explanation:\n" + "\n".join(explain(s, pack))
                + f"\nbatch row: {b}")
        assert b["inscp_psn_part"] == s.inscp_psn_part, b["mdtrt_id"]
        for d in s.setldetail:
            assert b[f"pay__{ident(d.rule_id)}"] == d.fund_payamt, (b["mdtrt_id"], d.rule_id)
        checked += 1
    return checked


@pytest.mark.parametrize("name", ["shandong-2024", "jishou-2022", "sichuan-county-2020", "shandong-2024-offsite",
                                  "shandong-2024-dbz", "shandong-2024-age", "shandong-2024-implant",
                                  "shandong-2024-groups", "shandong-2024-retiree", "shandong-2024-household"])
def test_duckdb_matches_scalar_on_shipped_packs(name):
    pack = CompiledPack(resolve_pack(name))
    persons, rows = random_region(pack, sized(10_000), seed=11, offsite=name.endswith("offsite"))
    batch = settle_visits(pack, pa.Table.from_pylist(rows))
    assert batch.num_rows == len(rows)
    assert assert_same(pack, rows, batch, scalar_results(pack, persons, rows)) == len(rows)
    if name.endswith("offsite"):  # the column is read: all-local settles to a different (larger) fund total
        local = settle_visits(pack, pa.Table.from_pylist([{**r, "offsite_status": "local"} for r in rows]))
        assert pc.sum(local.column("hifp_pay")).as_py() > pc.sum(batch.column("hifp_pay")).as_py()


def claims_relations(pack: CompiledPack, persons, rows, con) -> str:
    """The random region as a claims directory gives it (persons with their categories as a list, visits with yuan
    balances, the classified amounts by mdtrt_id), joined by the claims path's own query (``visits_in_query``: the
    categories become the kernel's bits on the persons, ``k_cats``); returns the view's name."""
    con.register("persons", pa.Table.from_pylist(
        [{"psn_no": p.psn_no, "insutype": p.insutype, "retiree": p.retiree, "age": p.age,
          "categories": sorted(p.categories), "hh_no": p.hh_no} for p in persons.values()],
        pa.schema([("psn_no", pa.string()), ("insutype", pa.string()), ("retiree", pa.bool_()), ("age", pa.int64()),
                   ("categories", pa.list_(pa.string())), ("hh_no", pa.string())])))
    con.register("visits", pa.Table.from_pylist(
        [{"psn_no": r["psn_no"], "mdtrt_id": r["mdtrt_id"], "setl_time": r["setl_time"], "med_type": r["med_type"],
          "level": r["level"], "dise_codg": r["dise_codg"], "referral_from_level": r["referral_from_level"],
          "acct_balance": Decimal(r["acct_balance"]) / 100, "hh_no": r.get("hh_no")} for r in rows],
        pa.schema([("psn_no", pa.string()), ("mdtrt_id", pa.string()), ("setl_time", pa.timestamp("us")),
                   ("med_type", pa.string()), ("level", pa.string()), ("dise_codg", pa.string()),
                   ("referral_from_level", pa.string()), ("acct_balance", pa.decimal128(16, 2)),
                   ("hh_no", pa.string())])))
    con.register("classified", pa.Table.from_pylist(
        [{"mdtrt_id": r["mdtrt_id"], "fulamt": r["fulamt"], "overlmt": r["overlmt"], "pre": r["pre"],
          "inscp": r["inscp"], "inscp_full": r.get("inscp_full", 0)} for r in rows]))
    con.sql(f"CREATE VIEW visits_in AS {visits_in_query(pack)}")
    return "visits_in"


@pytest.mark.parametrize("name", ["shandong-2024", "shandong-2024-groups", "shandong-2024-household"])
def test_claims_path_categories_settle_as_the_scalar_engine(name):
    """Persons' categories reach the kernel through the claims path (a list per person, made into bits before the
    join) exactly as the scalar engine reads them; the same visits given as cat_ columns settle the same."""
    pack = CompiledPack(resolve_pack(name))
    persons, rows = random_region(pack, sized(5_000), seed=5, big=0.2 if pack.uses_households else 0.0)
    assert sum(bool(p.categories) for p in persons.values()) > len(persons) // 4  # the categories are exercised
    con = duckdb.connect()
    source = claims_relations(pack, persons, rows, con)
    assert "k_cats" in con.sql(f"SELECT * FROM {source} LIMIT 0").columns
    batch = settle_visits(pack, source, con)
    assert assert_same(pack, rows, batch, scalar_results(pack, persons, rows)) == len(rows)
    assert batch.equals(settle_visits(pack, pa.Table.from_pylist(rows)).select(batch.column_names))


@pytest.mark.slow
@settings(max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # shrinking 12,500 visits is slow
@given(valid_packs())
def test_duckdb_matches_scalar_on_random_packs(data_and_pack):
    # 8 random packs × 12,500 visits: 100,000 visits settled by both engines, all equal
    _, model = data_and_pack
    pack = CompiledPack(model)
    persons, rows = random_region(pack, 12_500, seed=sum(map(ord, model.pack.id)))
    batch = settle_visits(pack, pa.Table.from_pylist(rows))
    assert assert_same(pack, rows, batch, scalar_results(pack, persons, rows)) == 12_500


def random_fee_lines(pack, n_visits: int, seed: int, extra_codes=("X1", "X2"), visit_id="V{}"):
    """Fee lines of ``n_visits`` visits (catalogue codes and unknown ones, own classes, fractional counts, a few
    preselfpay ratios) as claims rows, and each visit's lines as the scalar engine's FeeItems."""
    from yibao.settlement.model import FeeItem

    rng = random.Random(seed)
    codes = list(pack.catalog) + list(extra_codes)
    rows, visits = [], {}
    for v in range(n_visits):
        items = []
        for j in range(rng.randrange(1, 12)):
            code = rng.choice(codes)
            level = None if code in pack.catalog and rng.random() < 0.7 else rng.choice(sorted(pack.classes))
            cnt = rng.choice([Decimal(1), Decimal(2), Decimal("0.5"), Decimal("3.25"), Decimal(10)])
            fee = rng.randrange(0, 500_000)
            ratio = Decimal("0.15") if rng.random() < 0.1 else None
            items.append(FeeItem(f"{v}-{j}", code, fee, cnt, None, level, ratio))
            rows.append({"mdtrt_id": visit_id.format(v), "feedetl_sn": f"{v}-{j}", "med_list_codg": code,
                         "chrgitm_lv": level, "cnt": cnt, "det_item_fee_sumamt": Decimal(fee) / 100,
                         "preselfpay_ratio": ratio})
        visits[visit_id.format(v)] = tuple(items)
    return rows, visits


@pytest.mark.parametrize("name", ["shandong-2024", "shandong-2024-implant"])
def test_batch_classification_equals_scalar_classification(name):
    import duckdb

    from yibao.batch.inputs import classification_query, pack_tables
    from yibao.settlement.classify import classify_items

    pack = CompiledPack(resolve_pack(name))
    rows, visits = random_fee_lines(pack, 2_000, seed=5, extra_codes=("X1", "X2", "X3"))
    con = duckdb.connect()
    for name, table in pack_tables(pack).items():
        con.register(name, table)
    schema = pa.schema([("mdtrt_id", pa.string()), ("feedetl_sn", pa.string()), ("med_list_codg", pa.string()),
                        ("chrgitm_lv", pa.string()), ("cnt", pa.decimal128(16, 4)),
                        ("det_item_fee_sumamt", pa.decimal128(16, 2)), ("preselfpay_ratio", pa.decimal128(6, 4))])
    con.register("fee_items", pa.Table.from_pylist(rows, schema))
    got = {r[0]: r[1:5] + r[7:8] for r in con.sql(classification_query()).fetchall()}
    for mdtrt_id, items in visits.items():
        c = classify_items(pack, items)
        assert got[mdtrt_id] == (c.fulamt_ownpay_amt, c.overlmt_selfpay, c.preselfpay_amt, c.inscp_scp_amt,
                                 c.inscp_full), mdtrt_id
    if any(r.full for r in pack.classes.values()):
        assert sum(g[4] for g in got.values()) > 0  # the co-share-free amount was exercised


@pytest.fixture(scope="module")
def spark():
    from yibao.batch.spark import spark_session

    session = spark_session()
    yield session
    session.stop()


@pytest.mark.parametrize("name", ["shandong-2024", "sichuan-county-2020", "shandong-2024-offsite", "shandong-2024-dbz",
                                  "shandong-2024-age", "shandong-2024-implant", "shandong-2024-groups",
                                  "shandong-2024-household"])
def test_spark_matches_duckdb_and_scalar(spark, name):
    from yibao.batch.spark import settle_visits as spark_settle

    pack = CompiledPack(resolve_pack(name))
    persons, rows = random_region(pack, 2_000, seed=3, offsite=name.endswith("offsite"),
                                  big=0.2 if pack.uses_households else 0.0)
    table = pa.Table.from_pylist(rows)
    on_spark = spark_settle(spark, pack, table)
    on_duck = settle_visits(pack, table)
    cols = [c for c in on_duck.column_names if c != "setl_time"]
    assert on_spark.select(cols).to_pylist() == on_duck.select(cols).to_pylist()
    assert assert_same(pack, rows, on_spark, scalar_results(pack, persons, rows)) == len(rows)


