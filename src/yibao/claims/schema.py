"""The claims contract (理赔数据输入规范): four tables every batch command reads.

``persons`` (人员), ``institutions`` (定点医药机构), ``visits`` (就诊, mdtrt) and ``fee_items``
(费用明细, feedetl), with the national platform's field names. Amounts are yuan as exact
``decimal128(16, 2)`` (the engines turn them into integer fen), counts ``decimal128(16, 4)``,
times ``timestamp[ms]`` in local (Beijing) time without a time zone. The schemas below are the
single definition; ``docs/claims-schema.md`` explains them for people preparing an extract.

A directory holds one file per table: ``persons.parquet`` (or ``.csv`` / ``.xlsx``), ... or a
single Excel workbook with one sheet per table (sheet named ``persons`` or ``人员``, ...).
:func:`validate_claims` checks such a directory and returns a :class:`ClaimsReport` naming every
problem (code CLM…, table, row id, column, in Chinese); :func:`read_claims` returns the tables
in exactly these schemas or raises :class:`ClaimsError` carrying that report. Nothing reads a
directory that fails the checks.

>>> sorted(SCHEMAS)
['fee_items', 'institutions', 'persons', 'visits']
>>> SCHEMAS["visits"].field("medfee_sumamt").type
Decimal128Type(decimal128(16, 2))
>>> decimal_units(decimal_array(np.array([123, -5]), YUAN)).tolist()  # fen in, fen out
[123, -5]
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from yibao.errors import Problem, YibaoError

YUAN = pa.decimal128(16, 2)  # 金额(元), 精确到分
COUNT = pa.decimal128(16, 4)  # 数量, 最多 4 位小数
RATIO = pa.decimal128(6, 4)  # 比例 0–1, 最多 4 位小数
TIME = pa.timestamp("ms")  # 本地时间(北京时间), 无时区; Parquet 的时间精度最粗为毫秒

EXAMPLES_PER_CHECK = 10  # rows named per check; the rest are counted


def _col(name: str, type_: pa.DataType, zh: str, en: str, unit: str = "", required: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=not required, metadata={"zh": zh, "en": en, "unit": unit})


PERSONS = pa.schema([
    _col("psn_no", pa.string(), "人员编号(唯一)", "person number (unique)"),
    _col("certno", pa.string(), "证件号码(18 位身份证号, 含 GB 11643 校验位)", "ID number (18 digits, GB 11643 check digit)"),
    _col("psn_name", pa.string(), "姓名", "name"),
    _col("gend", pa.string(), "性别: 1 男, 2 女(GB/T 2261.1; 0 未知, 9 未说明)", "sex: 1 male, 2 female"),
    _col("age", pa.int16(), "年龄(周岁, 数据年度 1 月 1 日)", "age in completed years on 1 January", "岁"),
    _col("insutype", pa.string(), "险种: 310 职工基本医保, 390 城乡居民基本医保", "scheme: 310 employee, 390 resident"),
    _col("retiree", pa.bool_(), "是否退休(职工)", "retired employee"),
    _col("categories", pa.list_(pa.string()), "人员类别(政策包 categories 中的代码, 可为空)",
         "population categories (pack codes, may be empty)"),
    _col("admdvs", pa.string(), "参保地医保区划(6 位)", "insured area code (6 digits)"),
    _col("hh_no", pa.string(), "家庭编号", "household id"),
    _col("hh_income", YUAN, "家庭年可支配收入", "household annual disposable income", "元"),
], metadata={"zh": "人员", "en": "persons"})

INSTITUTIONS = pa.schema([
    _col("fixmedins_code", pa.string(), "定点医药机构编号(唯一)", "institution code (unique)"),
    _col("fixmedins_name", pa.string(), "定点医药机构名称", "institution name"),
    _col("level", pa.string(), "机构等级(政策包 levels 中的代码, 如 1 基层, 2 二级, 3 三级)",
         "institution level (pack level code)"),
    _col("admdvs", pa.string(), "机构所在医保区划(6 位)", "area code (6 digits)"),
], metadata={"zh": "定点医药机构", "en": "institutions"})

VISITS = pa.schema([
    _col("mdtrt_id", pa.string(), "就诊 ID(唯一)", "visit id (unique)"),
    _col("psn_no", pa.string(), "人员编号", "person number"),
    _col("insutype", pa.string(), "险种(与人员表一致)", "scheme (as in persons)"),
    _col("med_type", pa.string(), "医疗类别: 11 普通门诊, 14 门诊慢特病, 21 普通住院, 52 生育住院",
         "medical type: 11 outpatient, 14 chronic outpatient, 21 inpatient, 52 maternity"),
    _col("fixmedins_code", pa.string(), "定点医药机构编号", "institution code"),
    _col("level", pa.string(), "机构等级(与机构表一致)", "institution level (as in institutions)"),
    _col("begntime", TIME, "开始时间(入院/就诊)", "start (admission) time"),
    _col("endtime", TIME, "结束时间(出院)", "end (discharge) time"),
    _col("setl_time", TIME, "结算时间(决定适用的政策包与年度)", "settlement time (selects pack and year)"),
    _col("dise_codg", pa.string(), "主要诊断编码(ICD-10 医保版)", "main diagnosis (ICD-10)"),
    _col("oprn_oprt_code", pa.string(), "主要手术操作编码(ICD-9-CM-3 医保版), 可空", "main procedure, nullable",
         required=False),
    _col("referral_from_level", pa.string(), "医共体转诊: 转出机构等级, 非转诊为空",
         "referral: level referred from, null if none", required=False),
    _col("acct_balance", YUAN, "本次可用个人账户余额(结算前; 居民为 0)", "usable personal-account balance", "元"),
    _col("medfee_sumamt", YUAN, "医疗费总额(= 本次全部费用明细金额之和)", "total cost (= sum of items)", "元"),
], metadata={"zh": "就诊", "en": "visits"})

FEE_ITEMS = pa.schema([
    _col("feedetl_sn", pa.string(), "费用明细流水号(唯一)", "fee line id (unique)"),
    _col("mdtrt_id", pa.string(), "就诊 ID", "visit id"),
    _col("med_list_codg", pa.string(), "医疗目录编码", "catalog code"),
    _col("chrgitm_lv", pa.string(), "收费项目等级: 01 甲类, 02 乙类, 03 丙类(自费); 为空时按政策包目录",
         "charge class: 01 A, 02 B, 03 C (out of scope); null: from the pack's catalog", required=False),
    _col("pric", YUAN, "单价", "unit price", "元"),
    _col("cnt", COUNT, "数量", "quantity"),
    _col("det_item_fee_sumamt", YUAN, "明细项目费用总额(= 单价 × 数量, 四舍五入到分)",
         "line amount (= pric × cnt rounded half-up to the fen)", "元"),
    _col("preselfpay_ratio", RATIO, "本行先行自付比例(覆盖政策包的类别比例), 通常为空",
         "per-line pre-self-pay share overriding the pack, usually null", required=False),
], metadata={"zh": "费用明细", "en": "fee_items"})

# Optional columns: an extract may carry them or not. When present they are checked and kept; the supervision
# rules that read them (docs/claims-schema.md §3.5) run only when they are there, and say so when they are not.
INPATIENT_MED_TYPES = ("21", "52")  # 住院: their fee lines must carry 费用发生时间 when the extract has the column
CHRGITM_TYPES = {"01": "床位费", "02": "诊察费", "03": "检查费", "04": "化验费", "05": "治疗费", "06": "手术费",
                 "07": "护理费", "08": "卫生材料费", "09": "西药费", "10": "中药饮片费", "11": "中成药费",
                 "12": "一般诊疗费", "13": "挂号费", "14": "其他费"}  # 医疗收费项目类别 (national two-digit codes)
FIXMEDINS_TYPES = {"1": "定点医疗机构", "2": "定点零售药店"}
OFFSITE_STATUSES = {"local": "本地就医", "filed": "异地就医(已备案)", "unfiled": "异地就医(未备案)"}
# optional columns the supervision rules read
SUPERVISION_FIELDS: dict[str, tuple[pa.Field, ...]] = {
    "visits": (_col("atddr_no", pa.string(), "主治医生编码(医保医师代码)", "attending physician code", required=False),),
    "fee_items": (
        _col("fee_ocur_time", TIME, "费用发生时间(住院明细必填: 有此列时住院就诊的每条明细都须填写)",
             "time the charge was incurred (required on inpatient lines when the column is present)", required=False),
        _col("med_chrgitm_type", pa.string(), "医疗收费项目类别: 01 床位费 … 03 检查费, 04 化验费, 05 治疗费, 06 手术费, "
             "08 卫生材料费, 09 西药费 … 14 其他费", "item category (national two-digit code)", required=False),
    ),
    "institutions": (_col("fixmedins_type", pa.string(), "机构类型: 1 定点医疗机构, 2 定点零售药店",
                          "institution type: 1 medical institution, 2 retail pharmacy", required=False),),
}
# optional columns settlement reads (absent: every visit is local)
SETTLEMENT_FIELDS: dict[str, tuple[pa.Field, ...]] = {
    "visits": (_col("offsite_status", pa.string(), "异地就医状态: local 本地, filed 异地已备案, unfiled 异地未备案; 为空按本地",
                    "out-of-region status: local, filed (valid 备案 on the visit date), unfiled; null: local",
                    required=False),),
}
# the contract's optional columns: checked and kept when an extract has them
OPTIONAL_FIELDS: dict[str, tuple[pa.Field, ...]] = {
    name: SUPERVISION_FIELDS.get(name, ()) + SETTLEMENT_FIELDS.get(name, ())
    for name in sorted(set(SUPERVISION_FIELDS) | set(SETTLEMENT_FIELDS))}


def schema_with(name: str, present) -> pa.Schema:
    """A table's schema with those of its optional columns that ``present`` names, in the contract's order."""
    schema = SCHEMAS[name]
    for f in OPTIONAL_FIELDS.get(name, ()):
        if f.name in present:
            schema = schema.append(f)
    return schema


SCHEMAS: dict[str, pa.Schema] = {
    "persons": PERSONS, "institutions": INSTITUTIONS, "visits": VISITS, "fee_items": FEE_ITEMS,
}
TABLES = tuple(SCHEMAS)
KEYS = {"persons": "psn_no", "institutions": "fixmedins_code", "visits": "mdtrt_id", "fee_items": "feedetl_sn"}
TABLE_ZH = {"persons": "人员", "institutions": "定点医药机构", "visits": "就诊", "fee_items": "费用明细"}
SHEET_NAMES = {"persons": ("persons", "人员"), "institutions": ("institutions", "机构", "定点医药机构"),
               "visits": ("visits", "就诊"), "fee_items": ("fee_items", "费用明细")}
INSUTYPES = ("310", "320", "330", "390", "392", "510")
GENDERS = ("0", "1", "2", "9")
AMOUNT_COLUMNS = {"persons": ("hh_income",), "visits": ("acct_balance", "medfee_sumamt"),
                  "fee_items": ("pric", "cnt", "det_item_fee_sumamt")}


class ClaimsError(YibaoError):
    """A claims directory (or tables) that fails the contract; ``report`` has every problem."""

    title = "理赔数据校验失败"

    def __init__(self, problems, source: str = "", report: "ClaimsReport | None" = None):
        self.report = report
        super().__init__(problems, source)


@dataclass
class ClaimsReport:
    """Result of checking claims: row counts per table, files read, and every problem."""

    source: str = ""
    problems: list[Problem] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def render(self) -> str:
        lines = [f"理赔数据 {self.source}:" if self.source else "理赔数据:"]
        for name in TABLES:
            if name in self.rows:
                lines.append(f"  {name} ({TABLE_ZH[name]}): {self.rows[name]:,} 行  [{self.files.get(name, '')}]")
        if self.ok:
            lines.append("校验通过, 未发现问题。")
        else:
            lines.append(f"发现 {len(self.problems)} 个问题:")
            lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"source": self.source, "ok": self.ok, "rows": dict(self.rows), "files": dict(self.files),
                "problems": [{"code": p.code, "path": p.path, "message": p.message} for p in self.problems]}

    def raise_if_bad(self) -> None:
        if self.problems:
            raise ClaimsError(self.problems, self.source, self)


# --- exact decimals <-> integers ----------------------------------------------------------


def decimal_units(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The unscaled integers of a decimal128 column (fen for yuan columns); nulls become 0.

    Exact, and as fast as a memory copy: decimal128 values are 16-byte little-endian integers.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if not pa.types.is_decimal128(array.type):
        raise TypeError(f"not decimal128: {array.type}")
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    words = np.frombuffer(array.buffers()[1], dtype="<i8", count=2 * (array.offset + n))
    low, high = words[2 * array.offset::2], words[2 * array.offset + 1::2]
    if not np.array_equal(high, low >> 63):
        raise OverflowError("decimal value does not fit in 64 bits")
    out = low.astype(np.int64, copy=True)
    if array.null_count:
        out[~np.asarray(array.is_valid())] = 0
    return out


def decimal_array(units: np.ndarray, type_: pa.DataType = YUAN) -> pa.Array:
    """A decimal128 array from unscaled int64 values (fen for :data:`YUAN`), without nulls."""
    units = np.ascontiguousarray(units, dtype=np.int64)
    words = np.empty(2 * len(units), dtype="<i8")
    words[0::2] = units
    words[1::2] = units >> 63
    return pa.Array.from_buffers(type_, len(units), [None, pa.py_buffer(words)])


# --- finding and reading files ------------------------------------------------------------


@dataclass
class _Raw:
    table: pa.Table
    file: str
    text: bool  # CSV / Excel: every cell is text, parsed here


def _read_csv(path: Path) -> pa.Table:
    import pyarrow.csv as pacsv

    last: Exception | None = None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            with path.open("r", encoding=encoding, newline="") as fh:
                header = next(csv.reader(fh), [])
        except UnicodeDecodeError as exc:
            last = exc
            continue
        header = [h.strip() for h in header]
        try:
            return pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(column_names=header, skip_rows=1,
                                               encoding="utf8" if encoding == "utf-8-sig" else encoding),
                convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            last = exc
            if "UTF8" not in str(exc) and "utf" not in str(exc).lower() and not isinstance(exc, UnicodeDecodeError):
                raise
    raise last or ValueError("无法识别的文本编码")


def _read_parquet(path: Path, name: str) -> pa.Table:
    """The contract's columns of a Parquet file, each as one contiguous array.

    Each column is made contiguous and its chunks released before the next, so memory peaks at
    the table plus one column, not twice the table.
    """
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    wanted = set(SCHEMAS[name].names) | {f.name for f in OPTIONAL_FIELDS.get(name, ())}
    present = [c for c in names if c in wanted]
    table = pq.read_table(path, columns=present or names[:1])
    columns = {}
    for c in table.column_names:
        col = table.column(c)
        table = table.drop_columns([c])
        columns[c] = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        del col
    return pa.table(columns) if columns else table


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _read_sheet(sheet) -> pa.Table:
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        return pa.table({})
    names = [_cell_text(h).strip() for h in header]
    keep = [i for i, n in enumerate(names) if n]
    columns: list[list[str]] = [[] for _ in keep]
    for row in rows:
        if row is None or all(c is None or c == "" for c in row):
            continue
        for j, i in enumerate(keep):
            columns[j].append(_cell_text(row[i]) if i < len(row) else "")
    return pa.table({names[i]: pa.array(columns[j], pa.string()) for j, i in enumerate(keep)})


def _find_sources(directory: Path, problems: list[Problem]) -> dict[str, _Raw]:
    """One source per table: <name>.parquet | <name>.csv | <name>.xlsx | a workbook's sheet."""
    found: dict[str, list[tuple[str, Any]]] = {name: [] for name in TABLES}
    for name in TABLES:
        for ext in ("parquet", "csv", "xlsx"):
            path = directory / f"{name}.{ext}"
            if path.is_file():
                found[name].append((ext, path))
    workbooks = sorted(p for p in directory.glob("*.xlsx")
                       if p.stem not in TABLES and not p.name.startswith("~$"))
    books: dict[Path, Any] = {}
    if workbooks:
        from openpyxl import load_workbook
        for path in workbooks:
            try:
                books[path] = load_workbook(path, read_only=True, data_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable workbook is a user error
                problems.append(Problem("CLM002", path.name, f"无法读取 Excel 文件: {exc}"))
                continue
            for name in TABLES:
                for sheet in books[path].sheetnames:
                    if sheet.strip() in SHEET_NAMES[name]:
                        found[name].append(("sheet", (path, sheet)))
    sources: dict[str, _Raw] = {}
    for name in TABLES:
        options = found[name]
        if not options:
            problems.append(Problem(
                "CLM001", name,
                f"缺少{TABLE_ZH[name]}表: 需要 {name}.parquet、{name}.csv、{name}.xlsx 之一, "
                f"或某个 Excel 工作簿中名为 {'/'.join(SHEET_NAMES[name])} 的工作表"))
            continue
        if len(options) > 1:
            shown = "、".join(_describe(kind, where) for kind, where in options)
            problems.append(Problem("CLM003", name, f"{TABLE_ZH[name]}表有多个来源({shown}), 请只保留一个"))
            continue
        kind, where = options[0]
        label = _describe(kind, where)
        try:
            if kind == "parquet":
                sources[name] = _Raw(_read_parquet(where, name), label, text=False)
            elif kind == "csv":
                sources[name] = _Raw(_read_csv(where), label, text=True)
            elif kind == "xlsx":
                from openpyxl import load_workbook
                book = load_workbook(where, read_only=True, data_only=True)
                try:
                    sheet = next((book[s] for s in book.sheetnames if s.strip() in SHEET_NAMES[name]),
                                 book.worksheets[0])
                    sources[name] = _Raw(_read_sheet(sheet), label, text=True)
                finally:
                    book.close()
            else:
                path, sheet = where
                sources[name] = _Raw(_read_sheet(books[path][sheet]), label, text=True)
        except Exception as exc:  # noqa: BLE001 - a broken file is reported, never a traceback
            problems.append(Problem("CLM002", label, f"无法读取文件: {type(exc).__name__}: {exc}"))
    for book in books.values():
        book.close()
    return sources


def _describe(kind: str, where: Any) -> str:
    if kind == "sheet":
        path, sheet = where
        return f"{Path(path).name}#{sheet}"
    return Path(where).name


# --- column conformance -------------------------------------------------------------------


class _Rows:
    """Names rows of one table by their key (``visits(mdtrt_id=V1)``) or their number.

    Parentheses, not brackets: ``[mdtrt_id=V1]`` would be taken for a style tag by rich.
    """

    def __init__(self, name: str, table: pa.Table | None):
        self.name = name
        key = KEYS[name]
        self.keys = None
        if table is not None and key in table.column_names and _is_stringlike(table.schema.field(key).type):
            self.keys = table.column(key)

    def ref(self, i: int) -> str:
        if self.keys is not None:
            value = self.keys[int(i)].as_py()
            if value not in (None, ""):
                return f"{self.name}({KEYS[self.name]}={value})"
        return f"{self.name}(第{int(i) + 1}行)"


def _report_rows(problems: list[Problem], code: str, rows: _Rows, column: str, idx: np.ndarray,
                 message) -> None:
    """One problem per offending row (up to EXAMPLES_PER_CHECK), then a count of the rest."""
    idx = np.asarray(idx)
    for i in idx[:EXAMPLES_PER_CHECK]:
        msg = message(int(i)) if callable(message) else message
        problems.append(Problem(code, f"{rows.ref(i)}.{column}", f"{msg} (第 {int(i) + 1} 行)"))
    if len(idx) > EXAMPLES_PER_CHECK:
        msg = message(None) if callable(message) else message
        problems.append(Problem(code, f"{rows.name}.{column}",
                                f"{msg}: 共 {len(idx):,} 行, 以上仅列出前 {EXAMPLES_PER_CHECK} 行"))


def _is_stringlike(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_decimal(t: pa.DataType) -> bool:
    return pa.types.is_decimal(t)


def _type_name(t: pa.DataType) -> str:
    return {str(YUAN): "decimal128(16,2) 金额(元)", str(COUNT): "decimal128(16,4) 数量",
            str(RATIO): "decimal128(6,4) 比例", str(TIME): "timestamp[ms] 本地时间",
            "string": "string 文本", "int16": "int16 整数", "bool": "bool 布尔",
            "list<item: string>": "list<string> 文本列表"}.get(str(t), str(t))


def _flat(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _text_clean(arr: pa.Array) -> pa.Array:
    """Trim text and turn empty cells into nulls."""
    arr = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


_TRUE = ("true", "1", "t", "y", "yes", "是")
_FALSE = ("false", "0", "f", "n", "no", "否")
_LIST_SEP = r"[;；,，|、\s]+"


def _parse_one(text: str, target: pa.DataType) -> str | None:
    """Why one text cell does not convert (None if it does); used only to name bad rows."""
    if pa.types.is_integer(target):
        if not re.fullmatch(r"[+-]?\d+", text):
            return f"不是整数: {text!r}"
        if abs(int(text)) > 32767:
            return f"超出范围: {text!r}"
        return None
    if pa.types.is_decimal(target):
        try:
            value = Decimal(text)
        except InvalidOperation:
            return f"不是数字: {text!r}(不要使用千位分隔符或货币符号)"
        if not value.is_finite():
            return f"不是有限数字: {text!r}"
        if value.as_tuple().exponent < -target.scale:
            return f"最多 {target.scale} 位小数: {text!r}"
        if abs(value) >= Decimal(10) ** (target.precision - target.scale):
            return f"数值过大: {text!r}"
        return None
    if pa.types.is_timestamp(target):
        try:
            datetime.fromisoformat(text.replace("/", "-"))
        except ValueError:
            return f"不是时间: {text!r}(格式 YYYY-MM-DD HH:MM:SS 或 YYYY-MM-DD)"
        return None
    if pa.types.is_boolean(target):
        return None if text.lower() in _TRUE + _FALSE else f"不是布尔值: {text!r}(true/false、1/0、是/否)"
    return None


def _bad_text_rows(arr: pa.Array, target: pa.DataType) -> tuple[list[int], dict[int, str]]:
    bad: list[int] = []
    reasons: dict[int, str] = {}
    for i, value in enumerate(arr.to_pylist()):
        if value is None:
            continue
        why = _parse_one(value, target)
        if why:
            bad.append(i)
            if len(reasons) < EXAMPLES_PER_CHECK:
                reasons[i] = why
    return bad, reasons


def _split_list(arr: pa.Array) -> pa.Array:
    """'dibao;tekun' → ['dibao', 'tekun']; empty or null → []."""
    arr = pc.fill_null(pc.cast(arr, pa.string()), "")
    parts = pc.split_pattern_regex(arr, _LIST_SEP)
    values = pc.list_flatten(parts)
    parents = np.asarray(pc.list_parent_indices(parts))
    keep = np.asarray(pc.not_equal(values, ""))
    counts = np.bincount(parents[keep], minlength=len(arr))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    kept = pc.filter(values, pa.array(keep))
    return pa.ListArray.from_arrays(pa.array(offsets), kept)


def _conform(name: str, f: pa.Field, col, text: bool, rows: _Rows, problems: list[Problem]) -> pa.Array | None:
    """Column ``col`` in the exact type of ``f``, or None after reporting why it cannot be."""
    arr = _flat(col)
    t, target = arr.type, f.type
    where = f"{name}.{f.name}"

    def wrong_type(hint: str = "") -> None:
        problems.append(Problem("CLM011", where,
                                f"类型应为 {_type_name(target)}, 实际为 {t}" + (f"; {hint}" if hint else "")))

    if pa.types.is_null(t):  # an all-empty column read from a typed file
        arr = pa.nulls(len(arr), target)
        t = target
    if text and _is_stringlike(t) and not pa.types.is_string(target):
        return _parse_text(name, f, arr, rows, problems)
    if pa.types.is_string(target):
        if not _is_stringlike(t):
            wrong_type("编码类字段必须是文本, 以保留前导零" if pa.types.is_integer(t) else "")
            return None
        out = pc.cast(arr, pa.string())
        return _text_clean(out) if text else out
    if pa.types.is_list(target):
        if _is_stringlike(t):
            return _split_list(arr)
        if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_stringlike(t.value_type):
            out = pc.cast(arr, target)
            return pc.if_else(pc.is_null(out), pa.scalar([], target), out) if out.null_count else out
        wrong_type()
        return None
    if pa.types.is_integer(target):
        if not pa.types.is_integer(t):
            wrong_type()
            return None
        try:
            return pc.cast(arr, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = np.asarray(pc.cast(arr, pa.int64()).fill_null(0))
            _report_rows(problems, "CLM012", rows, f.name, np.flatnonzero(np.abs(values) > 32767),
                         lambda i: f"超出 {target} 范围" + ("" if i is None else f": {values[i]}"))
            return None
    if pa.types.is_decimal(target):
        if pa.types.is_floating(t):
            wrong_type("浮点数不能精确表示金额, 请导出为 DECIMAL(16,2) 或文本(CSV)")
            return None
        if pa.types.is_integer(t):
            values = np.asarray(pc.cast(arr, pa.int64()).fill_null(0))
            limit = 10 ** (target.precision - target.scale)
            bad = np.flatnonzero(np.abs(values) >= limit)
            if len(bad):
                _report_rows(problems, "CLM012", rows, f.name, bad, "数值过大")
                return None
            out = decimal_array(values * 10 ** target.scale, target)
            if arr.null_count:
                out = pc.if_else(arr.is_valid(), out, pa.scalar(None, target))
            return out
        if not _is_decimal(t) or t.scale > target.scale:
            wrong_type(f"小数位数最多 {target.scale} 位" if _is_decimal(t) else "")
            return None
        try:
            return pc.cast(arr, target)
        except pa.ArrowInvalid:
            wide = pc.cast(arr, pa.decimal128(38, target.scale))
            limit = pa.scalar(Decimal(10) ** (target.precision - target.scale), pa.decimal128(38, target.scale))
            bad = np.flatnonzero(np.asarray(pc.fill_null(pc.greater_equal(pc.abs(wide), limit), False)))
            _report_rows(problems, "CLM012", rows, f.name, bad, f"数值超出 {_type_name(target)} 范围")
            return None
    if pa.types.is_timestamp(target):
        if pa.types.is_timestamp(t):
            if t.tz is not None:  # an instant: its Beijing wall-clock time
                arr = pc.local_timestamp(arr.cast(pa.timestamp(t.unit, tz="Asia/Shanghai")))
            return pc.cast(arr, target, safe=False)
        if pa.types.is_date(t):
            return pc.cast(pc.cast(arr, pa.date32()), target)
        wrong_type()
        return None
    if pa.types.is_boolean(target):
        if not pa.types.is_boolean(t):
            wrong_type()
            return None
        return arr
    wrong_type()
    return None


def _parse_text(name: str, f: pa.Field, arr: pa.Array, rows: _Rows, problems: list[Problem]) -> pa.Array | None:
    """A CSV / Excel text column into the field's type; names the rows that do not convert."""
    target = f.type
    arr = _text_clean(arr)
    if pa.types.is_list(target):
        return _split_list(arr)
    if pa.types.is_boolean(target):
        low = pc.utf8_lower(arr)
        is_true = pc.is_in(low, value_set=pa.array(_TRUE))
        is_false = pc.is_in(low, value_set=pa.array(_FALSE))
        bad = np.flatnonzero(np.asarray(pc.and_(arr.is_valid(), pc.invert(pc.or_(is_true, is_false)))))
        if len(bad):
            _report_rows(problems, "CLM012", rows, f.name, bad,
                         lambda i: "不是布尔值(true/false、1/0、是/否)" + ("" if i is None else f": {arr[i].as_py()!r}"))
            return None
        return pc.if_else(arr.is_valid(), is_true, pa.scalar(None, pa.bool_()))
    source = arr
    if pa.types.is_timestamp(target):
        source = pc.replace_substring(arr, "/", "-")
    try:
        return pc.cast(source, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad, reasons = _bad_text_rows(source, target)
        if not bad:  # the cast failed for a reason the row check does not know: report the column
            problems.append(Problem("CLM012", f"{name}.{f.name}", f"无法转换为 {_type_name(target)}"))
        else:
            _report_rows(problems, "CLM012", rows, f.name, np.array(bad),
                         lambda i: reasons.get(i, "无法转换") if i is not None else f"无法转换为 {_type_name(target)}")
        return None


# --- checking -----------------------------------------------------------------------------


def validate_claims(directory: str | Path, pack=None) -> ClaimsReport:
    """Check a claims directory against the contract (and, if given, a policy pack's codes)."""
    report, _ = _load_and_check(directory, pack)
    return report


def read_claims(directory: str | Path, pack=None) -> dict[str, pa.Table]:
    """The four tables in exactly :data:`SCHEMAS`; raises :class:`ClaimsError` with the report."""
    report, tables = _load_and_check(directory, pack)
    report.raise_if_bad()
    return tables


def check_tables(tables: dict[str, pa.Table], pack=None, source: str = "<tables>") -> ClaimsReport:
    """Check in-memory typed tables (e.g. from the generator) as a directory would be checked."""
    raws = {name: _Raw(t, f"<{name}>", text=False) for name, t in tables.items() if name in SCHEMAS}
    problems = [Problem("CLM001", name, f"缺少{TABLE_ZH[name]}表") for name in TABLES if name not in raws]
    report, _ = _check(raws, pack, source, problems)
    return report


def _load_and_check(directory: str | Path, pack) -> tuple[ClaimsReport, dict[str, pa.Table]]:
    directory = Path(directory)
    if not directory.is_dir():
        report = ClaimsReport(str(directory), [Problem("CLM001", "", "目录不存在")])
        return report, {}
    problems: list[Problem] = []
    raws = _find_sources(directory, problems)
    return _check(raws, pack, str(directory), problems)


def _check(raws: dict[str, _Raw], pack, source: str, problems: list[Problem]) -> tuple[ClaimsReport, dict]:
    report = ClaimsReport(source, problems)
    columns: dict[str, dict[str, pa.Array]] = {}
    for name, raw in raws.items():
        report.rows[name] = raw.table.num_rows
        report.files[name] = raw.file
        rows = _Rows(name, raw.table)
        cols: dict[str, pa.Array] = {}
        for f in SCHEMAS[name]:
            if f.name not in raw.table.column_names:
                problems.append(Problem("CLM010", f"{name}.{f.name}",
                                        f"缺少列 {f.name}({f.metadata[b'zh'].decode()})"))
                continue
            out = _conform(name, f, raw.table.column(f.name), raw.text, rows, problems)
            if out is not None:
                cols[f.name] = out
        for f in OPTIONAL_FIELDS.get(name, ()):  # checked and kept when the extract has them
            if f.name in raw.table.column_names:
                out = _conform(name, f, raw.table.column(f.name), raw.text, rows, problems)
                if out is not None:
                    cols[f.name] = out
        columns[name] = cols
    _check_values(columns, problems)
    _check_links(columns, problems)
    if pack is not None:
        _check_pack(columns, pack, problems)
    tables = {}
    if not problems:
        tables = {name: pa.Table.from_arrays([cols[f.name] for f in schema_with(name, cols)],
                                             schema=schema_with(name, cols))
                  for name, cols in columns.items()}
    return report, tables


def _rows_of(name: str, cols: dict[str, pa.Array]) -> _Rows:
    key = KEYS[name]
    rows = _Rows(name, None)
    if key in cols:
        rows.keys = cols[key]
    return rows


def _mask(arr) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False), dtype=bool)


def _check_values(columns: dict[str, dict[str, pa.Array]], problems: list[Problem]) -> None:
    for name, cols in columns.items():
        rows = _rows_of(name, cols)
        schema = SCHEMAS[name]
        for col_name, arr in cols.items():
            if col_name not in schema.names:  # an optional column: may be empty
                continue
            f = schema.field(col_name)
            if not f.nullable and arr.null_count:
                _report_rows(problems, "CLM013", rows, col_name, np.flatnonzero(np.asarray(arr.is_null())),
                             f"必填字段为空({f.metadata[b'zh'].decode()})")
        # codes with a fixed shape
        for col_name, pattern, what in (
            ("admdvs", r"^[0-9]{6}$", "医保区划应为 6 位数字"),
            ("med_type", r"^[0-9]{2,6}$", "医疗类别应为 2–6 位数字"),
        ):
            if col_name in cols:
                arr = cols[col_name]
                bad = np.flatnonzero(_mask(pc.invert(pc.match_substring_regex(arr, pattern))))
                _report_rows(problems, "CLM014", rows, col_name, bad,
                             lambda i, a=arr, w=what: w + ("" if i is None else f", 实际为 {a[i].as_py()!r}"))
        for col_name, allowed, what in (("insutype", INSUTYPES, "险种"), ("gend", GENDERS, "性别"),
                                        ("med_chrgitm_type", tuple(CHRGITM_TYPES), "医疗收费项目类别"),
                                        ("fixmedins_type", tuple(FIXMEDINS_TYPES), "机构类型"),
                                        ("offsite_status", tuple(OFFSITE_STATUSES), "异地就医状态")):
            if col_name in cols:
                arr = cols[col_name]
                wrong = pc.invert(pc.is_in(arr, value_set=pa.array(allowed)))
                if schema.field(col_name).nullable if col_name in schema.names else True:  # an optional code may be empty
                    wrong = pc.and_(wrong, arr.is_valid())
                bad = np.flatnonzero(_mask(wrong))
                _report_rows(problems, "CLM014", rows, col_name, bad,
                             lambda i, a=arr, w=what, al=allowed:
                             f"{w}代码应为 {'/'.join(al)} 之一" + ("" if i is None else f", 实际为 {a[i].as_py()!r}"))
        if "age" in cols:
            age = cols["age"]
            bad = np.flatnonzero(_mask(pc.or_(pc.less(age, 0), pc.greater(age, 150))))
            _report_rows(problems, "CLM014", rows, "age", bad, "年龄应在 0–150 之间")
        for col_name in AMOUNT_COLUMNS.get(name, ()):
            if col_name in cols:
                arr = cols[col_name]
                values = decimal_units(arr)
                bad = np.flatnonzero(values < 0)
                scale = arr.type.scale
                _report_rows(problems, "CLM020", rows, col_name, bad,
                             lambda i, v=values, s=scale: "金额/数量不能为负数(退费请先与原明细冲销)"
                             + ("" if i is None else f", 实际为 {Decimal(int(v[i])).scaleb(-s)}"))
        if "preselfpay_ratio" in cols:
            arr = cols["preselfpay_ratio"]
            values = decimal_units(arr)
            bad = np.flatnonzero(np.asarray(arr.is_valid()) & ((values < 0) | (values > 10_000)))
            _report_rows(problems, "CLM021", rows, "preselfpay_ratio", bad, "先行自付比例应在 0–1 之间")
        key = KEYS[name]
        if key in cols:
            _check_unique(name, key, cols[key], rows, problems)
        if {"begntime", "endtime", "setl_time"} <= set(cols):
            begin = cols["begntime"]
            bad = np.flatnonzero(_mask(pc.less(cols["endtime"], begin)))
            _report_rows(problems, "CLM042", rows, "endtime", bad, "结束时间早于开始时间")
            bad = np.flatnonzero(_mask(pc.less(cols["setl_time"], begin)))
            _report_rows(problems, "CLM042", rows, "setl_time", bad, "结算时间早于开始时间")


def _check_unique(name: str, key: str, arr: pa.Array, rows: _Rows, problems: list[Problem]) -> None:
    """Every repeat of a key after its first occurrence (a stable sort puts repeats after it)."""
    if len(arr) < 2:
        return
    order = pc.sort_indices(arr)  # nulls last
    ordered = arr.take(order)
    same = _mask(pc.equal(ordered.slice(1), ordered.slice(0, len(arr) - 1)))
    if not same.any():
        return
    bad = np.sort(np.asarray(order)[1:][same])
    _report_rows(problems, "CLM030", rows, key, bad,
                 lambda i: f"{key} 重复" + ("" if i is None else f": {arr[i].as_py()!r} 已在前面出现"))


def _check_links(columns: dict[str, dict[str, pa.Array]], problems: list[Problem]) -> None:
    persons, insts = columns.get("persons", {}), columns.get("institutions", {})
    visits, items = columns.get("visits", {}), columns.get("fee_items", {})
    vrows, irows = _rows_of("visits", visits), _rows_of("fee_items", items)
    def foreign_key(child, rows, parent, key, code, message):
        """Rows of ``child`` whose ``key`` is not in ``parent``; returns each row's parent position."""
        pos = pc.index_in(child[key], value_set=parent[key])
        bad = np.flatnonzero(_mask(pc.and_(pos.is_null(), child[key].is_valid())))
        _report_rows(problems, code, rows, key, bad,
                     lambda i: message + ("" if i is None else f": {child[key][i].as_py()!r}"))
        return pos

    if "psn_no" in visits and "psn_no" in persons:
        pos = foreign_key(visits, vrows, persons, "psn_no", "CLM032", "人员编号不在人员表中")
        if "insutype" in visits and "insutype" in persons:
            theirs = pc.take(persons["insutype"], pos)
            bad = np.flatnonzero(_mask(pc.not_equal(visits["insutype"], theirs)))
            _report_rows(problems, "CLM035", vrows, "insutype", bad,
                         lambda i: "险种与人员表不一致" if i is None else
                         f"险种 {visits['insutype'][i].as_py()!r} 与人员表的 {theirs[i].as_py()!r} 不一致")
    if "fixmedins_code" in visits and "fixmedins_code" in insts:
        pos = foreign_key(visits, vrows, insts, "fixmedins_code", "CLM033", "机构编号不在定点医药机构表中")
        if "level" in visits and "level" in insts:
            theirs = pc.take(insts["level"], pos)
            bad = np.flatnonzero(_mask(pc.not_equal(visits["level"], theirs)))
            _report_rows(problems, "CLM036", vrows, "level", bad,
                         lambda i: "机构等级与机构表不一致" if i is None else
                         f"机构等级 {visits['level'][i].as_py()!r} 与机构表的 {theirs[i].as_py()!r} 不一致")
    if "mdtrt_id" in items and "mdtrt_id" in visits:
        pos = foreign_key(items, irows, visits, "mdtrt_id", "CLM031", "就诊 ID 不在就诊表中")
        if "det_item_fee_sumamt" in items and "medfee_sumamt" in visits:
            ok = np.asarray(pos.is_valid())
            idx = np.asarray(pos.fill_null(0)).astype(np.int64)[ok]
            det = decimal_units(items["det_item_fee_sumamt"])[ok]
            sums = pa.table({"v": idx, "d": det}).group_by("v").aggregate([("d", "sum")])
            total = np.zeros(len(visits["mdtrt_id"]), dtype=np.int64)
            total[np.asarray(sums["v"])] = np.asarray(sums["d_sum"])
            medfee = decimal_units(visits["medfee_sumamt"])
            bad = np.flatnonzero((medfee != total) & np.asarray(visits["medfee_sumamt"].is_valid()))
            _report_rows(problems, "CLM040", vrows, "medfee_sumamt", bad,
                         lambda i: "医疗费总额不等于费用明细金额之和" if i is None else
                         f"医疗费总额 {Decimal(int(medfee[i])).scaleb(-2)} 不等于费用明细金额之和 "
                         f"{Decimal(int(total[i])).scaleb(-2)}")
    if "fee_ocur_time" in items and "mdtrt_id" in items and "med_type" in visits and "mdtrt_id" in visits:
        # 住院明细须有费用发生时间: the date rules (虚构服务, 同日短时重复, 挂床) judge inpatient lines by it
        pos = pc.index_in(items["mdtrt_id"], value_set=visits["mdtrt_id"])
        inpatient = pc.is_in(pc.take(visits["med_type"], pos), value_set=pa.array(INPATIENT_MED_TYPES))
        bad = np.flatnonzero(_mask(pc.and_(inpatient, items["fee_ocur_time"].is_null())))
        _report_rows(problems, "CLM043", irows, "fee_ocur_time", bad,
                     "住院就诊的费用明细须填写费用发生时间 fee_ocur_time")
    if {"pric", "cnt", "det_item_fee_sumamt"} <= set(items):
        pric, cnt = decimal_units(items["pric"]), decimal_units(items["cnt"])
        det = decimal_units(items["det_item_fee_sumamt"])
        valid = np.asarray(items["pric"].is_valid()) & np.asarray(items["cnt"].is_valid()) & (pric >= 0) & (cnt >= 0)
        expect = _round_product(pric, cnt)
        bad = np.flatnonzero(valid & (expect != det))
        _report_rows(problems, "CLM041", irows, "det_item_fee_sumamt", bad,
                     lambda i: "明细金额不等于 单价 × 数量(四舍五入到分)" if i is None else
                     f"明细金额 {Decimal(int(det[i])).scaleb(-2)} 不等于 单价 × 数量 = "
                     f"{Decimal(int(expect[i])).scaleb(-2)}")


def _round_product(pric_fen: np.ndarray, cnt_units: np.ndarray) -> np.ndarray:
    """round half-up (pric × cnt) to the fen; cnt has 4 decimals. Exact for any int64 inputs."""
    if len(pric_fen) == 0:
        return np.zeros(0, dtype=np.int64)
    if int(np.abs(pric_fen).max()) * int(np.abs(cnt_units).max()) < 2**62:
        return (pric_fen * cnt_units + 5_000) // 10_000
    out = [(int(p) * int(c) + 5_000) // 10_000 for p, c in zip(pric_fen, cnt_units)]
    return np.array([min(max(v, -2**63), 2**63 - 1) for v in out], dtype=np.int64)


def _check_pack(columns: dict[str, dict[str, pa.Array]], pack, problems: list[Problem]) -> None:
    """Codes the pack must declare, and settlement dates inside its effective dates."""
    persons, insts = columns.get("persons", {}), columns.get("institutions", {})
    visits, items = columns.get("visits", {}), columns.get("fee_items", {})
    levels = pa.array(sorted(pack.levels), pa.string())
    med_types = pa.array(sorted({m for rule in pack.basic for m in rule.med_types}), pa.string())
    info = pack.pack
    vrows = _rows_of("visits", visits)
    if "setl_time" in visits:
        day = pc.cast(visits["setl_time"], pa.date32())
        bad = np.flatnonzero(_mask(pc.or_(pc.less(day, pa.scalar(info.effective_from)),
                                          pc.greater(day, pa.scalar(info.effective_to)))))
        _report_rows(problems, "CLM050", vrows, "setl_time", bad,
                     f"结算时间不在政策包 {info.id} 有效期 {info.effective_from} 至 {info.effective_to} 内")
    if "med_type" in visits:
        bad = np.flatnonzero(_mask(pc.invert(pc.is_in(visits["med_type"], value_set=med_types))))
        _report_rows(problems, "CLM051", vrows, "med_type", bad,
                     lambda i: f"医疗类别不在政策包的规则中 {med_types.to_pylist()}"
                     + ("" if i is None else f", 实际为 {visits['med_type'][i].as_py()!r}"))
    for name, cols, col_name, code in (("visits", visits, "level", "CLM052"),
                                       ("institutions", insts, "level", "CLM052"),
                                       ("visits", visits, "referral_from_level", "CLM055")):
        if col_name in cols:
            arr = cols[col_name]
            bad = np.flatnonzero(_mask(pc.and_(arr.is_valid(), pc.invert(pc.is_in(arr, value_set=levels)))))
            _report_rows(problems, code, _rows_of(name, cols), col_name, bad,
                         lambda i, a=arr: f"机构等级不在政策包声明的 {levels.to_pylist()} 中"
                         + ("" if i is None else f", 实际为 {a[i].as_py()!r}"))
    if "categories" in persons:
        cats = persons["categories"]
        values = pc.list_flatten(cats)
        parents = np.asarray(pc.list_parent_indices(cats))
        bad_values = np.asarray(pc.invert(pc.is_in(values, value_set=pa.array(sorted(pack.categories), pa.string()))))
        bad = np.unique(parents[bad_values])
        _report_rows(problems, "CLM053", _rows_of("persons", persons), "categories", bad,
                     lambda i: f"人员类别不在政策包声明的 {sorted(pack.categories)} 中"
                     + ("" if i is None else f", 实际为 {cats[i].as_py()}"))
    if "chrgitm_lv" in items:
        classes = pa.array(sorted(pack.classification.classes), pa.string())
        lv = items["chrgitm_lv"]
        irows = _rows_of("fee_items", items)
        bad = np.flatnonzero(_mask(pc.and_(lv.is_valid(), pc.invert(pc.is_in(lv, value_set=classes)))))
        _report_rows(problems, "CLM054", irows, "chrgitm_lv", bad,
                     lambda i: f"收费项目等级不在政策包的分类 {classes.to_pylist()} 中"
                     + ("" if i is None else f", 实际为 {lv[i].as_py()!r}"))
        if "med_list_codg" in items and lv.null_count:
            catalog = pa.array([e.med_list_codg for e in pack.classification.catalog], pa.string())
            in_catalog = pc.is_in(items["med_list_codg"], value_set=catalog)
            bad = np.flatnonzero(_mask(pc.and_(lv.is_null(), pc.invert(in_catalog))))
            _report_rows(problems, "CLM054", irows, "chrgitm_lv", bad,
                         lambda i: "未给出收费项目等级, 且医疗目录编码不在政策包目录中"
                         + ("" if i is None else f": {items['med_list_codg'][i].as_py()!r}"))


def text_table(table: pa.Table) -> pa.Table:
    """The table as text columns the CSV / Excel import reads back exactly: lists joined with
    ``;``, times as ``YYYY-MM-DD HH:MM:SS``, decimals with their scale, booleans true/false."""
    cols = []
    for f in table.schema:
        col = _flat(table.column(f.name))
        if pa.types.is_list(f.type):
            col = pc.binary_join(col, ";")
        elif pa.types.is_timestamp(f.type):
            col = pc.strftime(col, format="%Y-%m-%d %H:%M:%S")
        else:
            col = pc.cast(col, pa.string())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def write_claims_csv(tables: dict[str, pa.Table], out_dir: str | Path) -> dict[str, Path]:
    """Write claims tables as UTF-8 ``<name>.csv`` files that :func:`read_claims` reads back."""
    import pyarrow.csv as pacsv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in tables.items():
        path = out / f"{name}.csv"
        pacsv.write_csv(text_table(table), path)
        paths[name] = path
    return paths
