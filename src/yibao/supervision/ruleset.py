"""Rule parameters per region (YAML), validated like policy packs: errors name rule and field.

``rules/default.yaml`` holds every rule's parameters; a region file says ``extends: default``
and overrides what differs (mappings merge, lists replace). ``enabled: false`` switches a rule
off; ``severity`` and ``blocking`` may be overridden too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from yibao.errors import Problem, pydantic_problems
from yibao.supervision.library import RULES, PriceItem
from yibao.supervision.model import (
    SEVERITIES,
    ConfiguredRule,
    Skipped,
    SupervisionError,
)

RULE_KEYS = {"enabled", "severity", "blocking", "params"}


@dataclass
class RuleSet:
    id: str
    name: str
    rules: list[ConfiguredRule]
    skipped: list[Skipped] = field(default_factory=list)

    def by_id(self) -> dict[str, ConfiguredRule]:
        return {r.id: r for r in self.rules}


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("yibao.supervision").joinpath("rules").iterdir()
                  if p.name.endswith(".yaml"))


def _read(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict, str]:
    path = Path(name_or_path)
    if not path.is_file():
        builtin = resources.files("yibao.supervision").joinpath("rules", f"{name_or_path}.yaml")
        if not builtin.is_file():
            raise SupervisionError(Problem("SUP001", "--ruleset",
                                           f"找不到规则参数文件 {name_or_path!r}; 内置: {', '.join(builtin_names())}"))
        text, source = builtin.read_text(encoding="utf-8"), f"{name_or_path}.yaml"
    else:
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SupervisionError(Problem("SUP002", source, f"YAML 语法错误: {exc}")) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules", {}), dict):
        raise SupervisionError(Problem("SUP002", source, "顶层应为映射, 且 rules 为 规则编号 → 设置 的映射"))
    parent = doc.get("extends")
    if parent:
        if parent in seen:
            raise SupervisionError(Problem("SUP002", f"{source}.extends", f"循环继承: {parent}"))
        base, _ = _read(parent, seen + (parent,))
        doc = {**base, **{k: v for k, v in doc.items() if k != "rules"},
               "rules": _merge(base.get("rules", {}), doc.get("rules", {}))}
    return doc, source


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def load_ruleset(name_or_path: str = "default", only: list[str] | None = None,
                 skip_invalid: bool = False) -> RuleSet:
    """The region's rules with validated parameters (only ``only`` when given).

    Unknown rule ids and bad parameters raise :class:`SupervisionError` naming every one; with
    ``skip_invalid`` the bad rules are listed in ``skipped`` and the rest are returned.
    """
    doc, source = _read(name_or_path)
    settings = doc.get("rules") or {}
    problems: list[Problem] = []
    skipped: list[Skipped] = []
    wanted = list(only) if only else list(RULES)
    unknown = [r for r in wanted if r not in RULES] + [r for r in settings if r not in RULES]
    for rid in dict.fromkeys(unknown):
        where = "--rules" if rid in wanted else f"{source}: rules.{rid}"
        p = Problem("SUP010", where, f"未知的规则编号 {rid!r}; 可用的规则见 yibao audit rules")
        problems.append(p)
        skipped.append(Skipped(rid, [p]))
    configured = []
    for rid in wanted:
        if rid not in RULES:
            continue
        rule = RULES[rid]
        conf = settings.get(rid) or {}
        errs = []
        if not isinstance(conf, dict):
            errs.append(Problem("SUP011", f"rules.{rid}", "规则设置应为映射(enabled/severity/blocking/params)"))
            conf = {}
        for key in conf:
            if key not in RULE_KEYS:
                errs.append(Problem("SUP011", f"rules.{rid}.{key}", f"未知的设置项; 可用 {sorted(RULE_KEYS)}"))
        if conf.get("enabled", True) is False and not only:
            continue
        severity = conf.get("severity", rule.severity)
        if severity not in SEVERITIES:
            errs.append(Problem("SUP011", f"rules.{rid}.severity", f"严重程度应为 {list(SEVERITIES)} 之一, 实际为 {severity!r}"))
        params = None
        try:
            params = rule.params_model.model_validate(conf.get("params") or {})
        except ValidationError as exc:
            errs += pydantic_problems(exc, "SUP012", f"rules.{rid}.params")
        if errs:
            errs = [Problem(e.code, f"{source}: {e.path}", f"规则 {rid}({rule.name}): {e.message}") for e in errs]
            problems += errs
            skipped.append(Skipped(rid, errs))
            continue
        configured.append(ConfiguredRule(rule, params, severity, bool(conf.get("blocking", rule.blocking))))
    if problems and not skip_invalid:
        raise SupervisionError(problems, source)
    return RuleSet(str(doc.get("ruleset", name_or_path)), str(doc.get("name", "")), configured, skipped)


def with_pack_caps(rs: RuleSet, pack) -> RuleSet:
    """The rule set with SV-PRICE-03 (单价数倍于支付限价) also judging the policy pack's catalogue caps
    (最高支付限价) beyond the codes its parameters list: one rule, its items from two sources."""

    conf = rs.by_id().get("SV-PRICE-03")
    if conf is None:
        return rs
    listed = {i.code for i in conf.params.items}
    extra = [PriceItem(code=e.med_list_codg, name=e.name, cap=e.price_cap) for e in pack.classification.catalog
             if e.price_cap is not None and e.price_cap > 0 and e.med_list_codg not in listed]
    if not extra:
        return rs
    params = conf.params.model_copy(update={"items": [*conf.params.items, *extra]})
    return RuleSet(rs.id, rs.name, [replace(r, params=params) if r.id == "SV-PRICE-03" else r for r in rs.rules],
                   rs.skipped)
