"""A pack that ``extends:`` another states only what differs; the merged pack is checked whole."""

from pathlib import Path

import pytest

from yibao.errors import PolicyError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, merge_pack_data, pack_from_text, resolve_pack
from yibao.monitoring.assistance import application_categories


def codes(exc: pytest.ExceptionInfo) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in exc.value.problems]


def test_shipped_baseline_is_the_reform_pack_with_four_numbers_changed():
    base, reform = resolve_pack("shandong-2024-baseline"), resolve_pack("shandong-2024")
    assert base.pack.id == "shandong-2024-baseline" and base.pack.version == "2024.0"
    b = {r.id: r for r in base.basic}
    r = {x.id: x for x in reform.basic}
    assert str(b["resident_inpatient"].ratio_by_level["1"]) == "0.80"
    assert str(r["resident_inpatient"].ratio_by_level["1"]) == "0.85"
    assert {k: str(v) for k, v in b["resident_two_diseases"].ratio_by_level.items()} == {"1": "0.60", "2": "0.60", "3": "0.60"}
    # everything else is inherited unchanged: levels 2 and 3, the other rules, tiers, assumptions
    assert b["resident_inpatient"].ratio_by_level["2"] == r["resident_inpatient"].ratio_by_level["2"]
    assert [x.id for x in base.basic] == [x.id for x in reform.basic]
    assert base.tiers == reform.tiers and base.assumptions == reform.assumptions
    assert base.application_categories == ["illness_poverty"]


def test_rules_merge_by_id_and_new_ids_are_appended(tmp_path: Path):
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: shandong-2024\n"
        "pack: {id: child, version: '1'}\n"
        "tiers:\n"
        "  - id: extra_tier\n"
        "    name: 新增层次\n"
        "    pays_into: oth_pay\n"
        "    fund_pay_type: '999999'\n"
        "    parts: [{base: [inscp_own], ratio: 0.1}]\n", encoding="utf-8")
    pack = load_pack(child)
    parent = resolve_pack("shandong-2024")
    assert [t.id for t in pack.tiers] == [t.id for t in parent.tiers] + ["extra_tier"]
    assert pack.pack.name == parent.pack.name  # mappings merge key by key


def test_a_chain_of_two_parents_and_a_relative_path(tmp_path: Path):
    (tmp_path / "mid.yaml").write_text("extends: shandong-2024\npack: {id: mid}\nreference: {per_capita_disposable_income: 30000}\n",
                                       encoding="utf-8")
    (tmp_path / "leaf.yaml").write_text("extends: mid.yaml\npack: {id: leaf}\n", encoding="utf-8")
    pack = load_pack(tmp_path / "leaf.yaml")
    assert pack.pack.id == "leaf" and str(pack.reference.per_capita_disposable_income) == "30000"


def test_lists_without_ids_are_replaced_not_merged():
    assert merge_pack_data({"a": [1, 2, 3], "b": {"c": 1}}, {"a": [9]}) == {"a": [9], "b": {"c": 1}}


def test_missing_parent_and_cycles_are_coded(tmp_path: Path):
    with pytest.raises(PolicyError) as exc:
        pack_from_text("extends: no-such-pack\n", "x.yaml", tmp_path)
    assert codes(exc) == [("POL004", "extends")]
    with pytest.raises(PolicyError) as exc:
        pack_from_text("extends: [a, b]\n", "x.yaml", tmp_path)
    assert codes(exc) == [("POL004", "extends")]
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n", encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_pack(tmp_path / "a.yaml")
    assert codes(exc) == [("POL005", "extends")]
    assert "a.yaml → b.yaml → a.yaml" in exc.value.problems[0].message


def test_the_merged_pack_is_validated_whole(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: shandong-2024\nbasic:\n  - id: resident_inpatient\n    ratio_by_level: {'9': 0.5}\n",
                   encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_pack(bad)
    assert ("POL021", "basic[0].ratio_by_level.9") in codes(exc)


def test_application_categories_come_from_the_pack_and_must_be_declared(tmp_path: Path):
    assert application_categories(CompiledPack(resolve_pack("shandong-2024"))) == frozenset({"illness_poverty"})
    # a pack that names none has none: no guessing from category names any more
    none = tmp_path / "none.yaml"
    none.write_text("extends: shandong-2024\npack: {id: none}\napplication_categories: []\n", encoding="utf-8")
    assert application_categories(CompiledPack(load_pack(none))) == frozenset()
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: shandong-2024\napplication_categories: [nobody]\n", encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_pack(bad)
    assert codes(exc) == [("POL022", "application_categories[0]")]


def test_the_editor_schema_checks_an_extending_pack_loosely_and_a_whole_pack_fully():
    import jsonschema

    from yibao.policy.schema import pack_schema

    schema = pack_schema()
    jsonschema.validate({"extends": "shandong-2024", "basic": [{"id": "x", "ratio_by_level": {"1": 0.8}}]}, schema)
    with pytest.raises(jsonschema.ValidationError):  # a misspelt top-level name
        jsonschema.validate({"extends": "shandong-2024", "basics": []}, schema)
    with pytest.raises(jsonschema.ValidationError):  # no extends: the whole pack is required
        jsonschema.validate({"basic": []}, schema)
