"""参保人查询's limits: a population group's own cap and deductible (一老一小), as the engine settles them."""

from __future__ import annotations

from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.model import Accumulators
from yibao.web.selfservice import limits

GROUPS = CompiledPack(resolve_pack("shandong-2024-groups"))


def rows_for(age):
    rule = next(r for r in GROUPS.basic if r.id == "resident_inpatient")
    acc = Accumulators(2024, {rule.cap_key: 1_000_000})  # 10,000 yuan counted against the cap so far
    rows = [r for r in limits(GROUPS, "390", frozenset(), acc, age) if r["name"].startswith(rule.name)]
    cap = next(r for r in rows if r["kind"] == "年度最高支付限额")
    level2 = next(r for r in rows if r["kind"].startswith("下次起付线") and r["name"].endswith(GROUPS.levels["2"]))
    return cap, level2


def test_an_elderly_person_sees_the_groups_cap_and_deductible():
    cap, level2 = rows_for(70)
    assert (str(cap["limit"]), str(cap["left"])) == ("250000.00", "240000.00")
    assert "一老" in cap["name"]
    assert str(level2["limit"]) == "300.00"


def test_a_child_and_an_adult_see_their_own_numbers():
    cap, level2 = rows_for(10)
    assert (str(cap["limit"]), str(level2["limit"])) == ("300000.00", "200.00")
    cap, level2 = rows_for(40)  # no group: the rule's own numbers
    assert str(level2["limit"]) == "500.00"
    assert "一老" not in cap["name"] and "一小" not in cap["name"]
