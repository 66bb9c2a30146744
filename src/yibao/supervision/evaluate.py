"""Measured quality: per-rule recall and precision against injected ground truth.

A hit and a label match on (rule_id, subject): the visit for visit rules, the institution or
physician for provider rules. On a clean region every hit is a false positive; its share of
the rule's possible subjects is compared with the bound the rule documents (``fp_bound``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass
class RuleQuality:
    rule_id: str
    labelled: int
    hits: int
    true_hits: int

    @property
    def recall(self) -> float | None:
        return self.true_hits / self.labelled if self.labelled else None

    @property
    def precision(self) -> float | None:
        return self.true_hits / self.hits if self.hits else None


def evaluate(hits: pa.Table, labels: pa.Table, rule_ids: list[str]) -> list[RuleQuality]:
    found = {(r, s) for r, s in zip(hits.column("rule_id").to_pylist(), hits.column("subject").to_pylist())}
    truth = {(r, s) for r, s in zip(labels.column("rule_id").to_pylist(), labels.column("subject").to_pylist())}
    out = []
    for rid in rule_ids:
        f = {x for x in found if x[0] == rid}
        t = {x for x in truth if x[0] == rid}
        out.append(RuleQuality(rid, len(t), len(f), len(f & t)))
    return out


def false_positive_rates(hits: pa.Table, visits: int, providers: int, scopes: dict[str, str]) -> dict[str, float]:
    """Share of subjects flagged per rule on data with no injected fraud."""
    counts: dict[str, int] = {}
    for rid in hits.column("rule_id").to_pylist():
        counts[rid] = counts.get(rid, 0) + 1
    return {rid: counts.get(rid, 0) / max(1, providers if scope == "provider" else visits)
            for rid, scope in scopes.items()}


def render(quality: list[RuleQuality], names: dict[str, str]) -> list[list[str]]:
    def pct(x):
        return "—" if x is None else f"{x:.1%}"
    return [[q.rule_id, names.get(q.rule_id, ""), str(q.labelled), str(q.hits), str(q.true_hits), pct(q.recall),
             pct(q.precision)] for q in quality]


@dataclass
class Overall:
    labelled: int  # injected cases (rule, subject)
    true_hits: int  # of them flagged by their rule
    hits: int  # hits of the rules that have labels
    clean_visits: int  # visits carrying no label (original visits and decoys)
    clean_flagged: int  # of them flagged by any visit rule

    @property
    def recall(self) -> float | None:
        return self.true_hits / self.labelled if self.labelled else None

    @property
    def precision(self) -> float | None:
        return self.true_hits / self.hits if self.hits else None

    @property
    def clean_rate(self) -> float | None:
        return self.clean_flagged / self.clean_visits if self.clean_visits else None


def overall(quality: list[RuleQuality], hits: pa.Table, labels: pa.Table, visit_ids: list[str]) -> Overall:
    """Totals over the rules with injected cases, and the share of unlabelled visits (the region's own
    visits and the decoys) that any rule flags: what a clean region would see."""
    labelled_visits = set(labels.column("subject").to_pylist())
    truth = set(zip(labels.column("rule_id").to_pylist(), labels.column("subject").to_pylist()))
    visits = set(visit_ids)
    # a visit counts against precision only through a false hit: the visits a correct provider-level hit
    # names (the 61st patient of a labelled physician's day) belong to the injected case
    flagged = {m for r, s, m in zip(hits.column("rule_id").to_pylist(), hits.column("subject").to_pylist(),
                                    hits.column("mdtrt_id").to_pylist()) if m is not None and (r, s) not in truth}
    clean = visits - labelled_visits
    q = [x for x in quality if x.labelled]
    return Overall(sum(x.labelled for x in q), sum(x.true_hits for x in q), sum(x.hits for x in q),
                   len(clean), len(flagged & clean))


@dataclass
class PatternQuality:
    pattern: str
    rule_id: str
    labelled: int
    true_hits: int

    @property
    def recall(self) -> float | None:
        return self.true_hits / self.labelled if self.labelled else None


def by_pattern(hits: pa.Table, labels: pa.Table, rule_of: dict[str, str]) -> list[PatternQuality]:
    """Recall per evaluation pattern: labels carry the pattern they were built for (older label files
    without the column: the pattern is the one the rule has in ``rule_of``)."""
    found = set(zip(hits.column("rule_id").to_pylist(), hits.column("subject").to_pylist()))
    rules = labels.column("rule_id").to_pylist()
    subjects = labels.column("subject").to_pylist()
    if "pattern" in labels.column_names:
        patterns = labels.column("pattern").to_pylist()
    else:
        first = {}
        for pid, rid in rule_of.items():
            first.setdefault(rid, pid)
        patterns = [first.get(r) for r in rules]
    out: dict[str, PatternQuality] = {}
    for pid in rule_of:
        out[pid] = PatternQuality(pid, rule_of[pid], 0, 0)
    for r, s, pid in zip(rules, subjects, patterns):
        if pid is None or pid not in out:
            continue
        out[pid].labelled += 1
        out[pid].true_hits += (r, s) in found
    return [q for q in out.values() if q.labelled]
