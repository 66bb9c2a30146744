"""The audit rule library: each rule is its parameters, its Chinese text and one SQL query.

Queries are written in DuckDB's dialect using only what SQLGlot carries to Spark (batch) and
to SQLite (online): joins, window functions, ``QUALIFY``, ``DATE_DIFF('day', ...)`` on dates, and
inline tables as ``SELECT ... UNION ALL SELECT ...``; they return :data:`model.HIT_COLUMNS`.
Catalogue knowledge (restricted items, pairs, limits) comes from the parameters as small
inline tables, so a region changes data, never SQL. Arithmetic stays exact on every engine
(SQLite has no DECIMAL): money is integer fen (``lines.fee``, ``vx.medfee``), quantities that
are compared or summed are integer ten-thousandths (``lines.cnt4``, :func:`qty`), and every
non-integer intermediate is ``ROUND``-ed before a cast (DuckDB rounds on cast, SQLite truncates).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Iterable

from pydantic import Field, model_validator

from yibao.sql import q
from yibao.supervision.model import Params, Rule

RULES: dict[str, Rule] = {}
INPATIENT = ("21", "52")
OUTPATIENT = ("11", "14")
EARLIER = "(a.begntime < b.begntime OR (a.begntime = b.begntime AND a.mdtrt_id < b.mdtrt_id))"


def rule(id: str, name: str, family: str, description: str, stages: str, severity: str = "medium", *,
         params: type[Params], scope: str = "visit", needs: tuple[str, ...] = (), blocking: bool = False,
         fp_bound: float = 0.002, codes: Callable[[Params], Iterable[str]] | None = None,
         history_codes: Callable[[Params], Iterable[str]] | None = None,
         ) -> Callable[[Callable[[Params], str]], Callable[[Params], str]]:
    def register(build: Callable[[Params], str]) -> Callable[[Params], str]:
        RULES[id] = Rule(id, name, family, description, frozenset(stages.split()), severity, params, build,
                         scope, needs, blocking, fp_bound, codes, history_codes)
        return build
    return register


def item_codes(p) -> Iterable[str]:
    """The listed codes of a catalogue rule whose parameters are ``items``."""
    return (i.code for i in p.items)


def drug_codes(p) -> Iterable[str]:
    return (d.code for d in p.drugs)


def lit(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal)):
        return str(value)
    return q(str(value))


def values(rows: list[tuple], columns: str) -> str:
    """A small inline table: ``(SELECT v AS col, ... UNION ALL VALUES (...), ...)``. The first
    row names the columns because SQLite allows no column list on a ``VALUES`` alias; the rest
    stay one ``VALUES`` so Spark plans one local relation, not a union per row."""
    names = [c.strip() for c in columns.split(",")]
    if not rows:
        return "(SELECT " + ", ".join(f"NULL AS {n}" for n in names) + " WHERE 1 = 0)"
    head = "SELECT " + ", ".join(f"{lit(v)} AS {n}" for v, n in zip(rows[0], names))
    rest = ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows[1:])
    return f"({head} UNION ALL VALUES {rest})" if rest else f"({head})"


def ten_thousandths(value: Decimal) -> int:
    """A quantity parameter in the unit of ``lines.cnt4`` (exact: quantities carry 4 decimals)."""
    return int((Decimal(value) * 10000).to_integral_value())


def qty(expr: str) -> str:
    """Text of a quantity held in ten-thousandths, the same on every engine ('3.0', '2.5')."""
    return f"CAST(ROUND({expr} / 10000, 4) AS VARCHAR)"


def in_list(items) -> str:
    return "(" + ", ".join(lit(i) for i in items) + ")"


def fen(yuan: Decimal) -> int:
    return int((Decimal(yuan) * 100).to_integral_value())


def line_hit(detail: str, amount: str = "l.fee", alias: str = "l") -> str:
    return (f"{alias}.mdtrt_id AS subject, {alias}.mdtrt_id, {alias}.feedetl_sn, {alias}.fixmedins_code, "
            f"CAST({amount} AS BIGINT) AS amount, {detail} AS detail")


def visit_hit(detail: str, amount: str = "x.medfee", alias: str = "x") -> str:
    return (f"{alias}.mdtrt_id AS subject, {alias}.mdtrt_id, CAST(NULL AS VARCHAR) AS feedetl_sn, "
            f"{alias}.fixmedins_code, CAST({amount} AS BIGINT) AS amount, {detail} AS detail")


def s(expr: str) -> str:
    return f"CAST({expr} AS VARCHAR)"


# --- parameter shapes -----------------------------------------------------------------------

Code = Field(min_length=1, max_length=50)


class Item(Params):
    code: str = Code
    name: str = ""


class GenderItem(Item):
    gend: str = Field(pattern="^[12]$")


class AgeItem(Item):
    max_age: int | None = Field(default=None, ge=0, le=150)
    min_age: int | None = Field(default=None, ge=0, le=150)


class LevelItem(Item):
    levels: list[str] = Field(min_length=1)


class IndicationItem(Item):
    prefixes: list[str] = Field(min_length=1)


class PriceItem(Item):
    cap: Decimal = Field(gt=0, decimal_places=2)


class LimitItem(Item):
    limit: Decimal = Field(gt=0, decimal_places=4)  # quantities carry 4 decimals (cnt4)


class WindowItem(Item):
    days: int = Field(ge=1, le=366)


class DrugItem(Item):
    days_per_unit: Decimal = Field(gt=0, decimal_places=4)


class PairItem(Params):
    main: str = Code
    main_name: str = ""
    included: str = Code
    included_name: str = ""


class PackageItem(Item):
    price: Decimal = Field(gt=0, decimal_places=2)
    components: list[str] = Field(min_length=2)
    min_components: int = Field(ge=2)

    @model_validator(mode="after")
    def _enough(self):
        if self.min_components > len(self.components):
            raise ValueError("min_components 不能大于 components 的个数")
        return self


class ProcedureItem(Item):
    procedures: list[str] = Field(min_length=1)


class Items(Params):
    items: list[Item] = Field(min_length=1)


class GenderItems(Params):
    items: list[GenderItem] = Field(min_length=1)


class AgeItems(Params):
    items: list[AgeItem] = Field(min_length=1)


class LevelItems(Params):
    items: list[LevelItem] = Field(min_length=1)


class ModeItems(Params):
    items: list[Item] = Field(min_length=1)
    inpatient_med_types: list[str] = Field(default=list(INPATIENT), min_length=1)


class IndicationItems(Params):
    items: list[IndicationItem] = Field(min_length=1)


class PriceItems(Params):
    items: list[PriceItem] = Field(min_length=1)


class LimitItems(Params):
    items: list[LimitItem] = Field(min_length=1)
    med_types: list[str] = Field(default_factory=list)  # empty: every medical type


class BedItems(Params):
    items: list[Item] = Field(min_length=1)
    tolerance_days: int = Field(default=0, ge=0, le=30)
    inpatient_med_types: list[str] = Field(default=list(INPATIENT), min_length=1)


class WindowItems(Params):
    items: list[WindowItem] = Field(min_length=1)


class Pairs(Params):
    pairs: list[PairItem] = Field(min_length=1)


class Packages(Params):
    packages: list[PackageItem] = Field(min_length=1)


class DuplicateLine(Params):
    exempt_codes: list[str] = Field(default_factory=list)


class Overlap(Params):
    drugs: list[DrugItem] = Field(min_length=1)
    tolerance_days: int = Field(default=7, ge=0, le=90)


class SingleSupply(Params):
    drugs: list[DrugItem] = Field(min_length=1)
    max_days: int = Field(default=30, ge=1, le=366)
    long_rx_days: int = Field(default=84, ge=1, le=366)
    long_rx_prefixes: list[str] = Field(default_factory=list)
    long_rx_med_types: list[str] = Field(default_factory=list)


class Readmission(Params):
    days: int = Field(default=15, ge=1, le=90)
    prefix_len: int = Field(default=3, ge=1, le=10)
    same_institution: bool = True
    med_types: list[str] = Field(default=["21"], min_length=1)


class IdleStay(Params):
    idle_codes: list[str] = Field(min_length=1)
    min_days: int = Field(default=4, ge=2, le=90)
    max_treatment_share: Decimal = Field(default=Decimal("0.25"), gt=0, lt=1)
    med_types: list[str] = Field(default=["21"], min_length=1)


class LowStandard(Params):
    max_cost: Decimal = Field(default=Decimal("500"), gt=0)
    max_days: int = Field(default=2, ge=1, le=30)
    max_lines: int = Field(default=6, ge=1, le=100)
    med_types: list[str] = Field(default=["21"], min_length=1)


class Impossible(Params):
    female_only_prefixes: list[str] = Field(min_length=1)
    male_only_prefixes: list[str] = Field(min_length=1)
    maternity_med_types: list[str] = Field(default=["52"], min_length=1)
    maternity_min_age: int = Field(default=14, ge=0, le=150)
    maternity_max_age: int = Field(default=55, ge=0, le=150)


class OverlapVisits(Params):
    med_types: list[str] = Field(default=list(OUTPATIENT), min_length=1)


class StayClash(Params):
    outpatient_med_types: list[str] = Field(default=list(OUTPATIENT), min_length=1)
    inpatient_med_types: list[str] = Field(default=list(INPATIENT), min_length=1)


class TravelItem(Params):
    """Travel time between two cities (area-code prefixes), either direction."""
    a: str = Field(min_length=2, max_length=6)
    b: str = Field(min_length=2, max_length=6)
    minutes: int = Field(ge=0, le=24 * 60)


class MultiArea(Params):
    med_types: list[str] = Field(default=list(OUTPATIENT), min_length=1)
    area_digits: int = Field(default=6, ge=2, le=6)
    # travel-time plausibility: the later visit is flagged only when it starts sooner after the
    # earlier one ended than the travel time between the two areas
    city_digits: int = Field(default=4, ge=2, le=6)
    same_city_minutes: int = Field(default=30, ge=0, le=24 * 60)
    default_minutes: int = Field(default=120, ge=0, le=24 * 60)
    travel: list[TravelItem] = Field(default_factory=list)
    # minutes forgiven where visit times are not when the patient was there (begntime = 挂号 time of an
    # online booking, endtime = 结算 time paid later by phone): the gap must fall short of travel − tolerance
    tolerance_minutes: int = Field(default=0, ge=0, le=12 * 60)


class Frequent(Params):
    days: int = Field(default=30, ge=1, le=366)
    max_visits: int = Field(default=8, ge=1, le=1000)
    med_types: list[str] = Field(default=["11"], min_length=1)


class PhysicianLoad(Params):
    max_per_day: int = Field(default=60, ge=1, le=10_000)


class SameResults(Params):
    min_patients: int = Field(default=3, ge=2, le=1000)
    min_results: int = Field(default=3, ge=1, le=1000)


class Stock(Params):
    tolerance: Decimal = Field(default=Decimal("0.10"), ge=0, le=10)


class NonMedical(Params):
    codes: list[str] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    pharmacy_types: list[str] = Field(default=["2"], min_length=1)

    @model_validator(mode="after")
    def _some(self):
        if not self.codes and not self.prefixes:
            raise ValueError("codes 与 prefixes 至少给出一项")
        return self


class PeerCost(Params):
    factor: Decimal = Field(default=Decimal("2.0"), gt=1)
    min_visits: int = Field(default=30, ge=1)


class PeerStay(Params):
    factor: Decimal = Field(default=Decimal("1.8"), gt=1)
    min_admissions: int = Field(default=20, ge=1)
    med_types: list[str] = Field(default=["21"], min_length=1)


class PeerReadmission(Params):
    days: int = Field(default=15, ge=1, le=90)
    factor: Decimal = Field(default=Decimal("2.0"), gt=1)
    min_excess: Decimal = Field(default=Decimal("0.10"), gt=0, lt=1)
    min_admissions: int = Field(default=20, ge=1)
    med_types: list[str] = Field(default=["21"], min_length=1)


class Procedures(Params):
    items: list[ProcedureItem] = Field(min_length=1)


# --- 限性别 / 限年龄 / 限医院等级 / 限就医方式 / 限适应症 -----------------------------------------


@rule("SV-GEND-01", "限性别项目", "限性别", "限定性别使用的药品、诊疗项目不得用于另一性别的参保人",
      "pre during after", "high", params=GenderItems, blocking=True, codes=item_codes)
def _gender(p: GenderItems) -> str:
    c = values([(i.code, i.name, i.gend) for i in p.items], "code, name, gend")
    detail = ("l.med_list_codg || ' ' || c.name || ' 限' || CASE c.gend WHEN '1' THEN '男' ELSE '女' END"
              " || '性使用, 参保人性别为' || CASE l.gend WHEN '1' THEN '男' ELSE '女' END")
    return (f"SELECT {line_hit(detail)} FROM lines l JOIN {c} c ON c.code = l.med_list_codg "
            f"WHERE l.gend IN ('1', '2') AND l.gend <> c.gend")


@rule("SV-AGE-01", "限儿童项目用于成人", "限年龄", "限定儿童使用的项目, 参保人年龄超过上限",
      "pre during after", "high", params=AgeItems, blocking=True, codes=item_codes)
def _child_only(p: AgeItems) -> str:
    c = values([(i.code, i.name, i.max_age) for i in p.items if i.max_age is not None], "code, name, max_age")
    detail = f"l.med_list_codg || ' ' || c.name || ' 限 ' || {s('c.max_age')} || ' 岁及以下, 参保人 ' || {s('l.age')} || ' 岁'"
    return f"SELECT {line_hit(detail)} FROM lines l JOIN {c} c ON c.code = l.med_list_codg WHERE l.age > c.max_age"


@rule("SV-AGE-02", "限年龄下限项目", "限年龄", "限定一定年龄以上使用的项目, 参保人年龄低于下限",
      "pre during after", "medium", params=AgeItems, codes=item_codes)
def _min_age(p: AgeItems) -> str:
    c = values([(i.code, i.name, i.min_age) for i in p.items if i.min_age is not None], "code, name, min_age")
    detail = f"l.med_list_codg || ' ' || c.name || ' 限 ' || {s('c.min_age')} || ' 岁及以上, 参保人 ' || {s('l.age')} || ' 岁'"
    return f"SELECT {line_hit(detail)} FROM lines l JOIN {c} c ON c.code = l.med_list_codg WHERE l.age < c.min_age"


@rule("SV-LVL-01", "限医院等级项目", "限医院等级", "限定在一定等级医疗机构开展的项目, 在其他等级机构收费",
      "pre during after", "medium", params=LevelItems, codes=item_codes)
def _level(p: LevelItems) -> str:
    c = values([(i.code, i.name, lv) for i in p.items for lv in i.levels], "code, name, level")
    detail = "l.med_list_codg || ' ' || k.name || ' 不得在 ' || l.level || ' 级机构收费'"
    return (f"SELECT {line_hit(detail)} FROM lines l "
            f"JOIN (SELECT DISTINCT code, name FROM {c} c0) k ON k.code = l.med_list_codg "
            f"LEFT JOIN {c} a ON a.code = l.med_list_codg AND a.level = l.level WHERE a.code IS NULL")


@rule("SV-MODE-01", "限住院项目用于门诊", "限就医方式", "限定住院使用的项目, 在门诊就诊中收费",
      "pre during after", "medium", params=ModeItems, codes=item_codes)
def _inpatient_only(p: ModeItems) -> str:
    c = values([(i.code, i.name) for i in p.items], "code, name")
    detail = "l.med_list_codg || ' ' || c.name || ' 限住院使用, 本次医疗类别 ' || l.med_type"
    return (f"SELECT {line_hit(detail)} FROM lines l JOIN {c} c ON c.code = l.med_list_codg "
            f"WHERE l.med_type NOT IN {in_list(p.inpatient_med_types)}")


@rule("SV-MODE-02", "限门诊项目用于住院", "限就医方式", "限定门诊使用的项目(如门诊诊查费), 在住院中收费",
      "pre during after", "low", params=ModeItems, codes=item_codes)
def _outpatient_only(p: ModeItems) -> str:
    c = values([(i.code, i.name) for i in p.items], "code, name")
    detail = "l.med_list_codg || ' ' || c.name || ' 限门诊使用, 本次医疗类别 ' || l.med_type"
    return (f"SELECT {line_hit(detail)} FROM lines l JOIN {c} c ON c.code = l.med_list_codg "
            f"WHERE l.med_type IN {in_list(p.inpatient_med_types)}")


@rule("SV-IND-01", "限适应症用药无相应诊断", "限适应症", "限定支付范围的药品, 就诊诊断不符合限定的适应症",
      "pre during after", "medium", params=IndicationItems, codes=item_codes)
def _indication(p: IndicationItems) -> str:
    c = values([(i.code, i.name, x) for i in p.items for x in i.prefixes], "code, name, prefix")
    detail = "l.med_list_codg || ' ' || k.name || ' 限适应症, 诊断 ' || l.dise_codg || ' 不在限定范围'"
    return (f"SELECT {line_hit(detail)} FROM lines l "
            f"JOIN (SELECT DISTINCT code, name FROM {c} c0) k ON k.code = l.med_list_codg "
            f"LEFT JOIN (SELECT DISTINCT l2.feedetl_sn FROM lines l2 JOIN {c} c1 ON c1.code = l2.med_list_codg "
            f"AND l2.dise_codg LIKE c1.prefix || '%') ok ON ok.feedetl_sn = l.feedetl_sn WHERE ok.feedetl_sn IS NULL")


@rule("SV-SWAP-01", "高值耗材无对应手术", "串换项目", "高值医用耗材收费, 但本次就诊没有与之对应的手术操作",
      "during after", "medium", params=Procedures, codes=item_codes)
def _consumable(p: Procedures) -> str:
    c = values([(i.code, i.name, x) for i in p.items for x in i.procedures], "code, name, prefix")
    detail = "l.med_list_codg || ' ' || k.name || ' 无对应手术, 手术操作 ' || COALESCE(l.oprn_oprt_code, '无')"
    return (f"SELECT {line_hit(detail)} FROM lines l "
            f"JOIN (SELECT DISTINCT code, name FROM {c} c0) k ON k.code = l.med_list_codg "
            f"LEFT JOIN (SELECT DISTINCT l2.feedetl_sn FROM lines l2 JOIN {c} c1 ON c1.code = l2.med_list_codg "
            f"AND l2.oprn_oprt_code LIKE c1.prefix || '%') ok ON ok.feedetl_sn = l.feedetl_sn WHERE ok.feedetl_sn IS NULL")


# --- 重复收费 / 分解收费 / 超标准收费 / 超频次 / 超数量 ---------------------------------------------


@rule("SV-DUP-01", "同一明细重复收费", "重复收费", "同一就诊中同一项目在同一时间以相同单价和数量收费两次以上",
      "pre during after", "medium", params=DuplicateLine, needs=("fee_items.fee_ocur_time",))
def _duplicate_line(p: DuplicateLine) -> str:
    exempt = f"AND l.med_list_codg NOT IN {in_list(p.exempt_codes)}" if p.exempt_codes else ""
    detail = "l.med_list_codg || ' 于 ' || " + s("l.fee_ocur_time") + " || ' 重复收费'"
    # numbering only the lines whose (time, price, quantity) repeats — a superset of the repeated whole keys, found
    # by grouping three numbers (far cheaper than partitioning every line by five columns, two of them text)
    key = "fee_ocur_time, pric_fen, cnt4"
    same = "d.fee_ocur_time = l0.fee_ocur_time AND d.pric_fen IS NOT DISTINCT FROM l0.pric_fen AND d.cnt4 IS NOT DISTINCT FROM l0.cnt4"
    return (f"SELECT {line_hit(detail)} FROM (SELECT l0.*, ROW_NUMBER() OVER (PARTITION BY l0.mdtrt_id, "
            f"l0.med_list_codg, l0.pric_fen, l0.cnt4, l0.fee_ocur_time ORDER BY l0.feedetl_sn) AS rn "
            f"FROM lines l0 JOIN (SELECT {key} FROM lines WHERE fee_ocur_time IS NOT NULL GROUP BY {key} "
            f"HAVING COUNT(*) > 1) d ON {same}) l WHERE l.rn > 1 {exempt}")


@rule("SV-DUP-02", "限定间隔内重复检查", "重复收费", "同一参保人在限定天数内再次收取同一检查检验项目",
      "during after", "medium", params=WindowItems, codes=item_codes,
      history_codes=item_codes)
def _repeat_window(p: WindowItems) -> str:
    c = values([(i.code, i.name, i.days) for i in p.items], "code, name, days")
    detail = ("b.med_list_codg || ' ' || b.name || ' 在 ' || " + s("b.days") + " || ' 天内重复收费, 上次 ' || "
              + s("a.fee_day"))
    return (f"SELECT {line_hit(detail, 'b.fee', 'b')} FROM (SELECT l.*, c.name, c.days FROM lines l JOIN {c} c "
            f"ON c.code = l.med_list_codg) b JOIN (SELECT l.* FROM lines l JOIN {c} c ON c.code = l.med_list_codg) a "
            f"ON a.psn_no = b.psn_no AND a.med_list_codg = b.med_list_codg AND a.mdtrt_id <> b.mdtrt_id "
            f"WHERE {EARLIER} AND DATE_DIFF('day', a.fee_day, b.fee_day) < b.days "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY b.feedetl_sn ORDER BY a.fee_day DESC, a.feedetl_sn) = 1")


@rule("SV-DUP-03", "项目内涵重复收费", "重复收费", "已包含在另一项目中的项目, 在同一就诊中另行收费",
      "pre during after", "medium", params=Pairs, codes=lambda p: (x.included for x in p.pairs))
def _included(p: Pairs) -> str:
    c = values([(x.main, x.main_name, x.included, x.included_name) for x in p.pairs],
               "main, main_name, included, included_name")
    detail = "b.med_list_codg || ' ' || c.included_name || ' 已包含在 ' || c.main || ' ' || c.main_name || ' 中'"
    return (f"SELECT DISTINCT {line_hit(detail, 'b.fee', 'b')} FROM lines b JOIN {c} c ON c.included = b.med_list_codg "
            f"JOIN lines a ON a.mdtrt_id = b.mdtrt_id AND a.med_list_codg = c.main")


@rule("SV-SPLIT-01", "分解收费", "分解收费", "应按组合项目整体收费的, 拆分为多个单项分别收费",
      "pre during after", "medium", params=Packages, codes=lambda p: (x for k in p.packages for x in k.components))
def _split(p: Packages) -> str:
    c = values([(k.code, k.name, fen(k.price), x, k.min_components) for k in p.packages for x in k.components],
               "code, name, price, component, min_components")
    detail = ("'组合项目 ' || g.code || ' ' || g.name || ' 拆分为 ' || " + s("g.n") + " || ' 个单项收费, 合计 ' || "
              + s("g.total") + " || ' 分, 组合价 ' || " + s("g.price") + " || ' 分'")
    amount = "CASE WHEN ROW_NUMBER() OVER (PARTITION BY l.mdtrt_id, g.code ORDER BY l.feedetl_sn) = 1 THEN GREATEST(g.total - g.price, 0) ELSE 0 END"
    return (f"SELECT {line_hit(detail, amount)} FROM lines l JOIN {c} c ON c.component = l.med_list_codg "
            f"JOIN (SELECT l1.mdtrt_id, c1.code, c1.name, c1.price, COUNT(DISTINCT l1.med_list_codg) AS n, SUM(l1.fee) AS total "
            f"FROM lines l1 JOIN {c} c1 ON c1.component = l1.med_list_codg GROUP BY l1.mdtrt_id, c1.code, c1.name, "
            f"c1.price, c1.min_components HAVING COUNT(DISTINCT l1.med_list_codg) >= c1.min_components) g "
            f"ON g.mdtrt_id = l.mdtrt_id AND g.code = c.code "
            f"WHERE g.mdtrt_id NOT IN (SELECT l2.mdtrt_id FROM lines l2 JOIN {c} c2 ON c2.code = l2.med_list_codg)")


@rule("SV-PRICE-01", "超标准收费", "超标准收费", "单价高于目录规定的最高限价",
      "pre during after", "medium", params=PriceItems, codes=item_codes)
def _price(p: PriceItems) -> str:
    c = values([(i.code, i.name, fen(i.cap)) for i in p.items], "code, name, cap")
    detail = ("l.med_list_codg || ' ' || c.name || ' 单价 ' || " + s("l.pric_fen") + " || ' 分, 限价 ' || "
              + s("c.cap") + " || ' 分'")
    amount = "l.fee - CAST(ROUND(c.cap * l.cnt4 / 10000, 0) AS BIGINT)"
    return (f"SELECT {line_hit(detail, amount)} FROM lines l JOIN {c} c ON c.code = l.med_list_codg "
            f"WHERE l.pric_fen > c.cap")


class CapMultiple(Params):
    """最高支付限价 is a payment cap: a price somewhat above it is settled (the excess is 超限价自费), so
    only a multiple of it is 超标准收费. ``items`` lists the caps; ``yibao audit --pack`` adds the policy
    pack's own catalogue caps (:func:`yibao.supervision.ruleset.with_pack_caps`)."""
    factor: Decimal = Field(default=Decimal("2"), gt=1, decimal_places=2)
    items: list[PriceItem] = Field(default_factory=list)


@rule("SV-PRICE-03", "单价数倍于支付限价(超标准收费)", "超标准收费",
      "单价达到目录最高支付限价的 factor 倍以上(限价取自规则参数, 及 --pack 给出的政策包目录)",
      "pre during after", "medium", params=CapMultiple, codes=item_codes)
def _cap_multiple(p: CapMultiple) -> str:
    c = values([(i.code, i.name, fen(i.cap)) for i in p.items], "code, name, cap")
    ratio = qty("CAST(ROUND(l.pric_fen * 10000 / c.cap, 0) AS BIGINT)")
    detail = ("l.med_list_codg || ' ' || c.name || ' 单价 ' || " + s("l.pric_fen") + " || ' 分, 支付限价 ' || "
              + s("c.cap") + f" || ' 分, 为限价的 ' || {ratio} || ' 倍(阈值 {p.factor} 倍)'")
    amount = "GREATEST(0, l.fee - CAST(ROUND(c.cap * l.cnt4 / 10000, 0) AS BIGINT))"
    return (f"SELECT {line_hit(detail, amount)} FROM lines l JOIN {c} c ON c.code = l.med_list_codg "
            f"WHERE c.cap > 0 AND l.pric_fen * 100 >= c.cap * {hundredths(p.factor)}")


def _over_limit(p: LimitItems, group: str, what: str) -> str:
    """Lines of a code whose summed quantity in a group (visit-day, visit) exceeds the limit;
    the excess share of the group's amount is charged to its first line."""
    c = values([(i.code, i.name, ten_thousandths(i.limit)) for i in p.items], "code, name, lim")
    types = f"AND l.med_type IN {in_list(p.med_types)}" if p.med_types else ""
    detail = (f"l.med_list_codg || ' ' || l.name || ' {what}数量 ' || {qty('l.total_cnt')} || ', 限 ' || {qty('l.lim')}")
    amount = ("CASE WHEN l.rn = 1 THEN CAST(ROUND(l.group_fee * (l.total_cnt - l.lim) / l.total_cnt, 0) AS BIGINT) "
              "ELSE 0 END")
    return (f"SELECT {line_hit(detail, amount)} FROM (SELECT l0.*, c.name, c.lim, "
            f"SUM(l0.cnt4) OVER (PARTITION BY {group}) AS total_cnt, SUM(l0.fee) OVER (PARTITION BY {group}) AS group_fee, "
            f"ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY l0.feedetl_sn) AS rn "
            f"FROM lines l0 JOIN {c} c ON c.code = l0.med_list_codg) l WHERE l.total_cnt > l.lim {types}")


@rule("SV-FREQ-01", "超每日限定频次", "超限定频次", "同一项目每日收费次数超过限定频次",
      "pre during after", "medium", params=LimitItems, codes=item_codes)
def _per_day(p: LimitItems) -> str:
    return _over_limit(p, "l0.mdtrt_id, l0.med_list_codg, l0.fee_day", "当日")


@rule("SV-FREQ-02", "超每次住院限定次数", "超限定频次", "同一项目在一次住院中收费次数超过限定次数",
      "during after", "medium", params=LimitItems, codes=item_codes)
def _per_admission(p: LimitItems) -> str:
    return _over_limit(p, "l0.mdtrt_id, l0.med_list_codg", "本次住院")


@rule("SV-QTY-02", "单次就诊超量", "超数量", "同一药品或项目在一次就诊中的数量超过限定数量",
      "pre during after", "low", params=LimitItems, codes=item_codes)
def _per_visit(p: LimitItems) -> str:
    return _over_limit(p, "l0.mdtrt_id, l0.med_list_codg", "本次就诊")


@rule("SV-QTY-01", "床位护理天数超住院天数", "超数量", "按日收费的床位费、护理费数量超过实际住院天数",
      "after", "medium", params=BedItems)
def _bed_days(p: BedItems) -> str:
    c = values([(i.code, i.name) for i in p.items], "code, name")
    detail = (f"l.med_list_codg || ' ' || l.name || ' 收费 ' || {qty('l.total_cnt')} || ' 天, 住院 ' || {s('l.los')} || ' 天'")
    amount = ("CASE WHEN l.rn = 1 THEN CAST(ROUND(l.group_fee * (l.total_cnt - l.los * 10000) / l.total_cnt, 0) AS BIGINT) "
              "ELSE 0 END")
    g = "l0.mdtrt_id, l0.med_list_codg"
    return (f"SELECT {line_hit(detail, amount)} FROM (SELECT l0.*, c.name, SUM(l0.cnt4) OVER (PARTITION BY {g}) AS total_cnt, "
            f"SUM(l0.fee) OVER (PARTITION BY {g}) AS group_fee, ROW_NUMBER() OVER (PARTITION BY {g} ORDER BY l0.feedetl_sn) AS rn "
            f"FROM lines l0 JOIN {c} c ON c.code = l0.med_list_codg WHERE l0.med_type IN {in_list(p.inpatient_med_types)}) l "
            f"WHERE l.total_cnt > (l.los + {p.tolerance_days}) * 10000")


# --- 超量开药 ------------------------------------------------------------------------------------

def _supply(drugs: list[DrugItem]) -> str:
    c = values([(d.code, d.name, ten_thousandths(d.days_per_unit)) for d in drugs], "code, name, days_per_unit")
    return (f"(SELECT l.*, c.name, DATE_DIFF('day', DATE '2000-01-01', l.fee_day) AS d0, "
            f"CAST(ROUND(l.cnt4 * c.days_per_unit / 100000000, 0) AS BIGINT) AS supply FROM lines l JOIN {c} c ON c.code = l.med_list_codg)")


@rule("SV-DRUG-01", "重复开药(用药天数重叠)", "超量开药",
      "同一参保人同一药品, 上次开具的用药天数尚未用完(超过容差天数)又再次开药", "during after", "medium", params=Overlap,
      codes=drug_codes, history_codes=drug_codes)
def _overlap(p: Overlap) -> str:
    detail = ("l.med_list_codg || ' ' || l.name || ' 上次所开药量可用至第 ' || " + s("l.prev_end - l.d0")
              + " || ' 天后, 重叠超过 ' || " + s(p.tolerance_days) + " || ' 天'")
    amount = "LEAST(l.fee, CAST(ROUND(l.fee * (l.prev_end - l.d0) / GREATEST(l.supply, 1), 0) AS BIGINT))"
    return (f"SELECT {line_hit(detail, amount)} FROM (SELECT t.*, MAX(t.d0 + t.supply) OVER (PARTITION BY t.psn_no, "
            f"t.med_list_codg ORDER BY t.begntime, t.mdtrt_id, t.feedetl_sn ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) "
            f"AS prev_end FROM {_supply(p.drugs)} t) l WHERE l.prev_end - l.d0 > {p.tolerance_days}")


@rule("SV-DRUG-02", "单次开药超过限定天数", "超量开药",
      "一次开药的用药天数超过限定天数; 长处方(慢性病诊断或门诊慢特病)适用较长的限定天数",
      "pre during after", "medium", params=SingleSupply, codes=drug_codes)
def _single_supply(p: SingleSupply) -> str:
    long_rx = " OR ".join([f"l.dise_codg LIKE {lit(x + '%')}" for x in p.long_rx_prefixes]
                          + ([f"l.med_type IN {in_list(p.long_rx_med_types)}"] if p.long_rx_med_types else [])) or "FALSE"
    limit = f"CASE WHEN {long_rx} THEN {p.long_rx_days} ELSE {p.max_days} END"
    detail = f"l.med_list_codg || ' ' || l.name || ' 一次开药 ' || {s('l.supply')} || ' 天, 限 ' || {s('l.lim')} || ' 天'"
    amount = "CAST(ROUND(l.fee * (l.supply - l.lim) / l.supply, 0) AS BIGINT)"
    return (f"SELECT {line_hit(detail, amount)} FROM (SELECT t.*, {limit.replace('l.', 't.')} AS lim "
            f"FROM {_supply(p.drugs)} t) l WHERE l.supply > l.lim")


# --- 分解住院 / 挂床住院 / 低标准入院 --------------------------------------------------------------


@rule("SV-ADM-01", "分解住院", "分解住院", "出院后限定天数内以相同诊断再次入院(同一机构)",
      "during after", "high", params=Readmission)
def _readmission(p: Readmission) -> str:
    same = "AND a.fixmedins_code = b.fixmedins_code" if p.same_institution else ""
    detail = ("'出院 ' || " + s("a.end_day") + " || ' 后 ' || " + s("DATE_DIFF('day', a.end_day, b.begn_day)")
              + " || ' 天以相同诊断 ' || b.dise_codg || ' 再次入院, 上次就诊 ' || a.mdtrt_id")
    types = in_list(p.med_types)
    return (f"SELECT {visit_hit(detail, 'b.medfee', 'b')} FROM vx b JOIN vx a ON a.psn_no = b.psn_no "
            f"AND a.mdtrt_id <> b.mdtrt_id {same} WHERE a.med_type IN {types} AND b.med_type IN {types} "
            f"AND {EARLIER} AND a.endtime <= b.begntime AND DATE_DIFF('day', a.end_day, b.begn_day) <= {p.days} "
            f"AND SUBSTRING(a.dise_codg, 1, {p.prefix_len}) = SUBSTRING(b.dise_codg, 1, {p.prefix_len}) "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY b.mdtrt_id ORDER BY a.endtime DESC, a.mdtrt_id) = 1")


@rule("SV-ADM-02", "挂床住院", "挂床住院", "住院期间多数日子没有任何诊疗项目(只有床位、护理等按日收费项目)",
      "after", "high", params=IdleStay, needs=("fee_items.fee_ocur_time",))
def _idle(p: IdleStay) -> str:
    idle = in_list(p.idle_codes)
    detail = ("'住院 ' || " + s("x.los") + " || ' 天, 有诊疗项目的只有 ' || " + s("t.days") + " || ' 天'")
    return (f"SELECT {visit_hit(detail, 't.idle_fee')} FROM vx x JOIN (SELECT l.mdtrt_id, "
            f"COUNT(DISTINCT CASE WHEN l.med_list_codg NOT IN {idle} AND l.fee_ocur_time IS NOT NULL THEN l.fee_day END) AS days, "
            f"COUNT(l.fee_ocur_time) AS timed, SUM(CASE WHEN l.med_list_codg IN {idle} THEN l.fee ELSE 0 END) AS idle_fee "
            f"FROM lines l WHERE l.mdtrt_id IN (SELECT x0.mdtrt_id FROM vx x0 WHERE x0.med_type IN {in_list(p.med_types)} "
            f"AND x0.los >= {p.min_days}) GROUP BY l.mdtrt_id) t ON t.mdtrt_id = x.mdtrt_id "
            f"WHERE x.med_type IN {in_list(p.med_types)} AND x.los >= {p.min_days} AND t.timed > 0 "
            f"AND t.idle_fee > 0 AND t.days < x.los * {p.max_treatment_share}")


@rule("SV-ADM-03", "低标准入院", "低标准入院", "住院费用低、天数短、项目少且无手术, 可在门诊诊治",
      "after", "medium", params=LowStandard)
def _low_standard(p: LowStandard) -> str:
    detail = ("'住院 ' || " + s("x.los") + " || ' 天, 费用 ' || " + s("x.medfee") + " || ' 分, ' || "
              + s("t.n") + " || ' 行明细, 无手术'")
    short = (f"x.med_type IN {in_list(p.med_types)} AND x.medfee < {fen(p.max_cost)} AND x.los <= {p.max_days} "
             f"AND x.oprn_oprt_code IS NULL")
    # lines counted only for the visits the other conditions leave (the same counts, a fraction of the lines)
    return (f"SELECT {visit_hit(detail)} FROM vx x JOIN (SELECT mdtrt_id, COUNT(*) AS n FROM lines WHERE mdtrt_id IN "
            f"(SELECT x.mdtrt_id FROM vx x WHERE {short}) GROUP BY mdtrt_id) t "
            f"ON t.mdtrt_id = x.mdtrt_id WHERE {short} AND t.n <= {p.max_lines}")


# --- 冒名就医 / 同一时间多地就医 / 频繁就诊 / 医师超量接诊 --------------------------------------------


@rule("SV-ID-01", "诊疗与性别年龄不符(冒名就医)", "冒名就医", "就诊的诊断或医疗类别与参保人的性别、年龄不可能相符",
      "pre during after", "high", params=Impossible, blocking=True)
def _impossible(p: Impossible) -> str:
    dx = values([("2", x) for x in p.female_only_prefixes] + [("1", x) for x in p.male_only_prefixes], "only_gend, prefix")
    mat = in_list(p.maternity_med_types)
    detail = ("'诊断 ' || x.dise_codg || ', 医疗类别 ' || x.med_type || ' 与参保人(' || "
              "CASE x.gend WHEN '1' THEN '男' ELSE '女' END || ', ' || " + s("x.age") + " || ' 岁)不符'")
    return (f"SELECT {visit_hit(detail)} FROM vx x WHERE x.mdtrt_id IN (SELECT x2.mdtrt_id FROM vx x2 JOIN {dx} d "
            f"ON x2.dise_codg LIKE d.prefix || '%' WHERE x2.gend IN ('1', '2') AND x2.gend <> d.only_gend) "
            f"OR (x.med_type IN {mat} AND (x.gend = '1' OR x.age < {p.maternity_min_age} OR x.age > {p.maternity_max_age}))")


@rule("SV-ID-02", "同一时间两家机构就诊(冒名就医)", "冒名就医", "同一参保人在两家机构的门诊就诊时间重叠",
      "during after", "high", params=OverlapVisits)
def _overlap_visits(p: OverlapVisits) -> str:
    t = in_list(p.med_types)
    detail = "'与 ' || a.fixmedins_code || ' 的就诊 ' || a.mdtrt_id || ' 时间重叠'"
    return (f"SELECT {visit_hit(detail, 'b.medfee', 'b')} FROM vx b JOIN vx a ON a.psn_no = b.psn_no "
            f"AND a.fixmedins_code <> b.fixmedins_code WHERE a.med_type IN {t} AND b.med_type IN {t} AND {EARLIER} "
            f"AND b.begntime < a.endtime QUALIFY ROW_NUMBER() OVER (PARTITION BY b.mdtrt_id ORDER BY a.begntime, a.mdtrt_id) = 1")


@rule("SV-ID-03", "住院期间门诊就医", "冒名就医", "参保人住院期间在门诊就诊结算(挂床或冒名)",
      "after", "high", params=StayClash)
def _stay_clash(p: StayClash) -> str:
    detail = "'住院 ' || a.mdtrt_id || '(' || a.fixmedins_code || ')期间门诊就诊'"
    return (f"SELECT {visit_hit(detail, 'b.medfee', 'b')} FROM vx b JOIN vx a ON a.psn_no = b.psn_no "
            f"WHERE a.med_type IN {in_list(p.inpatient_med_types)} AND b.med_type IN {in_list(p.outpatient_med_types)} "
            f"AND a.begntime < b.begntime AND b.begntime < a.endtime "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY b.mdtrt_id ORDER BY a.begntime, a.mdtrt_id) = 1")


@rule("SV-ID-04", "同一天异地就医(路程不可能)", "同一时间多地就医",
      "同一参保人同一天在不同区县的机构先后门诊就诊, 两次就诊的间隔短于两地之间的路程时间(路程表见参数)",
      "after", "low", params=MultiArea, fp_bound=0.005)
def _multi_area(p: MultiArea) -> str:
    t = in_list(p.med_types)
    n, c = p.area_digits, p.city_digits
    pairs = sorted({(x.a, x.b, x.minutes) for x in p.travel} | {(x.b, x.a, x.minutes) for x in p.travel})
    table = values(pairs, "ca, cb, minutes")
    need = (f"CASE WHEN SUBSTRING(a.inst_admdvs, 1, {c}) = SUBSTRING(b.inst_admdvs, 1, {c}) THEN {p.same_city_minutes} "
            f"ELSE COALESCE((SELECT MIN(tt.minutes) FROM {table} tt WHERE tt.ca = SUBSTRING(a.inst_admdvs, 1, {c}) "
            f"AND tt.cb = SUBSTRING(b.inst_admdvs, 1, {c})), {p.default_minutes}) END")
    detail = ("'同日已在 ' || a.inst_admdvs || ' 的 ' || a.fixmedins_code || ' 就诊, 结束后 ' || "
              + s("CAST(ROUND((b.begn_sec - a.end_sec) / 60, 0) AS BIGINT)") + " || ' 分钟即在 ' || b.inst_admdvs || "
              "' 就诊, 两地路程约需 ' || " + s(need) + " || ' 分钟'")
    return (f"SELECT {visit_hit(detail, 'b.medfee', 'b')} FROM vx b JOIN vx a ON a.psn_no = b.psn_no "
            f"AND a.begn_day = b.begn_day WHERE a.med_type IN {t} AND b.med_type IN {t} AND {EARLIER} "
            f"AND a.endtime <= b.begntime AND SUBSTRING(a.inst_admdvs, 1, {n}) <> SUBSTRING(b.inst_admdvs, 1, {n}) "
            f"AND b.begn_sec - a.end_sec < 60 * ({need} - {p.tolerance_minutes}) "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY b.mdtrt_id ORDER BY a.begntime, a.mdtrt_id) = 1")


@rule("SV-VISIT-01", "频繁就诊", "频繁就诊", "同一参保人在滚动天数内的门诊就诊次数超过阈值",
      "during after", "low", params=Frequent)
def _frequent(p: Frequent) -> str:
    t = in_list(p.med_types)
    detail = f"'{p.days} 天内第 ' || {s('g.n')} || ' 次门诊, 阈值 {p.max_visits} 次'"
    # only persons with more such visits in all than the threshold can pass it: the self-join reads only theirs
    many = f"(SELECT psn_no FROM vx WHERE med_type IN {t} GROUP BY psn_no HAVING COUNT(*) > {p.max_visits})"
    return (f"SELECT {visit_hit(detail)} FROM vx x JOIN (SELECT b.mdtrt_id, COUNT(*) AS n FROM vx b JOIN vx a "
            f"ON a.psn_no = b.psn_no WHERE a.med_type IN {t} AND b.med_type IN {t} AND b.psn_no IN {many} "
            f"AND ({EARLIER} OR a.mdtrt_id = b.mdtrt_id) AND DATE_DIFF('day', a.begn_day, b.begn_day) < {p.days} "
            f"GROUP BY b.mdtrt_id HAVING COUNT(*) > {p.max_visits}) g ON g.mdtrt_id = x.mdtrt_id")


@rule("SV-DOC-01", "医师超量接诊", "医师超量接诊", "同一医师一天接诊的人次超过阈值(超出部分)",
      "after", "medium", params=PhysicianLoad, needs=("visits.atddr_no",))
def _physician(p: PhysicianLoad) -> str:
    detail = f"'医师 ' || x.atddr_no || ' 当日第 ' || {s('x.rn')} || ' 人次, 阈值 {p.max_per_day}'"
    return (f"SELECT x.atddr_no AS subject, x.mdtrt_id, CAST(NULL AS VARCHAR) AS feedetl_sn, x.fixmedins_code, "
            f"x.medfee AS amount, {detail} AS detail FROM (SELECT v.*, ROW_NUMBER() OVER (PARTITION BY v.fixmedins_code, "
            f"v.atddr_no, v.begn_day ORDER BY v.begntime, v.mdtrt_id) AS rn FROM vx v "
            # numbering only the physician-days over the threshold, found by one grouping
            f"JOIN (SELECT fixmedins_code, atddr_no, begn_day FROM vx WHERE atddr_no IS NOT NULL "
            f"GROUP BY fixmedins_code, atddr_no, begn_day HAVING COUNT(*) > {p.max_per_day}) d "
            f"ON d.fixmedins_code IS NOT DISTINCT FROM v.fixmedins_code AND d.atddr_no = v.atddr_no "
            f"AND d.begn_day IS NOT DISTINCT FROM v.begn_day) x WHERE x.rn > {p.max_per_day}")


# --- 检查检验雷同 / 进销存 / 非医药品 ------------------------------------------------------------


@rule("SV-LAB-01", "检查检验结果雷同", "检查检验雷同", "同一机构不同参保人的整套检查检验结果完全相同",
      "after", "high", params=SameResults, needs=("exam_results",))
def _same_results(p: SameResults) -> str:
    sig = ("(SELECT e.mdtrt_id, SUM(HASH(e.med_list_codg || '=' || e.rslt_val)) AS sig, COUNT(*) AS n "
           "FROM exam_results e GROUP BY e.mdtrt_id)")
    detail = f"'整套 ' || {s('g.n')} || ' 项结果与本机构 ' || {s('g.patients')} || ' 名参保人相同'"
    return (
            f"SELECT {line_hit(detail)} FROM lines l JOIN {sig} r ON r.mdtrt_id = l.mdtrt_id "
            f"JOIN (SELECT x.fixmedins_code, r2.sig, r2.n, COUNT(DISTINCT x.psn_no) AS patients FROM vx x JOIN {sig} r2 "
            f"ON r2.mdtrt_id = x.mdtrt_id GROUP BY x.fixmedins_code, r2.sig, r2.n "
            f"HAVING COUNT(DISTINCT x.psn_no) >= {p.min_patients} AND r2.n >= {p.min_results}) g "
            f"ON g.fixmedins_code = l.fixmedins_code AND g.sig = r.sig AND g.n = r.n "
            f"JOIN (SELECT DISTINCT mdtrt_id, med_list_codg FROM exam_results) e ON e.mdtrt_id = l.mdtrt_id "
            f"AND e.med_list_codg = l.med_list_codg")


@rule("SV-STOCK-01", "药品进销存不符", "药品进销存不符", "机构某药品的医保结算数量超过同期采购数量(含容差)",
      "after", "high", params=Stock, scope="provider", needs=("purchases",), fp_bound=0.02)
def _stock(p: Stock) -> str:
    detail = ("t.med_list_codg || ' 结算 ' || " + s("t.sold") + " || ', 采购 ' || " + s("t.bought"))
    return (f"SELECT t.fixmedins_code AS subject, CAST(NULL AS VARCHAR) AS mdtrt_id, CAST(NULL AS VARCHAR) AS feedetl_sn, "
            f"t.fixmedins_code, CAST(ROUND(t.sold_fee * (t.sold - t.bought) / t.sold, 0) AS BIGINT) AS amount, {detail} AS detail "
            f"FROM (SELECT b.fixmedins_code, b.med_list_codg, b.bought, l.sold, l.sold_fee "
            f"FROM (SELECT fixmedins_code, med_list_codg, SUM(cnt) AS bought FROM purchases GROUP BY fixmedins_code, "
            # the lines of purchased codes summed per institution and code, then matched (not matched, then summed)
            f"med_list_codg) b JOIN (SELECT fixmedins_code, med_list_codg, SUM(cnt) AS sold, SUM(fee) AS sold_fee FROM lines "
            f"WHERE med_list_codg IN (SELECT med_list_codg FROM purchases) GROUP BY fixmedins_code, med_list_codg) l "
            f"ON l.fixmedins_code = b.fixmedins_code AND l.med_list_codg = b.med_list_codg) t "
            f"WHERE t.sold > t.bought * (1 + {p.tolerance})")


@rule("SV-PHAR-01", "医保卡购买非医药品", "医保卡购买非医药品", "定点零售药店以医保结算生活用品、食品、化妆品等非医药品",
      "pre during after", "high", params=NonMedical, needs=("institutions.fixmedins_type",), blocking=True)
def _non_medical(p: NonMedical) -> str:
    cond = " OR ".join(([f"l.med_list_codg IN {in_list(p.codes)}"] if p.codes else [])
                       + [f"l.med_list_codg LIKE {lit(x + '%')}" for x in p.prefixes])
    detail = "l.med_list_codg || ' 为非医药品, 药店 ' || l.fixmedins_code"
    return (f"SELECT {line_hit(detail)} FROM lines l WHERE l.fixmedins_type IN {in_list(p.pharmacy_types)} AND ({cond})")


# --- 机构层面异常 ------------------------------------------------------------------------------


def _provider_hit(detail: str, amount: str) -> str:
    return (f"t.fixmedins_code AS subject, CAST(NULL AS VARCHAR) AS mdtrt_id, CAST(NULL AS VARCHAR) AS feedetl_sn, "
            f"t.fixmedins_code, CAST({amount} AS BIGINT) AS amount, {detail} AS detail")


@rule("SV-PROV-01", "机构次均费用异常", "机构异常", "机构的次均费用远高于同等级同类别机构的中位数",
      "after", "low", params=PeerCost, scope="provider", fp_bound=0.02)
def _peer_cost(p: PeerCost) -> str:
    detail = ("'医疗类别 ' || t.med_type || ' 次均 ' || " + s("CAST(t.avg_fee AS BIGINT)")
              + " || ' 分, 同级中位数 ' || " + s("CAST(t.peer AS BIGINT)") + " || ' 分, ' || " + s("t.n") + " || ' 人次'")
    return (f"SELECT {_provider_hit(detail, 'ROUND((t.avg_fee - t.peer) * t.n, 0)')} FROM (SELECT s.*, "
            f"MEDIAN(s.avg_fee) OVER (PARTITION BY s.level, s.med_type) AS peer FROM (SELECT fixmedins_code, level, med_type, "
            f"COUNT(*) AS n, AVG(medfee) AS avg_fee FROM vx GROUP BY fixmedins_code, level, med_type "
            f"HAVING COUNT(*) >= {p.min_visits}) s) t WHERE t.avg_fee > t.peer * {p.factor}")


@rule("SV-PROV-02", "机构平均住院日异常", "机构异常", "机构的平均住院日远高于同等级机构的中位数",
      "after", "low", params=PeerStay, scope="provider", fp_bound=0.02)
def _peer_stay(p: PeerStay) -> str:
    detail = ("'平均住院日 ' || " + s("ROUND(t.avg_los, 1)") + " || ' 天, 同级中位数 ' || " + s("ROUND(t.peer, 1)")
              + " || ' 天, ' || " + s("t.n") + " || ' 人次'")
    amount = "ROUND(t.total_fee * (t.avg_los - t.peer) / t.avg_los, 0)"
    return (f"SELECT {_provider_hit(detail, amount)} FROM (SELECT s.*, MEDIAN(s.avg_los) OVER (PARTITION BY s.level) AS peer "
            f"FROM (SELECT fixmedins_code, level, COUNT(*) AS n, AVG(los) AS avg_los, SUM(medfee) AS total_fee FROM vx "
            f"WHERE med_type IN {in_list(p.med_types)} GROUP BY fixmedins_code, level HAVING COUNT(*) >= {p.min_admissions}) s) t "
            f"WHERE t.avg_los > t.peer * {p.factor}")


@rule("SV-PROV-03", "机构再入院率异常", "机构异常", "机构的短期再入院率远高于同等级机构的中位数",
      "after", "low", params=PeerReadmission, scope="provider", fp_bound=0.02)
def _peer_readmission(p: PeerReadmission) -> str:
    types = in_list(p.med_types)
    detail = ("'" + str(p.days) + " 天再入院率 ' || " + s("ROUND(t.rate * 100, 1)") + " || '%, 同级中位数 ' || "
              + s("ROUND(t.peer * 100, 1)") + " || '%'")
    amount = "t.readmit_fee"
    return (f"SELECT {_provider_hit(detail, amount)} FROM (SELECT s.*, MEDIAN(s.rate) OVER (PARTITION BY s.level) AS peer "
            f"FROM (SELECT b.fixmedins_code, b.level, COUNT(*) AS n, AVG(CASE WHEN r.mdtrt_id IS NULL THEN 0.0 ELSE 1.0 END) AS rate, "
            f"SUM(CASE WHEN r.mdtrt_id IS NULL THEN 0 ELSE b.medfee END) AS readmit_fee FROM vx b LEFT JOIN "
            f"(SELECT DISTINCT b2.mdtrt_id FROM vx b2 JOIN vx a ON a.psn_no = b2.psn_no AND a.fixmedins_code = b2.fixmedins_code "
            f"AND a.mdtrt_id <> b2.mdtrt_id WHERE a.med_type IN {types} AND b2.med_type IN {types} "
            f"AND a.endtime <= b2.begntime AND DATE_DIFF('day', a.end_day, b2.begn_day) <= {p.days}) r ON r.mdtrt_id = b.mdtrt_id "
            f"WHERE b.med_type IN {types} GROUP BY b.fixmedins_code, b.level HAVING COUNT(*) >= {p.min_admissions}) s) t "
            f"WHERE t.rate > t.peer * {p.factor} AND t.rate > t.peer + {p.min_excess}")


# --- issue 20: dates, near-duplicates, cross-institution splits, statistical outliers, over-testing ---


class DateRange(Params):
    tolerance_days: int = Field(default=1, ge=0, le=30)


class NearDuplicate(Params):
    window_minutes: int = Field(default=240, ge=1, le=24 * 60)
    categories: list[str] = Field(default=["03", "04", "05", "06"], min_length=1)  # 检查 化验 治疗 手术
    med_types: list[str] = Field(default=list(INPATIENT), min_length=1)
    exempt_codes: list[str] = Field(default_factory=list)


class CrossReadmission(Params):
    min_days: int = Field(default=1, ge=0, le=90)
    max_days: int = Field(default=7, ge=0, le=90)
    prefix_len: int = Field(default=3, ge=1, le=10)
    area_digits: int = Field(default=4, ge=2, le=6)
    med_types: list[str] = Field(default=["21"], min_length=1)
    # an admission that records a referral (转诊) from the earlier stay's level is a transfer, not a split
    referral_exempt: bool = True


class Baseline(Params):
    """A robust outlier against the learned (code, level, med_type) baseline: value ≥ factor × median and
    value − median ≥ mad_multiple × max(MAD, median × min_spread), on codes with ≥ min_n lines whose
    MAD ≤ max_rel_mad × median (codes with a usual value)."""
    factor: Decimal = Field(default=Decimal("4"), gt=1, decimal_places=2)
    mad_multiple: Decimal = Field(default=Decimal("10"), gt=0, decimal_places=2)
    min_spread: Decimal = Field(default=Decimal("0.05"), ge=0, decimal_places=2)
    max_rel_mad: Decimal = Field(default=Decimal("0.5"), gt=0, decimal_places=2)
    min_n: int = Field(default=20, ge=3)
    # item categories judged when the line has one (empty: every line); a line without a category is judged
    categories: list[str] = Field(default_factory=list)


class QtyBaseline(Baseline):
    """A quantity outlier counts only when billed in the code's usual unit: a unit price under
    ``min_price_share`` × the learned median price is a smaller unit (片 rather than 盒), where ten
    times the count is the same amount, not over-dispensing."""
    min_price_share: Decimal = Field(default=Decimal("0.5"), ge=0, le=1, decimal_places=2)
    # 超量开药 is what a patient takes home: outpatient medical types (an inpatient line is an order on the ward)
    med_types: list[str] = Field(default=list(OUTPATIENT), min_length=1)


class OverTesting(Params):
    categories: list[str] = Field(default=["03", "04"], min_length=1)  # 检查费, 化验费
    dx_len: int = Field(default=3, ge=1, le=10)
    min_n: int = Field(default=20, ge=3)
    min_tests: int = Field(default=10, ge=1)
    factor: Decimal = Field(default=Decimal("3"), gt=1, decimal_places=2)
    mad_multiple: Decimal = Field(default=Decimal("5"), gt=0, decimal_places=2)
    med_types: list[str] = Field(default=list(OUTPATIENT), min_length=1)


def hundredths(x: Decimal) -> int:
    return int((Decimal(x) * 100).to_integral_value())


@rule("SV-DATE-01", "明细日期超出就诊期间(虚构服务)", "虚构服务",
      "费用明细的发生日期早于入院(就诊)日或晚于出院日超过容差天数", "pre during after", "high",
      params=DateRange, needs=("fee_items.fee_ocur_time",))
def _line_dates(p: DateRange) -> str:
    detail = ("l.med_list_codg || ' 费用日期 ' || " + s("l.fee_day") + " || ', 就诊 ' || " + s("l.begn_day")
              + " || ' 至 ' || " + s("l.end_day"))
    return (f"SELECT {line_hit(detail)} FROM lines l WHERE l.fee_ocur_time IS NOT NULL "
            f"AND (DATE_DIFF('day', l.begn_day, l.fee_day) < -{p.tolerance_days} "
            f"OR DATE_DIFF('day', l.end_day, l.fee_day) > {p.tolerance_days})")


@rule("SV-DUP-04", "同日短时重复收费", "重复收费",
      "住院同一天同一检查、化验、治疗或手术项目在限定分钟内再次收费(同一时间的重复见 SV-DUP-01)",
      "pre during after", "medium", params=NearDuplicate,
      needs=("fee_items.fee_ocur_time", "fee_items.med_chrgitm_type"))
def _near_duplicate(p: NearDuplicate) -> str:
    exempt = f"AND b.med_list_codg NOT IN {in_list(p.exempt_codes)} " if p.exempt_codes else ""
    gap = "CAST(ROUND((b.fee_sec - a.fee_sec) / 60, 0) AS BIGINT)"
    detail = ("b.med_list_codg || ' 同日已收费(明细 ' || a.feedetl_sn || '), 相隔 ' || " + s(gap)
              + " || ' 分钟再次收费'")
    return (f"SELECT {line_hit(detail, 'b.fee', 'b')} FROM lines b JOIN lines a ON a.mdtrt_id = b.mdtrt_id "
            f"AND a.med_list_codg = b.med_list_codg AND a.fee_day = b.fee_day AND a.feedetl_sn <> b.feedetl_sn "
            f"WHERE b.med_type IN {in_list(p.med_types)} AND b.cat IN {in_list(p.categories)} {exempt}"
            f"AND a.fee_sec < b.fee_sec AND b.fee_sec - a.fee_sec <= {p.window_minutes * 60} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY b.feedetl_sn ORDER BY a.fee_sec DESC, a.feedetl_sn) = 1")


@rule("SV-ADM-04", "跨机构分解住院", "分解住院",
      "出院后限定天数内以相同诊断在同一城市的另一家机构再次入院(当日转院、登记了自上次机构等级转诊的除外)", "during after", "high",
      params=CrossReadmission)
def _cross_readmission(p: CrossReadmission) -> str:
    n = p.area_digits
    gap = "DATE_DIFF('day', a.end_day, b.begn_day)"
    detail = ("'在 ' || a.fixmedins_code || ' 出院 ' || " + s("a.end_day") + " || ' 后 ' || " + s(gap)
              + " || ' 天以相同诊断 ' || b.dise_codg || ' 在另一机构入院, 上次就诊 ' || a.mdtrt_id")
    types = in_list(p.med_types)
    return (f"SELECT {visit_hit(detail, 'b.medfee', 'b')} FROM vx b JOIN vx a ON a.psn_no = b.psn_no "
            f"AND a.mdtrt_id <> b.mdtrt_id AND a.fixmedins_code <> b.fixmedins_code "
            f"WHERE a.med_type IN {types} AND b.med_type IN {types} AND {EARLIER} AND a.endtime <= b.begntime "
            f"AND {gap} >= {p.min_days} AND {gap} <= {p.max_days} "
            f"AND SUBSTRING(a.inst_admdvs, 1, {n}) = SUBSTRING(b.inst_admdvs, 1, {n}) "
            f"AND SUBSTRING(a.dise_codg, 1, {p.prefix_len}) = SUBSTRING(b.dise_codg, 1, {p.prefix_len}) "
            + ("AND (b.referral_from_level IS NULL OR b.referral_from_level <> a.level) " if p.referral_exempt else "")
            + "QUALIFY ROW_NUMBER() OVER (PARTITION BY b.mdtrt_id ORDER BY a.endtime DESC, a.mdtrt_id) = 1")


def _outlier(p: Baseline, kind: str, value: str, unit: str, shown) -> tuple[str, str, str]:
    """The join on the learned baseline and the robust condition, both integer arithmetic."""
    f, k, sp, rel = hundredths(p.factor), hundredths(p.mad_multiple), hundredths(p.min_spread), hundredths(p.max_rel_mad)
    join = (f"JOIN baselines g ON g.kind = '{kind}' AND g.code = l.med_list_codg AND g.level = l.level "
            f"AND g.med_type = l.med_type "
            f"AND g.n >= {p.min_n} AND g.med > 0 AND g.mad * 100 <= g.med * {rel}")
    cond = (f"{value} * 100 >= g.med * {f} AND ({value} - g.med) * 100 >= "
            f"{k} * GREATEST(g.mad, CAST(ROUND(g.med * {sp} / 100, 0) AS BIGINT))")
    ratio = qty(f"CAST(ROUND({value} * 10000 / g.med, 0) AS BIGINT)")
    detail = (f"l.med_list_codg || ' {unit} ' || {shown(value)} || ', 同级(' || l.level || ')同类别(' || l.med_type || ')基线中位数 ' || "
              f"{shown('g.med')} || ', MAD ' || {shown('g.mad')} || '(' || {s('g.n')} || ' 行), 为中位数的 ' || "
              f"{ratio} || ' 倍; 阈值 ≥ {p.factor} 倍且偏离 ≥ {p.mad_multiple} × MAD'")
    return join, f"{cond}", detail


def _categories(p: Baseline) -> str:
    return f" AND (l.cat IS NULL OR l.cat IN {in_list(p.categories)})" if p.categories else ""


@rule("SV-PRICE-02", "单价显著高于同级基线(超标准收费)", "超标准收费",
      "明细单价远高于同一编码在同级机构的基线(中位数与 MAD 由理赔数据学得)", "pre during after", "medium",
      params=Baseline)
def _price_outlier(p: Baseline) -> str:
    join, cond, detail = _outlier(p, "price", "l.pric_fen", "单价(分)", s)
    amount = "LEAST(l.fee, GREATEST(0, l.fee - CAST(ROUND(g.med * l.cnt4 / 10000, 0) AS BIGINT)))"
    return f"SELECT {line_hit(detail, amount)} FROM lines l {join} WHERE {cond}{_categories(p)}"


@rule("SV-QTY-03", "数量显著高于同级基线(超量开药)", "超量开药",
      "明细数量远高于同一编码在同级机构的基线(中位数与 MAD 由理赔数据学得), 且按该编码通常的计价单位收费"
      "(单价不低于基线中位单价的 min_price_share 倍)", "pre during after", "medium",
      params=QtyBaseline)
def _qty_outlier(p: QtyBaseline) -> str:
    join, cond, detail = _outlier(p, "qty", "l.cnt4", "数量", qty)
    amount = "CAST(ROUND(l.fee * (l.cnt4 - g.med) / l.cnt4, 0) AS BIGINT)"
    unit = (" LEFT JOIN baselines u ON u.kind = 'price' AND u.code = l.med_list_codg AND u.level = l.level "
            "AND u.med_type = l.med_type")
    usual_unit = f" AND (u.med IS NULL OR l.pric_fen * 100 >= u.med * {hundredths(p.min_price_share)})"
    types = f" AND l.med_type IN {in_list(p.med_types)}"
    return f"SELECT {line_hit(detail, amount)} FROM lines l {join}{unit} WHERE {cond}{usual_unit}{types}{_categories(p)}"


@rule("SV-TEST-01", "过度检查(检查项目数远超同病种同级)", "过度检查",
      "一次就诊的不同检查化验项目数远高于同诊断、同级机构、同医疗类别的基线", "pre during after", "medium",
      params=OverTesting, needs=("fee_items.med_chrgitm_type",))
def _over_testing(p: OverTesting) -> str:
    f, k = hundredths(p.factor), hundredths(p.mad_multiple)
    cats = in_list(p.categories)
    per_visit = (f"(SELECT l.mdtrt_id, COUNT(DISTINCT l.med_list_codg) AS tests, SUM(l.fee) AS test_fee "
                 f"FROM lines l WHERE l.cat IN {cats} GROUP BY l.mdtrt_id)")
    # the diagnosis group when it has enough visits, else the level's whole medical type ('*')
    peer = (f"(SELECT x2.mdtrt_id, g.n, g.med, g.mad, g.code, ROW_NUMBER() OVER (PARTITION BY x2.mdtrt_id "
            f"ORDER BY CASE WHEN g.code = '*' THEN 1 ELSE 0 END) AS rk FROM vx x2 JOIN baselines g ON g.kind = 'tests' "
            f"AND x2.mdtrt_id IN (SELECT l.mdtrt_id FROM lines l WHERE l.cat IN {cats} GROUP BY l.mdtrt_id "
            f"HAVING COUNT(DISTINCT l.med_list_codg) >= {p.min_tests}) "  # only visits with enough tests to be hit
            f"AND g.level = x2.level AND g.med_type = x2.med_type AND g.n >= {p.min_n} "
            f"AND (g.code = SUBSTRING(x2.dise_codg, 1, {p.dx_len}) OR g.code = '*'))")
    detail = ("'不同检查化验项目 ' || " + s("t.tests") + " || ' 项, 同' || CASE WHEN g.code = '*' THEN '级同类别' "
              "ELSE '诊断(' || g.code || ')同级' END || '基线中位数 ' || " + s("g.med") + " || ', MAD ' || "
              + s("g.mad") + " || '(' || " + s("g.n") + " || ' 次就诊)'")
    amount = "CAST(ROUND(t.test_fee * (t.tests - g.med) / t.tests, 0) AS BIGINT)"
    return (f"SELECT {visit_hit(detail, amount)} FROM vx x JOIN {per_visit} t ON t.mdtrt_id = x.mdtrt_id "
            f"JOIN {peer} g ON g.mdtrt_id = x.mdtrt_id AND g.rk = 1 WHERE x.med_type IN {in_list(p.med_types)} "
            f"AND t.tests >= {p.min_tests} AND t.tests * 100 >= g.med * {f} AND (t.tests - g.med) * 100 >= {k} * GREATEST(g.mad, 1)")


class PeerPhysician(Params):
    factor: Decimal = Field(default=Decimal("2"), gt=1, decimal_places=2)
    mad_multiple: Decimal = Field(default=Decimal("6"), gt=0, decimal_places=2)
    min_visits: int = Field(default=30, ge=1)
    med_types: list[str] = Field(default=list(OUTPATIENT), min_length=1)


@rule("SV-DOC-02", "医师次均费用异常(同级同类别医师离群)", "医师异常",
      "医师的次均费用远高于同级机构、同医疗类别医师的中位数(以医师间的 MAD 计离群程度)",
      "after", "low", params=PeerPhysician, scope="provider", needs=("visits.atddr_no",), fp_bound=0.02)
def _peer_physician(p: PeerPhysician) -> str:
    detail = ("'医师 ' || t.atddr_no || ' 医疗类别 ' || t.med_type || ' ' || " + s("t.n") + " || ' 人次, 次均 ' || "
              + s("CAST(ROUND(t.avg_fee, 0) AS BIGINT)") + " || ' 分, 同级同类别医师中位数 ' || "
              + s("CAST(ROUND(t.peer, 0) AS BIGINT)") + " || ' 分, MAD ' || " + s("CAST(ROUND(t.mad, 0) AS BIGINT)")
              + " || ' 分, 偏离 ' || " + s("CAST(ROUND((t.avg_fee - t.peer) / GREATEST(t.mad, 1), 0) AS BIGINT)") + " || ' 个 MAD'")
    docs = (f"(SELECT v.atddr_no, v.level, v.med_type, ANY_VALUE(v.fixmedins_code) AS fixmedins_code, COUNT(*) AS n, "
            f"AVG(v.medfee) AS avg_fee FROM vx v WHERE v.atddr_no IS NOT NULL AND v.med_type IN {in_list(p.med_types)} "
            f"GROUP BY v.atddr_no, v.level, v.med_type HAVING COUNT(*) >= {p.min_visits})")
    peers = f"(SELECT level, med_type, MEDIAN(avg_fee) AS peer FROM {docs} GROUP BY level, med_type)"
    mads = (f"(SELECT d.level, d.med_type, MEDIAN(ABS(d.avg_fee - m.peer)) AS mad FROM {docs} d JOIN {peers} m "
            f"ON m.level = d.level AND m.med_type = d.med_type GROUP BY d.level, d.med_type)")
    return (f"SELECT t.atddr_no AS subject, CAST(NULL AS VARCHAR) AS mdtrt_id, CAST(NULL AS VARCHAR) AS feedetl_sn, "
            f"t.fixmedins_code, CAST(ROUND((t.avg_fee - t.peer) * t.n, 0) AS BIGINT) AS amount, {detail} AS detail "
            f"FROM (SELECT d.*, m.peer, a.mad FROM {docs} d JOIN {peers} m ON m.level = d.level AND m.med_type = d.med_type "
            f"JOIN {mads} a ON a.level = d.level AND a.med_type = d.med_type) t "
            f"WHERE t.avg_fee * 100 >= t.peer * {hundredths(p.factor)} "
            f"AND (t.avg_fee - t.peer) * 100 >= {hundredths(p.mad_multiple)} * GREATEST(t.mad, 1)")
