"""The synthetic region generator and the claims contract it writes (docs/claims-schema.md)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from yibao.claims.schema import (
    SCHEMAS, ClaimsError, check_tables, decimal_array, decimal_units, read_claims, text_table,
    validate_claims, write_claims_csv,
)
from yibao.cli import app
from yibao.policy.loader import resolve_pack, shipped_pack_names
from yibao.synth import SynthError, generate, write_region
from yibao.synth.ids import check_digit_ok
from yibao.synth.profiles import category_profile

PERSONS = 2000
runner = CliRunner()


@pytest.fixture(scope="module")
def pack():
    return resolve_pack("shandong-2024")


@pytest.fixture(scope="module")
def tables(pack):
    return generate(pack, persons=PERSONS, seed=11)


@pytest.fixture(scope="module")
def region(tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("region")
    write_region(tables, out)
    return out


def rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def yuan(units: int) -> Decimal:
    return Decimal(units).scaleb(-2)


# --- determinism --------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_files(pack, tmp_path):
    a = generate(pack, persons=600, seed=3)
    b = generate(pack, persons=600, seed=3)
    for name in SCHEMAS:
        assert a[name].equals(b[name], check_metadata=True), name
    write_region(a, tmp_path / "a")
    write_region(b, tmp_path / "b")
    for name in SCHEMAS:
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes()


def test_different_seed_gives_different_tables(pack):
    a = generate(pack, persons=600, seed=3)
    c = generate(pack, persons=600, seed=4)
    for name in ("persons", "visits", "fee_items"):
        assert not a[name].equals(c[name]), name


def test_large_regions_are_generated_in_blocks(pack, tmp_path, monkeypatch):
    import yibao.synth.region as region_module

    monkeypatch.setattr(region_module, "BLOCK_PERSONS", 700)
    tables = generate(pack, persons=2000, seed=8)  # blocks of 700, 700 and 600 persons
    assert check_tables(tables, pack).ok
    persons = tables["persons"]
    assert persons["psn_no"].to_pylist()[::700] == ["P000000001", "P000000701", "P000001401"]
    assert pc.count_distinct(persons["certno"]).as_py() == 2000
    blocks_of = defaultdict(set)  # a household never spans two blocks
    for i, hh in enumerate(persons["hh_no"].to_pylist()):
        blocks_of[hh].add(i // 700)
    assert all(len(b) == 1 for b in blocks_of.values())
    written = region_module.generate_to(pack, tmp_path, persons=2000, seed=8)
    assert {name: rows for name, (_, rows) in written.items() if name in tables} == {k: t.num_rows for k, t in tables.items()}
    for name in SCHEMAS:
        assert pq.read_table(tmp_path / f"{name}.parquet").equals(tables[name]), name
    assert not list(tmp_path.glob(".*.tmp"))


def test_metadata_records_pack_seed_and_year(region):
    meta = pq.read_schema(region / "visits.parquet").metadata[b"yibao.synth"].decode()
    assert '"pack": "shandong-2024"' in meta and '"seed": 11' in meta and '"year": 2024' in meta


# --- schema -------------------------------------------------------------------------------


def test_tables_have_exactly_the_contract_schema(tables, region):
    for name, schema in SCHEMAS.items():
        assert tables[name].schema.equals(schema), name
        on_disk = pq.read_table(region / f"{name}.parquet")
        assert on_disk.schema.equals(schema), name
        assert [f.nullable for f in on_disk.schema] == [f.nullable for f in schema], name


def test_generated_region_passes_validation(pack, tables, region):
    report = validate_claims(region, pack)
    assert report.ok, report.render()
    assert report.rows == {name: tables[name].num_rows for name in SCHEMAS}
    assert check_tables(tables, pack).ok
    back = read_claims(region, pack)
    for name in SCHEMAS:
        assert back[name].equals(tables[name]), name


def test_every_column_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "claims-schema.md").read_text(encoding="utf-8")
    for name, schema in SCHEMAS.items():
        assert f"`{name}`" in doc
        for f in schema:
            assert f"| `{f.name}` |" in doc, f"{name}.{f.name}"
    for code in ("CLM001", "CLM010", "CLM011", "CLM020", "CLM030", "CLM031", "CLM040", "CLM041", "CLM050"):
        assert f"`{code}`" in doc


def test_decimal_units_round_trip():
    units = np.array([0, 1, -1, 123456789012345, -(10**15)], dtype=np.int64)
    arr = decimal_array(units)
    assert arr.to_pylist() == [yuan(int(u)) for u in units]
    assert decimal_units(arr).tolist() == units.tolist()
    assert decimal_units(arr.slice(2, 2)).tolist() == [-1, 123456789012345]
    with_null = pa.array([Decimal("1.50"), None], pa.decimal128(16, 2))
    assert decimal_units(with_null).tolist() == [150, 0]


# --- invariants ---------------------------------------------------------------------------


def test_amounts_add_up_exactly(tables):
    items, visits = tables["fee_items"], tables["visits"]
    for pric, cnt, det in zip(items["pric"].to_pylist(), items["cnt"].to_pylist(),
                              items["det_item_fee_sumamt"].to_pylist()):
        assert det == (pric * cnt).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert det >= 0 and pric > 0 and cnt > 0
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for m, det in zip(items["mdtrt_id"].to_pylist(), items["det_item_fee_sumamt"].to_pylist()):
        sums[m] += det
    for m, total in zip(visits["mdtrt_id"].to_pylist(), visits["medfee_sumamt"].to_pylist()):
        assert sums[m] == total, m  # every visit has at least one line
        assert total > 0


def test_ids_are_unique_and_linked(tables):
    for name, key in (("persons", "psn_no"), ("institutions", "fixmedins_code"),
                      ("visits", "mdtrt_id"), ("fee_items", "feedetl_sn")):
        col = tables[name][key]
        assert pc.count_distinct(col).as_py() == len(col), name
    psn = set(tables["persons"]["psn_no"].to_pylist())
    assert set(tables["visits"]["psn_no"].to_pylist()) <= psn
    assert set(tables["fee_items"]["mdtrt_id"].to_pylist()) == set(tables["visits"]["mdtrt_id"].to_pylist())
    level = dict(zip(tables["institutions"]["fixmedins_code"].to_pylist(), tables["institutions"]["level"].to_pylist()))
    insutype = dict(zip(tables["persons"]["psn_no"].to_pylist(), tables["persons"]["insutype"].to_pylist()))
    for v in rows(tables["visits"].select(["psn_no", "insutype", "fixmedins_code", "level"])):
        assert level[v["fixmedins_code"]] == v["level"]
        assert insutype[v["psn_no"]] == v["insutype"]


def test_visits_fall_inside_the_year_and_the_pack_dates(pack, tables):
    lo = dt.datetime.combine(max(dt.date(2024, 1, 1), pack.pack.effective_from), dt.time())
    hi = dt.datetime.combine(min(dt.date(2024, 12, 31), pack.pack.effective_to), dt.time(23, 59, 59))
    v = tables["visits"]
    assert v["setl_time"].equals(v["endtime"])
    for b, e in zip(v["begntime"].to_pylist(), v["endtime"].to_pylist()):
        assert lo <= b < e <= hi


def test_year_option_moves_the_window(tmp_path):
    pack = resolve_pack("shandong-2024")
    with pytest.raises(SynthError) as info:
        generate(pack, persons=10, year=2023)
    assert info.value.problems[0].code == "SYN002"
    for bad in (0, -5):
        with pytest.raises(SynthError):
            generate(pack, persons=bad)


def test_codes_are_declared_by_the_pack(pack, tables):
    covered = {(r.insutype, m) for r in pack.basic for m in r.med_types}
    v = tables["visits"]
    for insutype, med_type in set(zip(v["insutype"].to_pylist(), v["med_type"].to_pylist())):
        assert (insutype, med_type) in covered
    assert set(v["level"].to_pylist()) == set(pack.levels)
    assert set(tables["institutions"]["level"].to_pylist()) == set(pack.levels)
    assert {c for cs in tables["persons"]["categories"].to_pylist() for c in cs} <= set(pack.categories)
    assert set(tables["fee_items"]["chrgitm_lv"].to_pylist()) == set(pack.classification.classes)
    assert set(v["med_type"].to_pylist()) == {"11", "14", "21", "52"}
    # employees' maternity is paid by 生育保险, outside this pack
    assert ("310", "52") not in set(zip(v["insutype"].to_pylist(), v["med_type"].to_pylist()))


@pytest.mark.parametrize("name", shipped_pack_names())
def test_every_shipped_pack_gives_valid_settleable_codes(name):
    pack = resolve_pack(name)
    t = generate(pack, persons=1500, seed=2)
    assert check_tables(t, pack).ok
    covered = {(r.insutype, m) for r in pack.basic for m in r.med_types}
    v = t["visits"]
    assert v.num_rows > 0
    assert set(zip(v["insutype"].to_pylist(), v["med_type"].to_pylist())) <= covered
    cats = Counter(c for cs in t["persons"]["categories"].to_pylist() for c in cs)
    assert set(cats) <= set(pack.categories)


def test_population_shape(tables):
    p = rows(tables["persons"])
    n = len(p)
    employees = [x for x in p if x["insutype"] == "310"]
    assert 0.26 < len(employees) / n < 0.34
    retirees = [x for x in employees if x["retiree"]]
    assert 0.22 < len(retirees) / len(employees) < 0.38
    assert all(x["retiree"] is False for x in p if x["insutype"] == "390")
    assert np.mean([x["age"] for x in retirees]) > 60
    assert min(x["age"] for x in employees if not x["retiree"]) >= 18
    sizes = Counter(x["hh_no"] for x in p)
    assert set(sizes.values()) <= {1, 2, 3, 4, 5} and len(set(sizes.values())) == 5
    income = {x["hh_no"]: x["hh_income"] for x in p}
    assert all(x["hh_income"] == income[x["hh_no"]] > 0 for x in p)


def test_category_shares_as_configured(pack, tables):
    p = rows(tables["persons"])
    counts = Counter(c for x in p for c in x["categories"])
    for code, name in pack.categories.items():
        target = category_profile(code, name).share * PERSONS
        assert abs(counts[code] - target) <= 5 + 0.05 * target, (code, counts[code], target)
    # 困难群众 households are poorer, and are residents
    poor = [float(x["hh_income"]) for x in p if x["categories"]]
    rest = [float(x["hh_income"]) for x in p if not x["categories"]]
    assert np.median(poor) < 0.6 * np.median(rest)
    assert all(x["insutype"] == "390" for x in p if set(x["categories"]) & {"dibao", "tekun", "dibao_edge"})
    tekun_households = {x["hh_no"] for x in p if "tekun" in x["categories"]}
    assert all(Counter(x["hh_no"] for x in p)[h] == 1 for h in tekun_households)


def test_certno_is_valid_and_consistent(tables):
    p = rows(tables["persons"])
    assert len({x["certno"] for x in p}) == len(p)
    for x in p:
        c = x["certno"]
        assert check_digit_ok(c), c
        assert c[:6] == x["admdvs"]
        assert int(c[16]) % 2 == (1 if x["gend"] == "1" else 0)
        born = dt.date(int(c[6:10]), int(c[10:12]), int(c[12:14]))
        jan1 = dt.date(2024, 1, 1)
        assert jan1.year - born.year - ((jan1.month, jan1.day) < (born.month, born.day)) == x["age"]


def test_visit_mix_costs_and_lines(tables):
    v = rows(tables["visits"].select(["mdtrt_id", "psn_no", "med_type", "level", "medfee_sumamt", "dise_codg"]))
    kinds = Counter(x["med_type"] for x in v)
    assert kinds["11"] > 0.8 * len(v)
    admissions = kinds["21"] / PERSONS
    assert 0.12 < admissions < 0.22
    per_person = Counter(x["psn_no"] for x in v if x["med_type"] == "21")
    assert max(per_person.values()) >= 3 and sum(1 for c in per_person.values() if c >= 2) > 10
    inpatient3 = [float(x["medfee_sumamt"]) for x in v if x["med_type"] == "21" and x["level"] == "3"]
    assert 6_000 < np.mean(inpatient3) < 16_000
    inpatient = [float(x["medfee_sumamt"]) for x in v if x["med_type"] == "21"]
    assert max(inpatient) > 10 * np.median(inpatient)  # heavy tail
    outpatient = [float(x["medfee_sumamt"]) for x in v if x["med_type"] == "11"]
    assert 80 < np.mean(outpatient) < 300
    lines = Counter(tables["fee_items"]["mdtrt_id"].to_pylist())
    kind = {x["mdtrt_id"]: x["med_type"] for x in v}
    assert all(15 <= lines[m] <= 40 for m in lines if kind[m] == "21")
    assert all(1 <= lines[m] <= 8 for m in lines if kind[m] in ("11", "14"))


def test_two_disease_patients_visit_monthly_with_the_packs_codes(pack, tables):
    rule = next(r for r in pack.basic if r.diseases)
    v = rows(tables["visits"].select(["psn_no", "med_type", "dise_codg", "begntime"]))
    is_two = [x["med_type"] == "11" and x["dise_codg"].startswith(tuple(rule.diseases)) for x in v]
    two = [x for x, t in zip(v, is_two) if t]
    assert {x["dise_codg"] for x in two} == {"I10.x00", "E11.900"}
    months = defaultdict(set)
    for x in two:
        months[(x["psn_no"], x["dise_codg"])].add(x["begntime"].month)
    assert np.median([len(m) for m in months.values()]) >= 9
    # ordinary outpatient visits never carry a 两病 code by accident
    other = [x for x, t in zip(v, is_two) if x["med_type"] == "11" and not t]
    assert other and not any(x["dise_codg"][:3] in {"I10", "I11", "E10", "E11"} for x in other)


def test_referrals_follow_a_lower_level_stay_of_the_same_person(pack, tables):
    order = {code: i for i, code in enumerate(pack.levels)}
    v = rows(tables["visits"].select(["psn_no", "med_type", "level", "begntime", "endtime", "referral_from_level"]))
    stays = defaultdict(list)
    for x in v:
        if x["med_type"] in ("21", "52"):
            stays[x["psn_no"]].append(x)
    referred = [x for x in v if x["referral_from_level"] is not None]
    above_lowest = [x for x in v if x["med_type"] == "21" and x["level"] != "1"]
    assert referred and 0.02 < len(referred) / len(above_lowest) < 0.10
    for x in referred:
        assert x["med_type"] == "21"
        assert order[x["referral_from_level"]] < order[x["level"]]
        before = [s for s in stays[x["psn_no"]] if s["level"] == x["referral_from_level"]
                  and s["endtime"] <= x["begntime"] and x["begntime"] - s["endtime"] <= dt.timedelta(days=3)]
        assert before, x


def test_stays_do_not_overlap_and_outpatient_visits_avoid_them(tables):
    v = rows(tables["visits"].select(["psn_no", "med_type", "begntime", "endtime"]))
    stays = defaultdict(list)
    for x in v:
        if x["med_type"] in ("21", "52"):
            stays[x["psn_no"]].append((x["begntime"], x["endtime"]))
    for spans in stays.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    for x in v:
        if x["med_type"] in ("11", "14"):
            assert not any(b < x["endtime"] and x["begntime"] < e for b, e in stays[x["psn_no"]])


def test_charge_classes_catalog_and_caps(pack, tables):
    items = rows(tables["fee_items"])
    total = sum(x["det_item_fee_sumamt"] for x in items)
    share = {lv: sum(x["det_item_fee_sumamt"] for x in items if x["chrgitm_lv"] == lv) / total
             for lv in ("01", "02", "03")}
    assert abs(share["01"] - Decimal("0.6")) < Decimal("0.07")
    assert abs(share["02"] - Decimal("0.3")) < Decimal("0.07")
    assert abs(share["03"] - Decimal("0.1")) < Decimal("0.05")
    catalog = {e.med_list_codg: e for e in pack.classification.catalog}
    used = [x for x in items if x["med_list_codg"] in catalog]
    assert {x["med_list_codg"] for x in used} >= {"SD-EX-D001", "SD-EX-D002", "SD-EX-S001"}
    for x in used:
        assert x["chrgitm_lv"] == catalog[x["med_list_codg"]].chrgitm_lv
    capped = [x for x in used if catalog[x["med_list_codg"]].price_cap is not None]
    over = [x for x in capped if x["pric"] > catalog[x["med_list_codg"]].price_cap]
    assert 0.1 < len(over) / len(capped) < 0.4
    assert any(x["cnt"] != x["cnt"].to_integral_value() for x in items)  # fractional counts
    own = [x for x in items if x["preselfpay_ratio"] is not None]
    assert own and all(x["chrgitm_lv"] == "02" and 0 < x["preselfpay_ratio"] < 1 for x in own)


def test_personal_account_balances(tables):
    v = rows(tables["visits"].select(["insutype", "acct_balance"]))
    assert all(x["acct_balance"] == 0 for x in v if x["insutype"] == "390")
    employee = [float(x["acct_balance"]) for x in v if x["insutype"] == "310"]
    assert 300 < np.median(employee) < 5_000 and max(employee) < 20_000


# --- validation errors --------------------------------------------------------------------


def broken(tables, tmp_path, name, table) -> Path:
    out = tmp_path / "broken"
    write_region({**tables, name: table}, out)
    return out


def replace(table: pa.Table, column: str, values) -> pa.Table:
    i = table.schema.get_field_index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def problem(report, code):
    found = [p for p in report.problems if p.code == code]
    assert found, report.render()
    return found


def test_missing_column_is_named(tables, tmp_path):
    report = validate_claims(broken(tables, tmp_path, "visits", tables["visits"].drop_columns(["medfee_sumamt"])))
    p = problem(report, "CLM010")[0]
    assert p.path == "visits.medfee_sumamt" and "缺少列" in p.message
    with pytest.raises(ClaimsError) as info:
        read_claims(tmp_path / "broken")
    assert info.value.title == "理赔数据校验失败" and info.value.report is not None
    assert "CLM010" in str(info.value)


def test_wrong_type_is_named(tables, tmp_path):
    items = tables["fee_items"]
    as_float = items.set_column(items.schema.get_field_index("pric"), "pric", pc.cast(items["pric"], pa.float64()))
    report = validate_claims(broken(tables, tmp_path, "fee_items", as_float))
    p = problem(report, "CLM011")[0]
    assert p.path == "fee_items.pric" and "decimal128(16,2)" in p.message and "double" in p.message


def test_negative_amount_names_row_and_column(tables, tmp_path):
    v = tables["visits"]
    balance = v["acct_balance"].to_pylist()
    balance[7] = Decimal("-12.50")
    report = validate_claims(broken(tables, tmp_path, "visits", replace(v, "acct_balance", balance)))
    p = problem(report, "CLM020")
    mdtrt = v["mdtrt_id"][7].as_py()
    assert p[0].path == f"visits(mdtrt_id={mdtrt}).acct_balance"
    assert "-12.50" in p[0].message and "第 8 行" in p[0].message


def test_duplicate_mdtrt_id_names_the_repeat(tables, tmp_path):
    v = tables["visits"]
    ids = v["mdtrt_id"].to_pylist()
    ids[5] = ids[4]
    report = validate_claims(broken(tables, tmp_path, "visits", replace(v, "mdtrt_id", ids)))
    p = problem(report, "CLM030")
    assert [x.path for x in p] == [f"visits(mdtrt_id={ids[4]}).mdtrt_id"]
    assert "第 6 行" in p[0].message and "重复" in p[0].message


def test_orphan_item_and_sum_mismatch(tables, tmp_path):
    items = tables["fee_items"]
    ids = items["mdtrt_id"].to_pylist()
    lost = ids[3]
    ids[3] = "V-NOT-A-VISIT"
    report = validate_claims(broken(tables, tmp_path, "fee_items", replace(items, "mdtrt_id", ids)))
    p = problem(report, "CLM031")
    assert p[0].path == f"fee_items(feedetl_sn={items['feedetl_sn'][3].as_py()}).mdtrt_id"
    assert "V-NOT-A-VISIT" in p[0].message
    mismatch = problem(report, "CLM040")
    assert [x.path for x in mismatch] == [f"visits(mdtrt_id={lost}).medfee_sumamt"]


def test_sum_mismatch_names_the_visit(tables, tmp_path):
    v = tables["visits"]
    totals = v["medfee_sumamt"].to_pylist()
    totals[10] += Decimal("0.01")
    report = validate_claims(broken(tables, tmp_path, "visits", replace(v, "medfee_sumamt", totals)))
    p = problem(report, "CLM040")
    assert [x.path for x in p] == [f"visits(mdtrt_id={v['mdtrt_id'][10].as_py()}).medfee_sumamt"]
    assert str(totals[10]) in p[0].message
    assert report.codes() == {"CLM040"}


def test_line_amount_must_be_price_times_count(tables, tmp_path):
    items = tables["fee_items"]
    cnt = items["cnt"].to_pylist()
    cnt[0] += 1
    report = validate_claims(broken(tables, tmp_path, "fee_items", replace(items, "cnt", cnt)))
    p = problem(report, "CLM041")
    assert p[0].path == f"fee_items(feedetl_sn={items['feedetl_sn'][0].as_py()}).det_item_fee_sumamt"


def test_visit_of_unknown_person_and_many_rows_are_counted(tables, tmp_path):
    v = tables["visits"]
    report = validate_claims(broken(tables, tmp_path, "visits", replace(v, "psn_no", ["P-X"] * v.num_rows)))
    p = problem(report, "CLM032")
    assert len(p) == 11 and p[-1].path == "visits.psn_no" and f"共 {v.num_rows:,} 行" in p[-1].message


def test_pack_checks_dates_and_codes(tables, region):
    other = resolve_pack("jishou-2022")
    report = validate_claims(region, other)
    assert {"CLM050", "CLM051", "CLM053"} <= report.codes()
    assert "2022-01-01 至 2022-12-31" in problem(report, "CLM050")[0].message


def test_missing_table_and_two_sources(tables, tmp_path):
    out = tmp_path / "d"
    write_region({k: t for k, t in tables.items() if k != "institutions"}, out)
    write_claims_csv({"persons": tables["persons"]}, out)
    report = validate_claims(out)
    assert problem(report, "CLM001")[0].path == "institutions"
    assert problem(report, "CLM003")[0].path == "persons"
    assert validate_claims(tmp_path / "nowhere").codes() == {"CLM001"}


def test_compatible_parquet_types_are_accepted_and_converted(pack, tables, tmp_path):
    write_region(tables, tmp_path)
    p, v = tables["persons"], tables["visits"]
    cats = [";".join(c) if c else None for c in p["categories"].to_pylist()]
    loose = pa.table({
        **{c: p[c] for c in p.column_names},
        "psn_no": pc.dictionary_encode(p["psn_no"]),
        "age": pc.cast(p["age"], pa.int64()),
        "hh_income": pc.cast(p["hh_income"], pa.decimal128(12, 2)),
        "categories": pa.array(cats, pa.string()),  # 'dibao;tekun' text, empty as null
        "remark": pa.array(["x"] * p.num_rows),  # extra columns are ignored
    })
    pq.write_table(loose, tmp_path / "persons.parquet")
    instant = pc.cast(pc.assume_timezone(v["begntime"], "Asia/Shanghai"), pa.timestamp("us", tz="UTC"))
    pq.write_table(v.set_column(v.schema.get_field_index("begntime"), "begntime", instant),
                   tmp_path / "visits.parquet")
    back = read_claims(tmp_path, pack)
    assert back["persons"].equals(p) and back["visits"].equals(v)


def test_codes_stored_as_numbers_are_refused(tables, tmp_path):
    institutions = tables["institutions"]
    as_int = institutions.set_column(institutions.schema.get_field_index("admdvs"), "admdvs",
                                     pc.cast(institutions["admdvs"], pa.int64()))
    report = validate_claims(broken(tables, tmp_path, "institutions", as_int))
    p = problem(report, "CLM011")[0]
    assert p.path == "institutions.admdvs" and "前导零" in p.message


# --- CSV and Excel ------------------------------------------------------------------------


def test_csv_round_trip(pack, tables, tmp_path):
    write_claims_csv(tables, tmp_path)
    assert validate_claims(tmp_path, pack).ok
    back = read_claims(tmp_path, pack)
    for name in SCHEMAS:
        assert back[name].schema.equals(SCHEMAS[name])
        assert back[name].equals(tables[name]), name


def test_csv_in_gbk_with_bad_values_names_rows(tables, tmp_path):
    small = generate(resolve_pack("shandong-2024"), persons=50, seed=9)
    write_claims_csv(small, tmp_path)
    persons = (tmp_path / "persons.csv").read_text(encoding="utf-8")
    (tmp_path / "persons.csv").write_bytes(persons.encode("gb18030"))  # Excel's Chinese "CSV"
    assert validate_claims(tmp_path).ok
    lines = (tmp_path / "fee_items.csv").read_text(encoding="utf-8").splitlines()
    cells = lines[2].split(",")
    cells[4] = '"12.345"'  # pric with three decimals
    lines[2] = ",".join(cells)
    (tmp_path / "fee_items.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = validate_claims(tmp_path)
    p = problem(report, "CLM012")[0]
    assert p.path == f"fee_items(feedetl_sn={small['fee_items']['feedetl_sn'][1].as_py()}).pric"
    assert "最多 2 位小数" in p.message and "第 2 行" in p.message


def test_excel_workbook_with_one_sheet_per_table(pack, tmp_path):
    from openpyxl import Workbook

    small = generate(pack, persons=60, seed=4)
    book = Workbook()
    book.remove(book.active)
    sheet_names = {"persons": "人员", "institutions": "institutions", "visits": "就诊", "fee_items": "费用明细"}
    for name, table in small.items():
        sheet = book.create_sheet(sheet_names[name])
        text = text_table(table)
        sheet.append(text.column_names)
        for row in zip(*(text[c].to_pylist() for c in text.column_names)):
            # numbers as Excel numbers where a person would type them, codes as text
            sheet.append([float(x) if c in ("pric", "hh_income") and x else x
                          for c, x in zip(text.column_names, row)])
    book.save(tmp_path / "理赔数据.xlsx")
    report = validate_claims(tmp_path, pack)
    assert report.ok, report.render()
    assert report.files["visits"] == "理赔数据.xlsx#就诊"
    back = read_claims(tmp_path, pack)
    for name in SCHEMAS:
        assert back[name].equals(small[name]), name


def test_excel_file_per_table_mixed_with_parquet(pack, tables, tmp_path):
    from openpyxl import Workbook

    write_region({k: t for k, t in tables.items() if k != "institutions"}, tmp_path)
    book = Workbook()
    sheet = book.active
    text = text_table(tables["institutions"])
    sheet.append(text.column_names)
    for row in zip(*(text[c].to_pylist() for c in text.column_names)):
        sheet.append(list(row))
    sheet.append([None] * len(text.column_names))  # trailing empty rows are skipped
    book.save(tmp_path / "institutions.xlsx")
    report = validate_claims(tmp_path, pack)
    assert report.ok, report.render()
    assert report.files["institutions"] == "institutions.xlsx"
    assert read_claims(tmp_path)["institutions"].equals(tables["institutions"])


# --- the command --------------------------------------------------------------------------


def test_cli_synth_and_check(tmp_path):
    out = tmp_path / "region"
    result = runner.invoke(app, ["synth", "--pack", "shandong-2024", "--persons", "300", "--seed", "5",
                                 "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert "fee_items" in result.stdout and str(out / "visits.parquet") in result.stdout
    for name in SCHEMAS:
        assert (out / f"{name}.parquet").exists()
    assert not list(out.glob(".*.tmp"))
    check = runner.invoke(app, ["claims", "check", str(out), "--pack", "shandong-2024"])
    assert check.exit_code == 0, check.stderr
    assert "校验通过" in check.stdout


@pytest.mark.parametrize("args, code", [
    (["--persons", "0"], "SYN001"),
    (["--persons", "many"], "SYN001"),
    (["--seed", "-1"], "SYN003"),
    (["--year", "2023"], "SYN002"),
])
def test_cli_synth_bad_arguments(tmp_path, args, code):
    out = tmp_path / "x"
    result = runner.invoke(app, ["synth", "--pack", "shandong-2024", "--out", str(out), *args])
    assert result.exit_code == 2
    assert code in result.stderr and "无法生成合成数据" in result.stderr
    assert not out.exists()


def test_cli_synth_refuses_a_file_as_output(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["synth", "--pack", "shandong-2024", "--persons", "10", "--out", str(target)])
    assert result.exit_code == 2 and "SYN005" in result.stderr
    assert target.read_text(encoding="utf-8") == "x"


def test_cli_claims_check_reports_problems(tables, tmp_path):
    v = tables["visits"]
    totals = v["medfee_sumamt"].to_pylist()
    totals[0] += Decimal("1")
    out = broken(tables, tmp_path, "visits", replace(v, "medfee_sumamt", totals))
    result = runner.invoke(app, ["claims", "check", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "理赔数据校验失败" in result.stderr and "CLM040" in result.stderr
    assert f"visits(mdtrt_id={v['mdtrt_id'][0].as_py()}).medfee_sumamt" in result.stderr
    as_json = runner.invoke(app, ["claims", "check", str(out), "--json"])
    assert as_json.exit_code == 2 and '"code": "CLM040"' in as_json.stdout
