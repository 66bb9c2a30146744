"""The claims contract's optional columns (issue 20): 主治医生, 费用发生时间, 医疗收费项目类别, 机构类型 — checked
and kept when an extract carries them, a line date required on inpatient lines then (CLM043), malformed codes
named (CLM014); absent, the extract is still valid. One definition read by supervision."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from yibao.claims.schema import (CHRGITM_TYPES, OPTIONAL_FIELDS, SCHEMAS, SUPERVISION_FIELDS, read_claims, validate_claims,
                                 write_claims_csv)
from yibao.policy.loader import resolve_pack
from yibao.supervision.views import OPTIONAL_COLUMNS
from yibao.synth import generate, write_region


@pytest.fixture(scope="module")
def tables():
    return generate(resolve_pack("shandong-2024"), persons=300, seed=5)


def with_optional(tables, *, times=True, cats=None, blank_inpatient=False, inst_type="1"):
    visits, items, insts = tables["visits"], tables["fee_items"], tables["institutions"]
    med_type = dict(zip(visits["mdtrt_id"].to_pylist(), visits["med_type"].to_pylist()))
    begin = dict(zip(visits["mdtrt_id"].to_pylist(), visits["begntime"].to_pylist()))
    out = dict(tables)
    out["visits"] = visits.append_column("atddr_no", pa.array([f"D{i % 7}" for i in range(visits.num_rows)]))
    if times:
        when = [None if blank_inpatient and med_type[m] == "21" and k % 5 == 0 else begin[m]
                for k, m in enumerate(items["mdtrt_id"].to_pylist())]
        items = items.append_column(pa.field("fee_ocur_time", pa.timestamp("ms")), pa.array(when, pa.timestamp("ms")))
    items = items.append_column("med_chrgitm_type", pa.array(cats or ["09"] * items.num_rows))
    out["fee_items"] = items
    out["institutions"] = insts.append_column("fixmedins_type", pa.array([inst_type] * insts.num_rows))
    return out


def codes(report, code):
    return [p for p in report.problems if p.code == code]


def test_present_optional_columns_are_checked_and_kept(tables, tmp_path):
    write_region(with_optional(tables), tmp_path / "r")
    report = validate_claims(tmp_path / "r")
    assert report.ok, report.render()
    read = read_claims(tmp_path / "r")
    assert read["fee_items"].schema.field("fee_ocur_time").type == pa.timestamp("ms")
    assert read["fee_items"].column("med_chrgitm_type").to_pylist()[:2] == ["09", "09"]
    assert "atddr_no" in read["visits"].column_names and "fixmedins_type" in read["institutions"].column_names
    # the same through CSV: text converted to the contract's types
    write_claims_csv(read, tmp_path / "csv")
    again = read_claims(tmp_path / "csv")
    assert again["fee_items"].schema.field("fee_ocur_time").type == pa.timestamp("ms")
    assert again["fee_items"].column("fee_ocur_time").to_pylist() == read["fee_items"].column("fee_ocur_time").to_pylist()


def test_absent_optional_columns_leave_an_extract_valid(tables, tmp_path):
    write_region(tables, tmp_path / "r")
    read = read_claims(tmp_path / "r")
    assert read["fee_items"].schema == SCHEMAS["fee_items"]


def test_an_inpatient_line_without_a_time_is_named(tables, tmp_path):
    broken = with_optional(tables, blank_inpatient=True)
    write_region(broken, tmp_path / "r")
    found = codes(validate_claims(tmp_path / "r"), "CLM043")
    inpatient = {m for m, t in zip(tables["visits"]["mdtrt_id"].to_pylist(), tables["visits"]["med_type"].to_pylist())
                 if t == "21"}
    blanks = [sn for k, (sn, m) in enumerate(zip(broken["fee_items"]["feedetl_sn"].to_pylist(),
                                                  broken["fee_items"]["mdtrt_id"].to_pylist())) if m in inpatient and k % 5 == 0]
    assert blanks and found[0].path == f"fee_items(feedetl_sn={blanks[0]}).fee_ocur_time"
    assert "住院" in found[0].message


def test_malformed_codes_are_named_and_empty_ones_allowed(tables, tmp_path):
    n = tables["fee_items"].num_rows
    cats = [None if k % 3 == 0 else ("9" if k == 1 else "03") for k in range(n)]
    write_region(with_optional(tables, cats=cats, inst_type="3"), tmp_path / "r")
    report = validate_claims(tmp_path / "r")
    bad = codes(report, "CLM014")
    assert {(p.path.split("(")[0].split(".")[0], p.path.rsplit(".", 1)[-1]) for p in bad} == {
        ("fee_items", "med_chrgitm_type"), ("institutions", "fixmedins_type")}
    assert "'9'" in next(p.message for p in bad if p.path.endswith("med_chrgitm_type"))


def test_supervision_reads_the_one_definition():
    assert OPTIONAL_COLUMNS == {t: {f.name: f.type for f in fs} for t, fs in SUPERVISION_FIELDS.items()}
    assert set(CHRGITM_TYPES) >= {"03", "04", "05", "06", "09", "10", "11"}  # what the default rule file names


def test_every_optional_column_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "claims-schema.md").read_text(encoding="utf-8")
    for name, fields in OPTIONAL_FIELDS.items():
        for f in fields:
            assert f"| `{f.name}` |" in doc, f"{name}.{f.name}"
    assert "`CLM043`" in doc


def test_offsite_status_is_checked_and_kept(tables, tmp_path):
    n = tables["visits"].num_rows
    good = dict(tables, visits=tables["visits"].append_column(
        "offsite_status", pa.array([["local", "filed", "unfiled", None][k % 4] for k in range(n)])))
    write_region(good, tmp_path / "good")
    assert validate_claims(tmp_path / "good").ok
    assert read_claims(tmp_path / "good")["visits"].column("offsite_status").to_pylist()[:4] == [
        "local", "filed", "unfiled", None]
    bad = dict(tables, visits=tables["visits"].append_column(
        "offsite_status", pa.array(["abroad" if k == 2 else "local" for k in range(n)])))
    write_region(bad, tmp_path / "bad")
    found = codes(validate_claims(tmp_path / "bad"), "CLM014")
    assert len(found) == 1 and found[0].path.endswith(".offsite_status") and "'abroad'" in found[0].message
