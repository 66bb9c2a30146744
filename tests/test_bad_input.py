"""Bad packs and bad requests: a Chinese error with a code naming the field, exit ≠ 0, no result.

Each case starts from the valid worked example and breaks one thing, then runs the real
``yibao`` command line (in-process) the way a user would.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from yibao.cli import app
from yibao.errors import PolicyError
from yibao.policy.loader import load_pack, pack_from_text

HERE = Path(__file__).parent
PACK_TEXT = (HERE / "packs" / "worked_example.yaml").read_text(encoding="utf-8")
REQUEST = json.loads((HERE / "requests" / "worked_example.json").read_text(encoding="utf-8"))
runner = CliRunner()


def pack_data() -> dict:
    return yaml.safe_load(PACK_TEXT)


def edit(path: str, value):
    """A change to pack data: set the value at a dotted path (list indexes as numbers)."""

    def apply(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return data

    return apply


def dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


BAD_PACKS = [
    # (what is broken, change, code, path, words in the message)
    ("negative amount", edit("basic.0.deductible.by_level.1", -200), "POL010", "basic[0].deductible.by_level.1", "负数"),
    ("non-numeric ratio", edit("basic.0.ratio_by_level.1", "八成"), "POL010", "basic[0].ratio_by_level.1", "数字"),
    ("ratio above 1", edit("basic.0.ratio_by_level.1", 1.5), "POL010", "basic[0].ratio_by_level.1", "0 到 1"),
    ("amount finer than a fen", edit("tiers.0.parts.0.deductible", 15000.005), "POL010", "tiers[0].parts[0].deductible", "两位小数"),
    ("unknown level", edit("basic.0.ratio_by_level", {"1": 0.85, "4": 0.8}), "POL021", "basic[0].ratio_by_level.4", "等级"),
    ("unknown category", edit("tiers.0.tilts.0.categories", ["dibao", "vip"]), "POL022", "tiers[0].tilts[0].categories[1]", "vip"),
    ("dates reversed", edit("pack.effective_to", "2023-12-31"), "POL020", "pack.effective_to", "早于"),
    ("bad date", edit("pack.effective_from", "2024-13-01"), "POL010", "pack.effective_from", "日期"),
    ("overlapping bands", edit("basic.0.ratio_by_level.1", [{"upto": 5000, "ratio": 0.8}, {"upto": 3000, "ratio": 0.85}, {"ratio": 0.9}]),
     "POL031", "basic[0].ratio_by_level.1[1].upto", "重叠"),
    ("open band not last", edit("basic.0.ratio_by_level.1", [{"ratio": 0.8}, {"upto": 3000, "ratio": 0.85}]),
     "POL031", "basic[0].ratio_by_level.1[0].upto", "最后一段"),
    ("unknown med_type format", edit("basic.0.med_types", ["住院"]), "POL010", "basic[0].med_types[0]", "格式"),
    ("unknown scheme", edit("basic.0.insutype", "999"), "POL010", "basic[0].insutype", "310"),
    ("misspelt field", edit("basic.0.ratios", 0.85), "POL010", "basic[0].ratios", "未知字段"),
    ("missing field", lambda d: (d["basic"][0].pop("fund_pay_type"), d)[1], "POL010", "basic[0].fund_pay_type", "缺少"),
    ("bad region code", edit("pack.admdvs", "3701"), "POL010", "pack.admdvs", "格式"),
    ("duplicate ids", edit("tiers.1.id", "critical_illness"), "POL024", "tiers[1].id", "重复"),
    ("unknown pays_into", edit("tiers.0.pays_into", "hifp_pay"), "POL010", "tiers[0].pays_into", "hifmi_pay"),
]


@pytest.mark.parametrize("what, change, code, path, words", BAD_PACKS, ids=[c[0] for c in BAD_PACKS])
def test_bad_pack_is_reported_with_code_and_path(tmp_path, what, change, code, path, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump(change(pack_data())), encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_pack(bad)
    found = [(p.code, p.path) for p in e.value.problems]
    assert (code, path) in found, found
    assert any(words in p.message for p in e.value.problems), [p.message for p in e.value.problems]
    assert e.value.source == str(bad)

    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2
    assert code in result.stderr and path in result.stderr
    assert result.stdout == ""


def test_malformed_yaml_names_line():
    with pytest.raises(PolicyError) as e:
        pack_from_text("pack:\n  id: [unclosed\n", "x.yaml")
    assert e.value.problems[0].code == "POL002"
    assert "行" in e.value.problems[0].path
    # libyaml refuses it first; the message is the pure-Python parser's, as it always was
    assert (e.value.problems[0].path, e.value.problems[0].message) == (
        "第 3 行第 1 列", "YAML 格式错误: expected ',' or ']', but got '<stream end>'")


def test_both_yaml_parsers_read_every_shipped_file_alike():
    """Packs are parsed by libyaml (ten times faster); the pure-Python parser reads each to the same data."""
    from yibao.policy import loader

    files = sorted(Path(loader.__file__).parent.parent.rglob("*.yaml"))
    assert len(files) > 10
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=loader._FastDecimalLoader) == yaml.load(text, Loader=loader._DecimalLoader), f
    assert loader._FastDecimalLoader.__mro__[1] is yaml.CSafeLoader  # the wheel ships libyaml


def test_missing_pack_file():
    result = runner.invoke(app, ["policy", "check", "no/such/pack.yaml"])
    assert result.exit_code == 2 and "POL001" in result.stderr


def test_several_problems_are_reported_together(tmp_path):
    data = pack_data()
    data["basic"][0]["ratio_by_level"]["1"] = 2
    data["basic"][0]["deductible"]["by_level"]["1"] = -1
    bad = tmp_path / "two.yaml"
    bad.write_text(dump(data), encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_pack(bad)
    assert len(e.value.problems) == 2


def req_edit(path: str, value):
    def apply(req):
        req = copy.deepcopy(req)
        *parents, last = path.split(".")
        node = req
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        return req

    return apply


DELETE = object()
ITEMS = [{"feedetl_sn": "1", "med_list_codg": "X1", "chrgitm_lv": "01", "pric": 10.00, "cnt": 3,
          "det_item_fee_sumamt": 30.00}]

BAD_REQUESTS = [
    ("negative amount", req_edit("visit.amounts.inscp_scp_amt", -1), "REQ010", "visit.amounts.inscp_scp_amt", "负数"),
    ("non-numeric amount", req_edit("visit.amounts.inscp_scp_amt", "一万"), "REQ010", "visit.amounts.inscp_scp_amt", "数字"),
    ("unknown scheme", req_edit("person.insutype", "888"), "REQ010", "person.insutype", "310"),
    ("med_type not a code", req_edit("visit.med_type", "住院"), "REQ010", "visit.med_type", "格式"),
    ("no visit date", req_edit("visit.setl_time", DELETE), "REQ010", "visit.setl_time", "缺少"),
    ("both items and amounts", req_edit("visit.items", ITEMS), "REQ010", "visit", "之一"),
    ("line amount mismatch", lambda r: req_edit("visit.items", [{**ITEMS[0], "det_item_fee_sumamt": 31.00}])(
        req_edit("visit.amounts", DELETE)(r)), "REQ010", "visit.items[0]", "不符"),
    ("unknown med_type", req_edit("visit.med_type", "99"), "SET005", "visit.med_type", "99"),
    ("unknown level", req_edit("visit.level", "5"), "SET003", "visit.level", "5"),
    ("unknown category", req_edit("person.categories", ["dibao", "vip"]), "SET004", "person.categories", "vip"),
    ("date outside pack", req_edit("visit.setl_time", "2025-02-01"), "SET001", "visit.setl_time", "有效期"),
    ("accumulators of another year", req_edit("accumulators", {"year": 2023}), "REQ010", "", "年度"),
]


@pytest.mark.parametrize("what, change, code, path, words", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_refused_and_nothing_printed(tmp_path, what, change, code, path, words):
    req = tmp_path / "req.json"
    req.write_text(json.dumps(change(REQUEST), ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(app, ["settle", "--policy", str(HERE / "packs" / "worked_example.yaml"),
                                 "--request", str(req), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    problems = json.loads(result.stderr)["problems"]
    assert any(p["code"] == code and p["path"] == path for p in problems), problems
    assert any(words in p["message"] for p in problems), problems


def test_malformed_json_request(tmp_path):
    req = tmp_path / "req.json"
    req.write_text('{"person": {', encoding="utf-8")
    result = runner.invoke(app, ["settle", "-p", str(HERE / "packs" / "worked_example.yaml"), "-r", str(req)])
    assert result.exit_code == 2 and "REQ002" in result.stderr and result.stdout == ""
