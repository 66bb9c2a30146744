"""Load a policy pack from YAML and check it whole, reporting every problem with its path.

Numbers in YAML are read as exact decimals (never floats), so ``0.85`` is 85/100 and ``0.1``
is one tenth. Schema problems come from pydantic; cross-references that one model cannot see
on its own (a level or category the pack does not declare, overlapping bands, duplicate ids)
are checked here.
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from yibao.errors import PolicyError, Problem, pydantic_problems
from yibao.settlement.model import expand_buckets
from yibao.policy.model import Band, BasicRule, IncomeShare, PolicyPack, RatioSpec


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader that reads floats as exact Decimals."""


class _FastDecimalLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same, on libyaml's parser (in PyYAML's wheels): a pack is read about ten times faster, to the same data."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = loader.construct_scalar(node).replace("_", "")  # type: ignore[arg-type]
    return Decimal(text)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_FastDecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def parse_yaml(text: str, source: str = "") -> Any:
    try:
        return yaml.load(text, Loader=_FastDecimalLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError:
        pass  # read again below: the pure-Python parser's line, column and wording, as POL002 has always said
    try:
        return yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(Problem("POL002", where, f"YAML 格式错误: {problem}"), source) from None


def load_pack(path: str | Path) -> PolicyPack:
    """Read and validate a pack file; raises :class:`PolicyError` naming file, path and rule."""
    path = Path(path)
    return pack_from_data(_pack_data(path, ()), str(path))


def pack_from_text(text: str, source: str = "<text>", base_dir: Path | None = None) -> PolicyPack:
    """A pack from YAML text; an ``extends:`` in it is looked up beside ``base_dir`` (default: here)."""
    data = _with_parent(parse_yaml(text, source), source, base_dir or Path.cwd(), ())
    return pack_from_data(data, source)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(Problem("POL001", "", "文件不存在"), str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(Problem("POL001", "", f"无法读取文件: {exc}"), str(path)) from None


def _pack_data(path: Path, chain: tuple[Path, ...]) -> Any:
    data = parse_yaml(_read(path), str(path))
    return _with_parent(data, str(path), path.parent, chain + (path.resolve(),))


def _with_parent(data: Any, source: str, base_dir: Path, chain: tuple[Path, ...]) -> Any:
    """Resolve ``extends:``: the parent pack's data with this pack's overrides merged in.

    A reform that changes four numbers states those four numbers, not a copy of the whole pack.
    Mappings merge key by key; lists of rules (items with an ``id``) merge by id, new ids are
    appended; any other value, list included, replaces the parent's. The merged document is then
    validated as one pack, so a problem's path is a path in the merged pack.
    """
    if not isinstance(data, dict) or "extends" not in data:
        return data
    data = dict(data)
    parent = data.pop("extends")
    if not isinstance(parent, str) or not parent.strip():
        raise PolicyError(Problem("POL004", "extends", "extends 须为内置政策包名称或政策包文件的路径"), source)
    path = base_dir / parent
    if not path.exists() and parent in shipped_pack_names():
        path = shipped_pack_path(parent)
    if not path.exists():
        raise PolicyError(Problem("POL004", "extends", f"extends 指向的政策包 {parent!r} 不存在"
                                  f"(既不是 {base_dir} 下的文件, 也不是内置政策包)"), source)
    if path.resolve() in chain:
        names = " → ".join(p.name for p in chain + (path.resolve(),))
        raise PolicyError(Problem("POL005", "extends", f"extends 形成循环: {names}"), source)
    return merge_pack_data(_pack_data(path, chain), data)


def merge_pack_data(base: Any, over: Any) -> Any:
    """``over`` laid on ``base`` (see :func:`_with_parent`).

    >>> merge_pack_data({"basic": [{"id": "a", "ratio": 1}, {"id": "b"}]}, {"basic": [{"id": "a", "ratio": 2}]})
    {'basic': [{'id': 'a', 'ratio': 2}, {'id': 'b'}]}
    >>> merge_pack_data({"basic": [{"id": "a"}, {"id": "b"}]}, {"basic": [{"id": "c", "before": "b"}]})
    {'basic': [{'id': 'a'}, {'id': 'c'}, {'id': 'b'}]}
    """
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge_pack_data(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(over, list) and _by_id(base) and _by_id(over):
        out = list(base)
        index = {item["id"]: i for i, item in enumerate(out)}
        for item in over:
            if item["id"] in index:
                out[index[item["id"]]] = merge_pack_data(out[index[item["id"]]], item)
            elif item.get("before") in index:  # a new rule placed ahead of one of the parent's (order decides)
                out.insert(index[item["before"]], {k: v for k, v in item.items() if k != "before"})
                index = {it["id"]: i for i, it in enumerate(out)}
            else:
                index[item["id"]] = len(out)
                out.append(item)
        return out
    return over


def _by_id(items: list) -> bool:
    return bool(items) and all(isinstance(item, dict) and "id" in item for item in items)


def pack_from_data(data: Any, source: str = "<data>") -> PolicyPack:
    if not isinstance(data, dict):
        raise PolicyError(Problem("POL003", "", "政策包的顶层必须是映射(键: 值)"), source)
    try:
        pack = PolicyPack.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(pydantic_problems(exc, "POL010"), source) from None
    problems = list(check_references(pack))
    if problems:
        raise PolicyError(problems, source)
    return pack


def shipped_pack_path(name: str) -> Path:
    """Path of an example pack shipped with yibao, by file stem (e.g. ``shandong-2024``)."""
    root = resources.files("yibao.policy") / "packs"
    return Path(str(root / f"{name}.yaml"))


def shipped_pack_names() -> list[str]:
    root = Path(str(resources.files("yibao.policy") / "packs"))
    return sorted(p.stem for p in root.glob("*.yaml"))


def resolve_pack(name_or_path: str | Path) -> PolicyPack:
    """A file path, or the name of a shipped pack."""
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in shipped_pack_names():
        path = shipped_pack_path(str(name_or_path))
    return load_pack(path)


# --- cross-reference checks ---------------------------------------------------------------


def check_references(pack: PolicyPack) -> Iterable[Problem]:
    info = pack.pack
    if info.effective_from > info.effective_to:
        yield Problem("POL020", "pack.effective_to", "失效日期早于生效日期")
    levels, categories = set(pack.levels), set(pack.categories)

    def level(code: str, path: str) -> Iterable[Problem]:
        if code not in levels:
            yield Problem("POL021", path, f"未声明的机构等级 {code!r}; 已声明: {sorted(levels)}")

    def category(code: str, path: str) -> Iterable[Problem]:
        if code not in categories:
            yield Problem("POL022", path, f"未声明的人员类别 {code!r}; 已声明: {sorted(categories)}")

    for i, code in enumerate(pack.application_categories):
        yield from category(code, f"application_categories[{i}]")

    for code, cls in pack.classification.classes.items():
        if not cls.coshare and not cls.in_scope:  # POL036: only an in-scope amount can be paid without co-share
            yield Problem("POL036", f"classification.classes.{code}.coshare",
                          "coshare: false(统筹基金全额支付)只适用于政策范围内的类别(in_scope: true)")

    for i, entry in enumerate(pack.classification.catalog):
        if entry.chrgitm_lv not in pack.classification.classes:
            yield Problem("POL023", f"classification.catalog[{i}].chrgitm_lv",
                          f"未声明的收费项目等级 {entry.chrgitm_lv!r}")

    ids: dict[str, str] = {}
    for kind, items in (("basic", pack.basic), ("tiers", pack.tiers), ("guarantees", pack.guarantees)):
        for i, item in enumerate(items):
            if item.id in ids:
                yield Problem("POL024", f"{kind}[{i}].id", f"规则编号 {item.id!r} 与 {ids[item.id]} 重复")
            ids[item.id] = f"{kind}[{i}]"

    cap_groups: dict[str, BasicRule] = {}
    for i, rule in enumerate(pack.basic):
        p = f"basic[{i}]"
        yield from _check_basic(rule, p, level, category)
        group = rule.cap_group or rule.id
        if group in cap_groups:
            other = cap_groups[group]
            if other.annual_cap != rule.annual_cap:
                yield Problem("POL025", f"{p}.cap_group",
                              f"与 {other.id} 共用限额组 {group!r}, 但年度限额不同({other.annual_cap} 与 {rule.annual_cap})")
        cap_groups[group] = rule

    for i, tier in enumerate(pack.tiers):
        p = f"tiers[{i}]"
        for j, c in enumerate(tier.categories or []):
            yield from category(c, f"{p}.categories[{j}]")
        for j, part in enumerate(tier.parts):
            yield from _check_ratio(part.ratio, f"{p}.parts[{j}].ratio")
            if isinstance(part.deductible, IncomeShare) and part.band_edges == "absolute" and isinstance(part.ratio, list):
                if any(b.upto is not None for b in part.ratio):
                    yield Problem("POL026", f"{p}.parts[{j}].band_edges",
                                  "起付线按收入比例计算时, 分段应写为 above_deductible(起付线以上金额)")
        seen_buckets: set[str] = set()
        for j, part in enumerate(tier.parts):
            shared = seen_buckets & set(expand_buckets(part.base))
            if shared:
                yield Problem("POL032", f"{p}.parts[{j}].base", f"与前面的部分重复计入同一金额: {sorted(shared)}")
            seen_buckets |= set(expand_buckets(part.base))
        if tier.threshold_basis == "per_admission":
            annual = sorted({m for r in pack.basic if r.mode == "annual" for m in r.med_types
                             if tier.insutypes is None or r.insutype in tier.insutypes})
            if tier.med_types is None:
                yield Problem("POL033", f"{p}.threshold_basis",
                              "按次计算(per_admission)的层次必须用 med_types 限定为住院类医疗类别")
            elif bad := [m for m in tier.med_types if m in annual]:
                yield Problem("POL033", f"{p}.threshold_basis",
                              f"按次计算(per_admission)不能用于按年度累计结算的医疗类别 {bad}(门诊类没有'每次住院')")
        for j, tilt in enumerate(tier.tilts):
            for k, c in enumerate(tilt.categories):
                yield from category(c, f"{p}.tilts[{j}].categories[{k}]")
            if tilt.remove_cap and tilt.annual_cap is not None:
                yield Problem("POL027", f"{p}.tilts[{j}]", "remove_cap 与 annual_cap 不能同时设置")
        yield from _check_household_cap(tier, p)

    for i, g in enumerate(pack.guarantees):
        for j, c in enumerate(g.categories):
            yield from category(c, f"guarantees[{i}].categories[{j}]")

    if pack.ltc is not None:
        yield from _check_ltc(pack.ltc)

    for i, a in enumerate(pack.financing.assistance if pack.financing else []):
        yield from category(a.category, f"financing.assistance[{i}].category")
        if (a.kind == "fixed") != (a.amount is not None) or (a.kind == "percentage") != (a.ratio is not None):
            yield Problem("POL060", f"financing.assistance[{i}]", "fixed 须且只须给出 amount, percentage 须且只须给出 ratio")
    yield from _check_financing_agrees(pack)



def _check_financing_agrees(pack: PolicyPack) -> Iterable[Problem]:
    """``fund`` (the fund model's assumptions) and ``financing`` (the ledger's rules) state some numbers
    twice; where both are given they must be equal, so a rate has one value."""
    fin, fund = pack.financing, pack.fund
    if fin is None or fund is None:
        return
    if fin.employee is not None:
        for name in ("employer_rate", "employee_rate"):
            if getattr(fin.employee, name) != getattr(fund.employee, name):
                yield Problem("POL061", f"financing.employee.{name}",
                              f"与 fund.employee.{name} 不一致({getattr(fin.employee, name)} ≠ {getattr(fund.employee, name)})")
    for i, y in enumerate(fin.resident):
        if y.year == pack.pack.effective_from.year and (y.individual, y.fiscal) != (fund.resident.individual,
                                                                                    fund.resident.subsidy):
            yield Problem("POL061", f"financing.resident[{i}]",
                          f"{y.year} 年标准与 fund.resident 不一致(个人 {y.individual}/{fund.resident.individual}, "
                          f"财政 {y.fiscal}/{fund.resident.subsidy})")


def _check_ltc(ltc) -> Iterable[Problem]:
    a = ltc.assessment
    known = set(a.levels)

    def ltc_level(code: str, path: str) -> Iterable[Problem]:
        if code not in known:
            yield Problem("POL040", path, f"未声明的失能等级 {code!r}; ltc.assessment.levels 已声明: {sorted(known)}")

    for dim in ("adl", "cognition", "perception"):
        seen: set[str] = set()
        for j, item in enumerate(getattr(a, dim)):
            if item.code in seen:
                yield Problem("POL042", f"ltc.assessment.{dim}[{j}].code", f"评估项目 {item.code!r} 重复")
            seen.add(item.code)
    for i, rule in enumerate(a.rules):
        yield from ltc_level(rule.level, f"ltc.assessment.rules[{i}].level")
        for dim in ("cognition", "perception"):
            if getattr(rule, f"{dim}_max") is not None and not getattr(a, dim):
                yield Problem("POL043", f"ltc.assessment.rules[{i}].{dim}_max", f"量表没有 {dim} 项目, 不能按它的总分分级")
    yield from ltc_level(a.default_level, "ltc.assessment.default_level")
    ids: set[str] = set()
    for i, b in enumerate(ltc.benefits):
        if b.id in ids:
            yield Problem("POL041", f"ltc.benefits[{i}].id", f"待遇编号 {b.id!r} 重复")
        ids.add(b.id)
        for j, code in enumerate(b.levels):
            yield from ltc_level(code, f"ltc.benefits[{i}].levels[{j}]")


def _check_household_cap(tier, p: str) -> Iterable[Problem]:
    """POL039: a household cap below a member's own annual cap means the member's cap can never bind — a mistyped
    number far more often than a policy; a per-admission tier's household cap is still annual (stated, not refused)."""
    if tier.household_cap is None:
        return
    caps = [(f"{p}.annual_cap", tier.annual_cap)] + [(f"{p}.tilts[{j}].annual_cap", t.annual_cap)
                                                      for j, t in enumerate(tier.tilts)]
    for path, cap in caps:
        if cap is not None and tier.household_cap < cap:
            yield Problem("POL039", f"{p}.household_cap",
                          f"家庭年度限额 {tier.household_cap} 元低于个人年度限额 {cap} 元({path}), 个人限额将永远不起作用")


def _check_basic(rule: BasicRule, p: str, level, category) -> Iterable[Problem]:
    ded = rule.deductible
    for code in ded.by_level:
        yield from level(code, f"{p}.deductible.by_level.{code}")
    for code, spec in rule.ratio_by_level.items():
        yield from level(code, f"{p}.ratio_by_level.{code}")
        yield from _check_ratio(spec, f"{p}.ratio_by_level.{code}")
    missing = set(ded.by_level) ^ set(rule.ratio_by_level)
    if missing:
        yield Problem("POL028", f"{p}.ratio_by_level",
                      f"起付线与支付比例须覆盖相同的机构等级, 不一致的等级: {sorted(missing)}")
    for code in rule.category_points:
        yield from category(code, f"{p}.category_points.{code}")
    for j, w in enumerate(ded.waive):
        for k, c in enumerate(w.categories):
            yield from category(c, f"{p}.deductible.waive[{j}].categories[{k}]")
        for k, lv in enumerate(w.levels or []):
            yield from level(lv, f"{p}.deductible.waive[{j}].levels[{k}]")
    if rule.mode == "annual":
        for field in ("repeat", "referral"):
            if getattr(ded, field) is not None:
                yield Problem("POL029", f"{p}.deductible.{field}",
                              "按年度累计(annual)的规则没有“第几次住院”或转诊起付线, 请删除此项")
        if ded.once_a_year_diseases:
            yield Problem("POL029", f"{p}.deductible.once_a_year_diseases", "仅适用于按次(per_admission)规则")
    yield from _check_fixed_standard(rule, p, level)
    yield from _check_age_points(rule, p)
    yield from _check_groups(rule, p, category)
    if rule.retiree_share_factor is not None and rule.retiree_points:
        yield Problem("POL038", f"{p}.retiree_share_factor",
                      "退休人员比例只能用一种写法: retiree_points(加百分点)或 retiree_share_factor(个人负担倍数)")
    rep = ded.repeat
    if rep is not None:
        rp = f"{p}.deductible.repeat"
        if rep.mode == "factor" and rep.factor is None:
            yield Problem("POL030", f"{rp}.factor", "mode 为 factor 时必须给出 factor(如 0.5)")
        if rep.mode == "schedule":
            if not rep.schedule:
                yield Problem("POL030", f"{rp}.schedule", "mode 为 schedule 时必须按等级给出各次起付线")
            else:
                for code, amounts in rep.schedule.items():
                    yield from level(code, f"{rp}.schedule.{code}")
                    if not amounts:
                        yield Problem("POL030", f"{rp}.schedule.{code}", "至少给出第一次住院的起付线")
                    elif code in ded.by_level and amounts[0] != ded.by_level[code]:
                        yield Problem("POL030", f"{rp}.schedule.{code}[0]",
                                      f"第一次住院起付线 {amounts[0]} 与 deductible.by_level.{code}"
                                      f"={ded.by_level[code]} 不一致")
                for code in set(ded.by_level) - set(rep.schedule):
                    yield Problem("POL030", f"{rp}.schedule", f"缺少等级 {code!r} 的起付线序列")
        if rep.mode == "step" and rep.step is None:
            yield Problem("POL030", f"{rp}.step", "mode 为 step 时必须给出每次递减额 step")


def _check_groups(rule: BasicRule, p: str, category) -> Iterable[Problem]:
    """Population groups (POL037): each selected by categories and/or an age range, stating a deductible for every
    level of the rule, never shadowed by an earlier group (first match wins, so a group whose members an earlier
    group already takes at some age would be dead text there)."""
    seen: dict[str, int] = {}
    for j, g in enumerate(rule.groups):
        gp = f"{p}.groups[{j}]"
        if g.id in seen:
            yield Problem("POL037", f"{gp}.id", f"人群编号 {g.id!r} 与 groups[{seen[g.id]}] 重复")
        seen.setdefault(g.id, j)
        for k, c in enumerate(g.categories or []):
            yield from category(c, f"{gp}.categories[{k}]")
        if g.categories is None and g.from_age is None and g.to_age is None:
            yield Problem("POL037", gp, "人群须按人员类别(categories)或年龄(from_age/to_age)选择")
        if g.categories is not None and not g.categories:
            yield Problem("POL037", f"{gp}.categories", "人员类别列表不能为空; 不按类别选择时请删除此项")
        if g.from_age is not None and g.to_age is not None and g.to_age < g.from_age:
            yield Problem("POL037", f"{gp}.to_age", f"截止年龄 {g.to_age} 小于起始年龄 {g.from_age}")
        if g.deductible is not None:
            missing = set(g.deductible) ^ set(rule.deductible.by_level)
            if missing:
                yield Problem("POL037", f"{gp}.deductible",
                              f"人群起付线须与规则覆盖相同的机构等级, 不一致的等级: {sorted(missing)}")
            if rule.deductible.repeat is not None and rule.deductible.repeat.mode == "schedule":
                yield Problem("POL037", f"{gp}.deductible", "规则按 schedule 逐次列出起付线, 人群不能另设起付线")
            if rule.fixed_standard is not None:
                yield Problem("POL037", f"{gp}.deductible", "单病种定额不设起付线, 人群不能另设起付线")
        lo, hi = g.from_age or 0, 150 if g.to_age is None else g.to_age
        left = set(range(lo, hi + 1))  # ages at which an earlier group does not already take all of this group
        for i, e in enumerate(rule.groups[:j]):
            e_lo, e_hi = e.from_age or 0, 150 if e.to_age is None else e.to_age
            if e.categories is None and g.categories is None and max(lo, e_lo) <= min(hi, e_hi):
                yield Problem("POL037", gp, f"按年龄选择的人群与 groups[{i}]({e.id}) 的年龄重叠: "
                                            f"{max(lo, e_lo)}–{min(hi, e_hi)} 岁")
            if e.categories is None or (g.categories is not None and set(g.categories) <= set(e.categories)):
                left -= set(range(e_lo, e_hi + 1))
        if lo <= hi and not left:
            yield Problem("POL037", gp, "本人群的人员都已归入前面的人群(取第一个符合的人群), 本人群永远不适用")


def _check_age_points(rule: BasicRule, p: str) -> Iterable[Problem]:
    """Age bands (POL035) cover every age once: from 0, each band starting the year after the one before ends,
    the last open-ended — a gap or an overlap would leave an age with no ratio or two."""
    bands = rule.age_points
    if not isinstance(bands, list):
        return
    ap = f"{p}.age_points"
    if not bands:
        yield Problem("POL035", ap, "年龄段列表不能为空")
        return
    expected = 0
    for j, band in enumerate(bands):
        if band.from_age != expected:
            if j == 0:
                message = f"年龄段须从 0 岁起, 实际从 {band.from_age} 岁起"
            elif band.from_age < expected:
                message = f"年龄段重叠: 应从 {expected} 岁起, 实际从 {band.from_age} 岁起"
            else:
                message = f"年龄段有空缺: {expected}–{band.from_age - 1} 岁没有比例"
            yield Problem("POL035", f"{ap}[{j}].from_age", message)
        if band.to_age is None:
            if j != len(bands) - 1:
                yield Problem("POL035", f"{ap}[{j}].to_age", "只有最后一段可以不写截止年龄")
            return
        if band.to_age < band.from_age:
            yield Problem("POL035", f"{ap}[{j}].to_age", f"截止年龄 {band.to_age} 小于起始年龄 {band.from_age}")
        expected = band.to_age + 1
    yield Problem("POL035", f"{ap}[{len(bands) - 1}].to_age", "最后一段须不写截止年龄(覆盖到最高年龄)")


def _check_fixed_standard(rule: BasicRule, p: str, level) -> Iterable[Problem]:
    """单病种定额 (POL034): per admission, no deductible, one ratio per level, a standard for every listed
    disease at every level the rule covers."""
    fs = rule.fixed_standard
    if fs is None:
        return
    fp = f"{p}.fixed_standard"
    if rule.mode != "per_admission":
        yield Problem("POL034", f"{p}.mode", "单病种定额按每次住院结算, mode 须为 per_admission")
    ded = rule.deductible
    for code, amount in ded.by_level.items():
        if amount != 0:
            yield Problem("POL034", f"{p}.deductible.by_level.{code}", f"单病种定额不设起付线, 应为 0, 实际为 {amount}")
    for field in ("repeat", "referral"):
        if getattr(ded, field) is not None:
            yield Problem("POL034", f"{p}.deductible.{field}", "单病种定额不设起付线, 请删除此项")
    if ded.waive or ded.once_a_year_diseases:
        yield Problem("POL034", f"{p}.deductible", "单病种定额不设起付线, 免起付线与每年一次起付线无从适用")
    for code, spec in rule.ratio_by_level.items():
        if isinstance(spec, list):
            yield Problem("POL034", f"{p}.ratio_by_level.{code}", "单病种定额按一个比例支付, 不能分段")
    if sorted(fs.standards) != sorted(rule.diseases):
        yield Problem("POL034", f"{fp}.standards",
                      f"定额标准的病种须与 diseases 相同: 标准 {sorted(fs.standards)}, diseases {sorted(rule.diseases)}")
    for dise, by_level in fs.standards.items():
        for code in by_level:
            yield from level(code, f"{fp}.standards.{dise}.{code}")
        missing = set(ded.by_level) - set(by_level)
        if missing:
            yield Problem("POL034", f"{fp}.standards.{dise}", f"缺少机构等级 {sorted(missing)} 的定额标准")
        for code, amount in by_level.items():
            if amount <= 0:
                yield Problem("POL034", f"{fp}.standards.{dise}.{code}", "定额标准须大于 0")


def _check_ratio(spec: RatioSpec, path: str) -> Iterable[Problem]:
    if not isinstance(spec, list):
        return
    if not spec:
        yield Problem("POL031", path, "分段比例至少需要一段")
        return
    previous: Decimal | None = None
    for j, band in enumerate(spec):
        assert isinstance(band, Band)
        if band.upto is None and j != len(spec) - 1:
            yield Problem("POL031", f"{path}[{j}].upto", "只有最后一段可以不设上限")
        if band.upto is not None and previous is not None and band.upto <= previous:
            yield Problem("POL031", f"{path}[{j}].upto",
                          f"分段重叠或未按升序排列: 上限 {band.upto} 不大于上一段上限 {previous}")
        if band.upto is not None:
            previous = band.upto
