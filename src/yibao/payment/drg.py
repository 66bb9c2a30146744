"""DRG grouping from a grouping table supplied as data (MDC → ADRG → DRG).

The table (YAML, format in ``docs/payment.md``; an illustrative one ships as
``payment/data/drg-illustrative.yaml``, it is NOT the national CHS-DRG table) lists MDCs by main
diagnosis prefixes; inside an MDC, ADRGs in order, each optionally limited to main diagnosis
prefixes and, for surgical ADRGs, procedure prefixes. A case takes the first MDC whose prefix
matches its main diagnosis, then the first ADRG of that MDC whose conditions it meets. ADRGs
with ``split: true`` are split by complications from the secondary diagnoses (CHS-DRG suffixes:
``1`` with MCC, ``3`` with CC, ``5`` without); others end in ``9``. Relative weights come from
history like DIP scores (``yibao drg build``), so the point logic is shared.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yibao.errors import Problem, pydantic_problems
from yibao.payment.cases import PaymentError

KEYS = ["group_code", "group_kind"]
SUFFIX_NAMES = {"1": "伴严重并发症或合并症", "3": "伴并发症或合并症", "5": "不伴并发症或合并症", "9": "不分组"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Prefix = str


class Adrg(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{2,6}$")
    name: str
    diagnoses: list[Prefix] = Field(default=[], description="限定主要诊断编码前缀; 空表示 MDC 内不限")
    procedures: list[Prefix] = Field(default=[], description="手术操作编码前缀; 非空即外科 ADRG")
    split: bool = Field(True, description="按并发症/合并症细分为 1/3/5; false 为 9")


class Mdc(_Strict):
    code: str = Field(pattern=r"^MDC[A-Z0-9]{1,3}$")
    name: str
    diagnoses: list[Prefix] = Field(min_length=1, description="主要诊断编码前缀")
    adrgs: list[Adrg] = Field(min_length=1)


class TableInfo(_Strict):
    id: str
    version: str
    name: str
    note: str = ""


class GroupingTable(_Strict):
    table: TableInfo
    cc: list[Prefix] = Field(default=[], description="并发症/合并症(CC)的其他诊断编码前缀")
    mcc: list[Prefix] = Field(default=[], description="严重并发症/合并症(MCC)的其他诊断编码前缀")
    mdcs: list[Mdc] = Field(min_length=1)

    def drg_names(self) -> dict[str, str]:
        names = {}
        for mdc in self.mdcs:
            for a in mdc.adrgs:
                for s in ("1", "3", "5") if a.split else ("9",):
                    names[a.code + s] = a.name + ("" if s == "9" else f"({SUFFIX_NAMES[s]})")
        return names


def shipped_table_path() -> Path:
    return Path(str(resources.files("yibao.payment") / "data" / "drg-illustrative.yaml"))


def load_table(path: str | Path | None = None) -> GroupingTable:

    path = Path(path) if path else shipped_table_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PaymentError(Problem("PAY070", str(path), f"无法读取 DRG 分组表: {exc}")) from None
    try:
        table = GroupingTable.model_validate(data)
    except ValidationError as exc:
        raise PaymentError(pydantic_problems(exc, "PAY071"), str(path)) from None
    seen: set[str] = set()
    for i, mdc in enumerate(table.mdcs):
        for j, a in enumerate(mdc.adrgs):
            if a.code in seen:
                raise PaymentError(Problem("PAY072", f"mdcs[{i}].adrgs[{j}].code", f"ADRG 编码 {a.code} 重复"), str(path))
            seen.add(a.code)
    return table


def table_arrow(table: GroupingTable) -> dict[str, pa.Table]:
    """The grouping table flattened into the relations the grouping SQL joins."""
    mdc_dx, adrg, adrg_dx, adrg_px = [], [], [], []
    order = 0
    for m_i, mdc in enumerate(table.mdcs):
        mdc_dx += [{"mdc_order": m_i, "prefix": p} for p in mdc.diagnoses]
        for a in mdc.adrgs:
            adrg.append({"adrg_order": order, "mdc_order": m_i, "mdc": mdc.code, "adrg": a.code,
                         "has_dx": bool(a.diagnoses), "surgical": bool(a.procedures), "split": a.split})
            adrg_dx += [{"adrg": a.code, "prefix": p} for p in a.diagnoses]
            adrg_px += [{"adrg": a.code, "prefix": p} for p in a.procedures]
            order += 1
    cc = [{"prefix": p, "severity": 1} for p in table.cc] + [{"prefix": p, "severity": 2} for p in table.mcc]
    schemas = {
        "drg_mdc_dx": pa.schema([("mdc_order", pa.int64()), ("prefix", pa.string())]),
        "drg_adrg": pa.schema([("adrg_order", pa.int64()), ("mdc_order", pa.int64()), ("mdc", pa.string()),
                               ("adrg", pa.string()), ("has_dx", pa.bool_()), ("surgical", pa.bool_()),
                               ("split", pa.bool_())]),
        "drg_adrg_dx": pa.schema([("adrg", pa.string()), ("prefix", pa.string())]),
        "drg_adrg_px": pa.schema([("adrg", pa.string()), ("prefix", pa.string())]),
        "drg_cc": pa.schema([("prefix", pa.string()), ("severity", pa.int64())]),
    }
    rows = {"drg_mdc_dx": mdc_dx, "drg_adrg": adrg, "drg_adrg_dx": adrg_dx, "drg_adrg_px": adrg_px, "drg_cc": cc}
    return {name: pa.Table.from_pylist(rows[name], schemas[name]) for name in schemas}


def _starts(code: str, prefix: str) -> str:
    return f"SUBSTR({code}, 1, LENGTH({prefix})) = {prefix}"


def grouping_sql(source: str, procs: str = "case_procs", secondary: str = "case_secondary") -> str:
    """Every case of ``source`` with its DRG (``group_code`` NULL when no ADRG takes it)."""
    return f"""WITH mdc AS (
  SELECT c.mdtrt_id, MIN(m.mdc_order) AS mdc_order
  FROM {source} c JOIN drg_mdc_dx m ON {_starts('c.dise_codg', 'm.prefix')} GROUP BY c.mdtrt_id
), dxok AS (
  SELECT DISTINCT c.mdtrt_id, d.adrg FROM {source} c JOIN drg_adrg_dx d ON {_starts('c.dise_codg', 'd.prefix')}
), pxok AS (
  SELECT DISTINCT p.mdtrt_id, x.adrg FROM {procs} p JOIN drg_adrg_px x ON {_starts('p.code', 'x.prefix')}
), pick AS (
  SELECT mdc.mdtrt_id, MIN(a.adrg_order) AS adrg_order
  FROM mdc JOIN drg_adrg a ON a.mdc_order = mdc.mdc_order
  LEFT JOIN dxok ON dxok.mdtrt_id = mdc.mdtrt_id AND dxok.adrg = a.adrg
  LEFT JOIN pxok ON pxok.mdtrt_id = mdc.mdtrt_id AND pxok.adrg = a.adrg
  WHERE (NOT a.has_dx OR dxok.adrg IS NOT NULL) AND (NOT a.surgical OR pxok.adrg IS NOT NULL)
  GROUP BY mdc.mdtrt_id
), sev AS (
  SELECT s.mdtrt_id, MAX(cc.severity) AS severity
  FROM {secondary} s JOIN drg_cc cc ON {_starts('s.code', 'cc.prefix')} GROUP BY s.mdtrt_id
)
SELECT c.*,
  CASE WHEN a.adrg IS NULL THEN NULL
       WHEN a.split THEN a.adrg || (CASE COALESCE(sev.severity, 0) WHEN 2 THEN '1' WHEN 1 THEN '3' ELSE '5' END)
       ELSE a.adrg || '9' END AS group_code,
  CASE WHEN a.adrg IS NULL THEN NULL ELSE 'drg' END AS group_kind
FROM {source} c
LEFT JOIN pick ON pick.mdtrt_id = c.mdtrt_id
LEFT JOIN drg_adrg a ON a.adrg_order = pick.adrg_order
LEFT JOIN sev ON sev.mdtrt_id = c.mdtrt_id"""
