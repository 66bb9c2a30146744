"""The 医保目录 as versioned data: the columns of the national code tables we accept, the row checks, the
coded 限定支付范围 conditions, and how a version's entries become the engine's classification rules.

Three kinds of table, each imported as a dated version (the version in force on a date is the latest whose
``effective_from`` is on or before it): ``drug`` 西药中成药, ``consumable`` 医用耗材, ``service`` 医疗服务项目.

A coded condition is ``key op value`` clauses joined by ``;`` — every clause must hold:

    gend=1 | gend=2            性别
    age>=18, age<=14, age>60   年龄(周岁)
    level>=2, level=3          机构等级
    med_type=21|14             医疗类别(任一)
    dise=E11|E10               诊断编码前缀(任一)

>>> conds = parse_conditions("med_type=21|14;age>=18")
>>> conditions_met(conds, gend="1", age=40, level="2", med_type="21", dise_codg="E11.9")
(True, None)
>>> conditions_met(conds, gend="1", age=12, level="2", med_type="21", dise_codg="")
(False, 'age>=18')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from yibao.errors import YibaoError
from yibao.money import rate_parts
from yibao.policy.compiled import ItemRule

KINDS = {"drug": "西药中成药", "consumable": "医用耗材", "service": "医疗服务项目"}
CLASSES = {"01": "甲类", "02": "乙类", "03": "丙类"}
CLASS_ALIASES = {"甲类": "01", "甲": "01", "01": "01", "1": "01", "乙类": "02", "乙": "02", "02": "02", "2": "02",
                 "丙类": "03", "丙": "03", "自费": "03", "03": "03", "3": "03"}
CODE_SHAPE = {"drug": r"^[XZ][A-Z0-9]{4,49}$", "consumable": r"^C[A-Z0-9]{4,49}$", "service": r"^[0-9A-Z]{5,50}$"}
CODE_RULE = {"drug": "以 X(西药)或 Z(中成药)开头的 5–50 位大写字母数字", "consumable": "以 C 开头的 5–50 位大写字母数字",
             "service": "5–50 位数字或大写字母"}

# accepted header → field. The national tables' own headers (国家医保信息业务编码标准数据库 downloads and the
# 医保药品目录 / 医疗服务项目目录 Excel files) and our English field names both work; columns not listed are ignored.
COLUMNS = {
    "med_list_codg": ("med_list_codg", "医保目录编码", "医保编码", "药品代码", "医保药品代码", "药品编码",
                      "耗材代码", "医保耗材代码", "医用耗材代码", "耗材编码", "项目代码", "医疗服务项目代码", "项目编码"),
    "name": ("name", "名称", "注册名称", "药品名称", "通用名", "通用名称", "耗材名称", "医用耗材名称", "项目名称"),
    "chrgitm_lv": ("chrgitm_lv", "甲乙类", "医保目录甲乙类", "收费项目等级", "目录类别"),
    "preselfpay_ratio": ("preselfpay_ratio", "先行自付比例", "个人先行自付比例", "自付比例"),
    "pay_std": ("pay_std", "支付标准", "医保支付标准", "最高支付限价", "支付标准(元)"),
    "limit_text": ("limit_text", "限定支付范围", "医保支付限定范围", "限定范围", "备注"),
    "limit_codes": ("limit_codes", "限定条件代码"),
    "spec": ("spec", "规格", "注册规格", "规格型号"),
    "dosform": ("dosform", "剂型", "注册剂型"),
    "unit": ("unit", "计价单位", "最小包装单位", "单位"),
    "producer": ("producer", "生产企业", "药品企业", "生产厂家", "企业名称"),
}
HEADER = {alias: field for field, aliases in COLUMNS.items() for alias in aliases}
REQUIRED = ("med_list_codg", "name", "chrgitm_lv")


class CatalogueError(YibaoError):
    title = "目录导入被拒绝(未写入任何数据)"
    status = 422


class CatalogueConflict(CatalogueError):
    title = "目录版本冲突"
    status = 409


# --- coded conditions -------------------------------------------------------------------------------

_CLAUSE = re.compile(r"^(gend|age|level|med_type|dise)(>=|<=|=|>|<)([0-9A-Za-z.|]+)$")
_OPS = {"gend": ("=",), "age": (">=", "<=", ">", "<", "="), "level": (">=", "<=", "=", ">", "<"),
        "med_type": ("=",), "dise": ("=",)}


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.key}{self.op}{'|'.join(self.values)}"


def parse_conditions(text: str | None) -> tuple[Condition, ...]:
    """``gend=2;age>=18`` → conditions; ValueError (Chinese) naming the clause otherwise."""
    out = []
    for raw in (text or "").replace("；", ";").split(";"):
        clause = raw.strip().replace(" ", "")
        if not clause:
            continue
        m = _CLAUSE.match(clause)
        if not m or m.group(2) not in _OPS[m.group(1)]:
            raise ValueError(f"限定条件 {clause!r} 无法识别: 写作 gend=1|2, age>=18, level>=2, med_type=21|14, dise=E11")
        key, op, value = m.groups()
        values = tuple(v for v in value.split("|") if v)
        if key in ("age", "level") and (len(values) != 1 or not values[0].isdigit()):
            raise ValueError(f"限定条件 {clause!r}: {key} 须与一个整数比较")
        if key == "gend" and not set(values) <= {"1", "2"}:
            raise ValueError(f"限定条件 {clause!r}: 性别为 1(男)或 2(女)")
        out.append(Condition(key, op, values))
    return tuple(out)


def _compare(actual: int, op: str, bound: int) -> bool:
    return {"=": actual == bound, ">=": actual >= bound, "<=": actual <= bound, ">": actual > bound,
            "<": actual < bound}[op]


def conditions_met(conds: tuple[Condition, ...], *, gend: str | None, age: int, level: str, med_type: str,
                   dise_codg: str) -> tuple[bool, str | None]:
    """(True, None) when every clause holds for the visit, else (False, the first clause that does not)."""
    for c in conds:
        if c.key == "gend":
            ok = gend in c.values
        elif c.key == "age":
            ok = _compare(age, c.op, int(c.values[0]))
        elif c.key == "level":
            ok = level.isdigit() and _compare(int(level), c.op, int(c.values[0]))
        elif c.key == "med_type":
            ok = med_type in c.values
        else:
            ok = any((dise_codg or "").startswith(v) for v in c.values)
        if not ok:
            return False, str(c)
    return True, None


# --- from a version's entries to the engine's rules ----------------------------------------------------


def item_rule(chrgitm_lv: str, preselfpay_ratio: Decimal | None, default_share: Decimal,
              pay_std_fen: int | None) -> ItemRule:
    """The engine's classification of an entry: 丙类 out of scope; 乙类 with its own share or the version's;
    甲类 none; 支付标准 as the per-unit cap (the part above it is 超限价自付)."""
    if chrgitm_lv == "03":
        return ItemRule("03", False, 0, 1, pay_std_fen)
    share = preselfpay_ratio if preselfpay_ratio is not None else (default_share if chrgitm_lv == "02" else Decimal(0))
    num, den = rate_parts(share)
    return ItemRule(chrgitm_lv, True, num, den, pay_std_fen)
