"""Batch validation before settling: BAT004 decided by the same rule look-up settlement uses, and the line-level
checks reading the classified amounts give the same answers as grouping the fee lines."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from yibao.batch.inputs import CLAIMS_COMBOS, COMBOS_SUPERSET
from yibao.batch.run import classify, open_claims, register_pack, settle
from yibao.batch.validate import BatchError, check_applicability
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.synth import generate_to


def _region(tmp_path):
    region = tmp_path / "region"
    generate_to(resolve_pack("shandong-2024"), region, persons=300, seed=4)
    return region


def _rewrite(path, change):
    rows = pq.read_table(path).to_pylist()
    schema = pq.read_schema(path)
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema), path)
    return rows


def test_unmatched_visits_are_named_as_the_engine_would_refuse_them(tmp_path):
    region = _region(tmp_path)
    pack = CompiledPack(resolve_pack("shandong-2024"))

    def spoil(rows):
        rows[0]["med_type"] = "99"  # no basic rule of the pack takes med_type 99
        rows[1]["level"] = "9"      # a level the pack does not declare (BAT002 too)
    rows = _rewrite(region / "visits.parquet", spoil)
    run = open_claims(region)
    register_pack(run, pack)
    problems = {p.code: p for p in check_applicability(run.con, pack)}
    assert set(problems) == {"BAT002", "BAT004"}
    assert problems["BAT004"].message.endswith(f"2 行, 如 {'、'.join(sorted([rows[0]['mdtrt_id'], rows[1]['mdtrt_id']]))}")
    persons = {p["psn_no"]: p for p in pq.read_table(region / "persons.parquet").to_pylist()}
    for r in rows[2:]:  # every other visit has a rule by the engine's own look-up
        assert pack.basic_rule(persons[r["psn_no"]]["insutype"], r["med_type"], r["dise_codg"] or "", r["level"])


def test_line_checks_agree_before_and_after_classification(tmp_path):
    region = _region(tmp_path)
    pack = CompiledPack(resolve_pack("shandong-2024"))
    visits = pq.read_table(region / "visits.parquet").column("mdtrt_id").to_pylist()

    def spoil(rows):
        rows[0]["med_list_codg"] = "NOT-IN-CATALOGUE"  # BAT007
        rows[0]["chrgitm_lv"] = None
        for r in rows:
            if r["mdtrt_id"] == visits[5]:
                r["mdtrt_id"] = visits[6]  # visits[5] loses its lines: BAT009
        rows[1]["det_item_fee_sumamt"] = rows[1]["det_item_fee_sumamt"] * 0 + 20_000_000  # BAT008
    _rewrite(region / "fee_items.parquet", spoil)
    run = open_claims(region)
    register_pack(run, pack)
    before = [(p.code, p.path, p.message) for p in check_applicability(run.con, pack)]
    classify(run, pack)
    after = [(p.code, p.path, p.message) for p in check_applicability(run.con, pack)]
    assert [c for c, _, _ in before] == ["BAT007", "BAT008", "BAT009"]
    assert after == before


def _each_query(con, pack) -> list[tuple[str, str, str]]:
    """Every check run by its own query, as validation did before counting some of them in one pass."""
    from yibao.batch.validate import SAMPLE, applicability_checks, classified_checks, register_unmatched

    register_unmatched(con, pack)
    tables = {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    cheaper = classified_checks(con) if "classified" in tables else {}
    found = []
    for code, path, message, sql in applicability_checks(pack):
        count, sample = con.sql(f"SELECT COUNT(*), list(id ORDER BY id)[1:{SAMPLE}] FROM ({cheaper.get(code) or sql})").fetchone()
        if count:
            found.append((code, path, f"{message}: {count:,} 行, 如 {'、'.join(map(str, sample))}"))
    return found


@pytest.mark.parametrize("person_twice", [True, False])
def test_the_one_pass_counts_report_what_each_query_reports(tmp_path, person_twice):
    """BAT004, BAT006 and BAT009 are counted in one pass over visits ⋈ persons (⋈ classified) and only then asked
    for their ids: the same problems, counts and ids as each check's own query — with duplicated persons too,
    which multiply the joined rows (the one-pass counts only decide whether a check has anything to report)."""
    region = _region(tmp_path)
    pack = CompiledPack(resolve_pack("shandong-2024"))
    visits = pq.read_table(region / "visits.parquet").column("mdtrt_id").to_pylist()

    def spoil_visits(rows):
        rows[0]["psn_no"] = "NO-SUCH-PERSON"  # BAT006
        rows[1]["psn_no"] = "NO-SUCH-PERSON"
        rows[2]["med_type"] = "99"             # BAT004
    _rewrite(region / "visits.parquet", spoil_visits)

    def spoil_lines(rows):
        for r in rows:
            if r["mdtrt_id"] in (visits[5], visits[7]):
                r["mdtrt_id"] = visits[6]  # two visits lose their lines: BAT009
    _rewrite(region / "fee_items.parquet", spoil_lines)
    if person_twice:  # the stream's kernel then stops at visits out of order; validation reports it all the same
        _rewrite(region / "persons.parquet", lambda rows: rows.append(dict(rows[-1])))
    run = open_claims(region)
    register_pack(run, pack)
    classify(run, pack)
    found = [(p.code, p.path, p.message) for p in check_applicability(run.con, pack)]
    assert [c for c, _, _ in found] == ["BAT004", "BAT006", "BAT009"] + ["BAT020"] * person_twice  # who has visits
    assert found == _each_query(run.con, pack)
    # yibao batch settle counts these checks while it settles (the joins made once): the same report, nothing written
    with pytest.raises(BatchError) as refused:
        settle(open_claims(region), pack, "main", out_dir=tmp_path / "out", keep_fen=False)
    assert [(p.code, p.path, p.message) for p in refused.value.problems] == found
    assert not (tmp_path / "out").exists()
    # the combinations the stream looks up cover every combination of the claims' visits
    assert set(run.con.sql(CLAIMS_COMBOS).fetchall()) <= set(run.con.sql(COMBOS_SUPERSET).fetchall())
    assert found[1][2].endswith("2 行, 如 " + "、".join(sorted(visits[:2])))
    assert found[2][2].endswith("2 行, 如 " + "、".join(sorted([visits[5], visits[7]])))


@pytest.mark.parametrize("spoil, codes", [
    ("visit twice", ["BAT019"]),
    ("visit twice, person twice", ["BAT019", "BAT020"]),
    ("visit twice without lines", ["BAT009", "BAT019"]),
    ("lines without their visit", ["BAT009", "BAT021"]),
    ("person twice without visits", []),
])
def test_repeated_keys_and_orphan_lines_are_refused_before_anything_is_paid(tmp_path, spoil, codes):
    """A visit row twice in an extract would be settled — and paid — twice (its lines are keyed by mdtrt_id);
    a person twice leaves it open which row's insutype and categories apply; fee lines whose visit is missing
    would silently not be settled. Refused with their codes (counted in validation's one pass, the ids by each
    check's own query: the same report), and nothing written; a repeated person without visits changes nothing."""
    region = _region(tmp_path)
    pack = CompiledPack(resolve_pack("shandong-2024"))
    visits = pq.read_table(region / "visits.parquet").to_pylist()
    lines = pq.read_table(region / "fee_items.parquet").column("mdtrt_id").to_pylist()
    with_lines = [v for v in visits if v["mdtrt_id"] in set(lines)]
    if spoil.startswith("visit twice"):
        twice = with_lines[3]
        if spoil == "visit twice without lines":
            _rewrite(region / "fee_items.parquet", lambda rows: rows.__setitem__(
                slice(None), [r for r in rows if r["mdtrt_id"] != twice["mdtrt_id"]]))
        _rewrite(region / "visits.parquet", lambda rows: rows.append(dict(twice)))
    if "person twice" in spoil:
        who = with_lines[3]["psn_no"] if spoil != "person twice without visits" else "P-NO-VISITS"

        def person_twice(rows):
            row = dict(next((r for r in rows if r["psn_no"] == who), rows[-1]), psn_no=who)
            rows.extend([row, dict(row)] if who == "P-NO-VISITS" else [row])
        _rewrite(region / "persons.parquet", person_twice)
    if spoil == "lines without their visit":
        gone = with_lines[4]["mdtrt_id"]
        _rewrite(region / "visits.parquet", lambda rows: rows.__setitem__(
            slice(None), [r for r in rows if r["mdtrt_id"] != gone] + [dict(with_lines[4], mdtrt_id="V-NO-LINES")]))
    run = open_claims(region)
    register_pack(run, pack)
    classify(run, pack)
    found = [(p.code, p.path, p.message) for p in check_applicability(run.con, pack)]
    assert [c for c, _, _ in found] == codes
    assert found == _each_query(run.con, pack)
    messages = dict((c, m) for c, _, m in found)
    if "BAT019" in codes:
        assert messages["BAT019"].endswith(f"1 行, 如 {with_lines[3]['mdtrt_id']}")
    if "BAT021" in codes:
        assert messages["BAT021"].endswith(f"1 行, 如 {with_lines[4]['mdtrt_id']}")
    if codes:  # counted while settling (JoinCounts): the same report as validation's, and nothing written
        with pytest.raises(BatchError) as refused:
            settle(open_claims(region), pack, "main", out_dir=tmp_path / "out", keep_fen=False)
        assert [(p.code, p.path, p.message) for p in refused.value.problems] == found
        assert not (tmp_path / "out").exists()
    else:
        settle(open_claims(region), pack, "main", out_dir=tmp_path / "out", keep_fen=False)
        assert pq.read_metadata(tmp_path / "out" / "setlinfo.parquet").num_rows == len(visits)


def test_negative_fee_lines_are_refused_as_claims_check_refuses_them(tmp_path):
    """A Parquet extract is read in place (not through yibao claims check): a negative amount, quantity or price
    is refused before settlement (BAT018, as CLM020), since the per-line rounding of a negative share is not
    defined the same way online and in SQL."""
    region = _region(tmp_path)
    pack = CompiledPack(resolve_pack("shandong-2024"))

    def spoil(rows):
        rows[3]["det_item_fee_sumamt"] = -rows[3]["det_item_fee_sumamt"]
        rows[4]["cnt"] = -rows[4]["cnt"]
    rows = _rewrite(region / "fee_items.parquet", spoil)
    run = open_claims(region)
    register_pack(run, pack)
    classify(run, pack)
    problems = {p.code: p for p in check_applicability(run.con, pack)}
    assert "BAT018" in problems and problems["BAT018"].path == "fee_items.det_item_fee_sumamt"
    assert problems["BAT018"].message.endswith("2 行, 如 " + "、".join(sorted([rows[3]["feedetl_sn"], rows[4]["feedetl_sn"]])))


def test_a_join_count_not_0_refuses_the_run_even_where_no_query_names_the_rows(tmp_path, monkeypatch):
    """The stream's counts decide alone whether its files are kept: a count not 0 that no check's own query can
    name rows for (which the identities rule out) still refuses the run with that code, and nothing is written."""
    from yibao.batch.validate import JoinCounts

    region = _region(tmp_path)
    pack = CompiledPack(resolve_pack("shandong-2024"))
    said = {"BAT004": 0, "BAT006": 2, "BAT009": 0, "BAT019": 0, "BAT020": 0, "BAT021": 0}
    monkeypatch.setattr(JoinCounts, "counts", lambda self: said)
    with pytest.raises(BatchError) as refused:
        settle(open_claims(region), pack, "main", out_dir=tmp_path / "out", keep_fen=False)
    assert [(p.code, p.path) for p in refused.value.problems] == [("BAT006", "visits")]
    assert refused.value.problems[0].message.startswith("结算中计数到 2 行有此问题")
    assert not (tmp_path / "out").exists()
