"""失能评估: item scores on the pack's scale → a disability level, with the rule that decided it.

The scale (e.g. Barthel's ten 日常生活活动能力 items, cognition, perception) and the rules are the
pack's (``ltc.assessment``); this module only adds them up and applies the first rule whose
bounds every total meets. A conclusion is valid for ``validity_months``; an assessor may not
assess the same person twice in a row when the pack says so.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date

from yibao.errors import Problem, YibaoError
from yibao.policy.model import Assessment, ScaleItem

DIMENSIONS = (("adl", "日常生活活动能力"), ("cognition", "认知能力"), ("perception", "感知觉与沟通"))


class LtcError(YibaoError):
    title = "长期护理保险"


@dataclass(frozen=True)
class AssessmentResult:
    level: str
    level_name: str
    totals: dict[str, int]  # adl / cognition / perception → total score
    rule: int | None  # index of the rule that decided, None for the default level
    reason: str  # Chinese, for the conclusion letter


def score_problems(scale: Assessment, scores: dict[str, dict[str, int]], path: str = "scores") -> list[Problem]:
    """Every missing, unknown or disallowed score at once (LTC001–LTC003)."""
    problems = []
    for dim, name in DIMENSIONS:
        items: list[ScaleItem] = getattr(scale, dim)
        given = scores.get(dim, {}) or {}
        known = {it.code for it in items}
        for code in sorted(set(given) - known):
            problems.append(Problem("LTC002", f"{path}.{dim}.{code}", f"{name}量表没有项目 {code!r}; 项目有 {sorted(known)}"))
        for it in items:
            if it.code not in given:
                problems.append(Problem("LTC001", f"{path}.{dim}.{it.code}", f"缺少{name}项目“{it.name}”的得分"))
            elif not isinstance(given[it.code], int) or isinstance(given[it.code], bool) or given[it.code] not in it.scores:
                problems.append(Problem("LTC003", f"{path}.{dim}.{it.code}",
                                        f"“{it.name}”的得分 {given[it.code]!r} 不在允许的 {it.scores} 之中"))
    return problems


def assess(scale: Assessment, scores: dict[str, dict[str, int]]) -> AssessmentResult:
    """The level these scores give; raises :class:`LtcError` naming every bad score."""
    problems = score_problems(scale, scores)
    if problems:
        raise LtcError(problems)
    totals = {dim: sum((scores.get(dim) or {}).values()) for dim, _ in DIMENSIONS}
    for i, rule in enumerate(scale.rules):
        bounds = {"adl": rule.adl_max, "cognition": rule.cognition_max, "perception": rule.perception_max}
        if all(limit is None or totals[dim] <= limit for dim, limit in bounds.items()):
            said = "、".join(f"{name} {totals[dim]} ≤ {bounds[dim]}" for dim, name in DIMENSIONS if bounds[dim] is not None)
            return AssessmentResult(rule.level, scale.levels[rule.level], totals, i,
                                    f"{said}, 评定为{scale.levels[rule.level]}(规则 {i + 1})")
    level = scale.default_level
    return AssessmentResult(level, scale.levels[level], totals, None,
                            f"日常生活活动能力 {totals['adl']} 分, 未达任何失能等级规则, 评定为{scale.levels[level]}")


def valid_until(scale: Assessment, effective: date) -> date:
    """The last day a conclusion made effective on ``effective`` holds (validity_months later, less a day)."""
    month = effective.month - 1 + scale.validity_months
    year, month = effective.year + month // 12, month % 12 + 1
    day = min(effective.day, monthrange(year, month)[1])
    return date.fromordinal(date(year, month, day).toordinal() - 1)


def check_assessor(scale: Assessment, previous_assessor: str | None, assessor: str, path: str = "assessor") -> None:
    """同一评估员不得连续两次评估同一人 (when the pack says so): LTC004."""
    if scale.no_repeat_assessor and previous_assessor is not None and previous_assessor == assessor:
        raise LtcError(Problem("LTC004", path, f"评估员 {assessor} 上一次已评估此人; 按规定须由另一名评估员评估"))


def due_for_reassessment(latest: dict[str, tuple[str, date]], on: date, within_days: int) -> list[tuple[str, str, date]]:
    """(psn_no, level, end) of conclusions that end within ``within_days`` of ``on`` (or already ended), soonest first.

    ``latest`` maps each person to the level and end date of their latest conclusion: the bureau
    invites them for re-assessment before benefits stop.
    """
    horizon = date.fromordinal(on.toordinal() + within_days)
    return sorted(((psn, level, end) for psn, (level, end) in latest.items() if end <= horizon), key=lambda r: (r[2], r[0]))
