"""Price tables and 集采 selected-product lists imported from files, as dated versions, all or nothing.

- **医疗服务价格表** (kind ``price``): the provincial price list layout — one row per service item with its price at
  一级/二级/三级 institutions (``项目编码, 项目名称, 计价单位, 三级价格, 二级价格, 一级价格``; a blank cell = no price at
  that level). Each price becomes a dated price event (:class:`~yibao.institutions.models.InsPriceEvent`) with the
  file's 文件号 and effective date, so price monitoring (超标准收费) reads it like a price set by hand.
- **集采中选产品清单** (kind ``vbp``): the 中选结果 joined with each institution's 约定采购量 (报量) — one row per
  institution and product (``采购批次, 医保药品代码, 药品通用名, 医疗机构编码, 约定采购量, 中选价格, 集采前参考价``,
  optional ``执行期起/执行期止``). Each row becomes a selected product
  (:class:`~yibao.institutions.models.InsVbpProduct`), so 集采执行进度 (usage against the agreed volume) and
  结余留用 read it.

Every row is checked before anything is written; any problem rejects the whole file with a report naming each row
(as a spreadsheet numbers it, header = row 1), field and rule, coded INS34x. A clean file is one
``ins_tariff_files`` row (the version) and its rows in bulk, in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.institutions.catalogue import CODE_SHAPE, CatalogueConflict, CatalogueError
from yibao.institutions.catalogue_store import MAX_PROBLEMS, read_table
from yibao.institutions.models import InsPriceEvent, InsTariffFile, InsVbpProduct
from yibao.institutions.procurement import progress
from yibao.money import fen_to_yuan
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit
from yibao.store.models import Institution

KINDS = {"price": "医疗服务价格表", "vbp": "集采中选产品清单"}
LEVEL_FIELDS = {"3": "price_3", "2": "price_2", "1": "price_1"}  # the price list's column order

PRICE_COLUMNS = {
    "med_list_codg": ("med_list_codg", "项目编码", "项目代码", "医疗服务项目编码", "医疗服务项目代码", "医保项目编码", "国家项目编码"),
    "name": ("name", "项目名称", "医疗服务项目名称"),
    "unit": ("unit", "计价单位"),
    "price_3": ("price_3", "三级价格", "三级医院价格", "三级", "三级(元)", "三级价格(元)"),
    "price_2": ("price_2", "二级价格", "二级医院价格", "二级", "二级(元)", "二级价格(元)"),
    "price_1": ("price_1", "一级价格", "一级医院价格", "一级", "一级(元)", "一级价格(元)", "一级及以下价格"),
}
VBP_COLUMNS = {
    "batch": ("batch", "采购批次", "集采批次", "批次"),
    "med_list_codg": ("med_list_codg", "医保药品代码", "药品代码", "医保耗材代码", "耗材代码", "医保编码", "医保目录编码"),
    "name": ("name", "药品通用名", "通用名", "药品名称", "产品名称", "耗材名称"),
    "fixmedins_code": ("fixmedins_code", "医疗机构编码", "定点医疗机构编码", "定点医药机构编码", "机构编码"),
    "contract_volume": ("contract_volume", "约定采购量", "协议采购量", "约定量"),
    "selected_price": ("selected_price", "中选价格", "中选价", "中选价格(元)"),
    "reference_price": ("reference_price", "集采前参考价", "参考价", "集采前价格", "原价格"),
    "period_from": ("period_from", "执行期起", "执行开始日期", "协议期起"),
    "period_to": ("period_to", "执行期止", "执行结束日期", "协议期止"),
}
REQUIRED = {"price": ("med_list_codg", "name"),
            "vbp": ("batch", "med_list_codg", "name", "fixmedins_code", "contract_volume", "selected_price",
                    "reference_price")}
_HEADERS = {kind: {a: f for f, aliases in cols.items() for a in aliases}
            for kind, cols in (("price", PRICE_COLUMNS), ("vbp", VBP_COLUMNS))}
_MONEY = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,2})?$")
_VOLUME = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,4})?$")
_SERVICE = re.compile(CODE_SHAPE["service"])
_VBP_CODE = re.compile(r"^[XZC][A-Z0-9]{4,49}$")


def _fen(text: str) -> int:
    return int(Decimal(text) * 100)


def _day(text: str) -> date | None:
    """YYYY-MM-DD (also with a time, as Excel gives it), YYYY/MM/DD or YYYYMMDD; None when not a date."""
    t = text.strip().replace("/", "-")
    if re.fullmatch(r"[0-9]{8}", t):
        t = f"{t[:4]}-{t[4:6]}-{t[6:]}"
    try:
        return date.fromisoformat(t[:10]) if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?", t) else None
    except ValueError:
        return None


def _rows(table: pa.Table) -> list[dict]:
    return [{k: (v.strip() if isinstance(v, str) else v) or None for k, v in r.items()} for r in table.to_pylist()]


def _check_prices(session: Session, rows: list[dict], effective_from: date) -> tuple[list[Problem], list[dict]]:
    problems: list[Problem] = []
    first_row: dict[str, int] = {}
    events: list[dict] = []
    for n, r in enumerate(rows, start=2):
        code = (r["med_list_codg"] or "").upper()
        if not _SERVICE.match(code):
            problems.append(Problem("INS342", f"第{n}行.med_list_codg", f"项目编码须为 5–50 位数字或大写字母, 实际为 {code or '(空)'}"))
        elif code in first_row:
            problems.append(Problem("INS343", f"第{n}行.med_list_codg", f"项目编码 {code} 与第 {first_row[code]} 行重复"))
        else:
            first_row[code] = n
        if not r["name"] or len(r["name"]) > 200:
            problems.append(Problem("INS352", f"第{n}行.name", "项目名称须填写, 不超过 200 个字符"))
        if r["unit"] and len(r["unit"]) > 30:
            problems.append(Problem("INS352", f"第{n}行.unit", "计价单位不超过 30 个字符"))
        priced = 0
        for level, field in LEVEL_FIELDS.items():
            text = r[field]
            if text is None:
                continue
            if not _MONEY.match(text) or _fen(text) <= 0:
                problems.append(Problem("INS344", f"第{n}行.{field}", f"{'一二三'[int(level) - 1]}级价格须为正数(元, 至多两位小数), 实际为 {text}"))
                continue
            priced += 1
            events.append({"row": n, "med_list_codg": code, "level": level, "price_fen": _fen(text)})
        if not priced and not any(p.path.startswith(f"第{n}行.price") for p in problems):
            problems.append(Problem("INS345", f"第{n}行.price", "一级、二级、三级价格至少填写一个"))
    if not problems and events:  # insert-only in date order: a file cannot date a price at or before a recorded one
        last = dict(((c, lv), d) for c, lv, d in session.execute(
            select(InsPriceEvent.med_list_codg, InsPriceEvent.level, func.max(InsPriceEvent.eff_date))
            .where(InsPriceEvent.med_list_codg.in_(sorted(first_row)))
            .group_by(InsPriceEvent.med_list_codg, InsPriceEvent.level)))
        for e in events:
            seen = last.get((e["med_list_codg"], e["level"]))
            if seen is not None and seen >= effective_from:
                problems.append(Problem("INS346", f"第{e['row']}行.{LEVEL_FIELDS[e['level']]}",
                                        f"项目 {e['med_list_codg']} {e['level']}级价格已有 {seen} 生效的记录; "
                                        f"价格表生效日 {effective_from} 须晚于它"))
    return problems, events


def _check_vbp(session: Session, rows: list[dict], effective_from: date) -> tuple[list[Problem], list[dict]]:
    problems: list[Problem] = []
    first_row: dict[tuple, int] = {}
    products: list[dict] = []
    known = set(session.scalars(select(Institution.fixmedins_code).where(
        Institution.fixmedins_code.in_(sorted({r["fixmedins_code"] for r in rows if r["fixmedins_code"]})))))
    try:  # a row without 执行期: one year from the list's effective date
        default_to = effective_from.replace(year=effective_from.year + 1) - timedelta(days=1)
    except ValueError:  # 2/29
        default_to = date(effective_from.year + 1, 2, 28)
    for n, r in enumerate(rows, start=2):
        before = len(problems)
        code = (r["med_list_codg"] or "").upper()
        inst = r["fixmedins_code"] or ""
        if not _VBP_CODE.match(code):
            problems.append(Problem("INS342", f"第{n}行.med_list_codg",
                                    f"医保药品/耗材代码须以 X、Z 或 C 开头, 5–50 位大写字母数字, 实际为 {code or '(空)'}"))
        if not r["batch"] or len(r["batch"]) > 40:
            problems.append(Problem("INS352", f"第{n}行.batch", "采购批次须填写, 不超过 40 个字符"))
        if not r["name"] or len(r["name"]) > 200:
            problems.append(Problem("INS352", f"第{n}行.name", "药品通用名须填写, 不超过 200 个字符"))
        if inst not in known:
            problems.append(Problem("INS347", f"第{n}行.fixmedins_code", f"定点医药机构 {inst or '(空)'} 不存在"))
        key = (r["batch"], inst, code)
        if key in first_row:
            problems.append(Problem("INS343", f"第{n}行.med_list_codg",
                                    f"{r['batch']} {inst} 的 {code} 与第 {first_row[key]} 行重复"))
        else:
            first_row[key] = n
        vol = r["contract_volume"] or ""
        if not _VOLUME.match(vol) or Decimal(vol) <= 0:
            problems.append(Problem("INS348", f"第{n}行.contract_volume", f"约定采购量须为正数(至多 4 位小数), 实际为 {vol or '(空)'}"))
        for field, zh in (("selected_price", "中选价格"), ("reference_price", "集采前参考价")):
            if not _MONEY.match(r[field] or ""):
                problems.append(Problem("INS344", f"第{n}行.{field}", f"{zh}须为非负金额(元, 至多两位小数), 实际为 {r[field] or '(空)'}"))
        start = effective_from if r["period_from"] is None else _day(r["period_from"])
        end = default_to if r["period_to"] is None else _day(r["period_to"])
        for field, value in (("period_from", start), ("period_to", end)):
            if value is None:
                problems.append(Problem("INS349", f"第{n}行.{field}", f"日期须写作 YYYY-MM-DD, 实际为 {r[field]}"))
        if start and end and end < start:
            problems.append(Problem("INS349", f"第{n}行.period_to", f"执行期止 {end} 早于执行期起 {start}"))
        if len(problems) == before:
            products.append({"batch": r["batch"], "year": start.year, "fixmedins_code": inst, "med_list_codg": code,
                             "name": r["name"], "contract_volume": Decimal(vol),
                             "selected_price_fen": _fen(r["selected_price"]),
                             "reference_price_fen": _fen(r["reference_price"]), "period_from": start, "period_to": end})
    if not problems and products:  # a product already recorded for the batch at that institution is a conflict
        have = set(session.execute(select(InsVbpProduct.batch, InsVbpProduct.fixmedins_code, InsVbpProduct.med_list_codg)
                                   .where(InsVbpProduct.batch.in_(sorted({p["batch"] for p in products})))))
        for p in products:
            if (p["batch"], p["fixmedins_code"], p["med_list_codg"]) in have:
                problems.append(Problem("INS343", f"第{first_row[(p['batch'], p['fixmedins_code'], p['med_list_codg'])]}行.med_list_codg",
                                        f"{p['batch']} {p['fixmedins_code']} 的 {p['med_list_codg']} 已登记"))
    return problems, products


def import_file(session: Session, who: Principal, ctx: Context, path: Path, *, kind: str, version: str,
                effective_from: date) -> dict:
    """Import a price table (``kind="price"``, ``version`` = 定价/调价文件号) or a 集采 list (``kind="vbp"``,
    ``version`` = the list's 文件号 or 批次) as a version taking effect on ``effective_from``: all rows or none."""
    who.require("catalogue.write")
    problems = []
    if kind not in KINDS:
        problems.append(Problem("INS340", "kind", f"文件类别须为 {'/'.join(KINDS)}({'/'.join(KINDS.values())})"))
    if not version or not version.strip() or len(version) > 80:
        problems.append(Problem("INS340", "version", "文件号(版本)须填写, 不超过 80 个字符"))
    if problems:
        raise CatalogueError(problems)
    version = version.strip()
    clash = session.scalar(select(InsTariffFile.imported_at).where(InsTariffFile.kind == kind, InsTariffFile.version == version))
    if clash is not None:
        raise CatalogueConflict(Problem("INS350", "version", f"{KINDS[kind]} {version} 已于 {clash:%Y-%m-%d} 导入; 版本不能重复"))
    data = path.read_bytes() if path.is_file() else b""
    table = read_table(path, _HEADERS[kind], REQUIRED[kind], ("INS340", "INS341"))
    rows = _rows(table)
    if not rows:
        raise CatalogueError(Problem("INS351", path.name, "文件没有数据行"))
    check = _check_prices if kind == "price" else _check_vbp
    problems, out = check(session, rows, effective_from)
    if problems:
        problems.sort(key=lambda p: int(p.path[1:p.path.index("行")]) if p.path.startswith("第") else 0)
        more = [] if len(problems) <= MAX_PROBLEMS else [Problem("INS351", "", f"另有 {len(problems) - MAX_PROBLEMS} 处问题未列出")]
        raise CatalogueError(problems[:MAX_PROBLEMS] + more, source=f"{path.name}: {len(rows)} 行, {len(problems)} 处问题")
    conn = session.connection()
    t = InsTariffFile.__table__
    file_id = conn.execute(insert(t).returning(t.c.id), {
        "kind": kind, "version": version, "effective_from": effective_from, "source": path.name[:200],
        "sha256": hashlib.sha256(data).hexdigest(), "rows": len(rows), "imported_by": who.name,
        "imported_at": ctx.at}).scalar_one()
    stamp = {"file_id": file_id, "recorded_by": who.name, "recorded_at": ctx.at}
    if kind == "price":
        conn.execute(insert(InsPriceEvent.__table__), [
            {"med_list_codg": e["med_list_codg"], "level": e["level"], "price_fen": e["price_fen"],
             "eff_date": effective_from, "doc_no": version, "reason": f"价格表 {path.name[:100]}", **stamp} for e in out])
    else:
        conn.execute(insert(InsVbpProduct.__table__), [{**p, **stamp} for p in out])
    audit(session, who, ctx, f"{kind}.import", "tariff_file", str(file_id),
          {"kind": kind, "version": version, "effective_from": str(effective_from), "rows": len(rows),
           "records": len(out), "source": path.name})
    return {"file_id": file_id, "kind": kind, "kind_name": KINDS[kind], "version": version,
            "effective_from": str(effective_from), "rows": len(rows), "records": len(out)}


def files(session: Session, who: Principal, kind: str | None = None) -> list[dict]:
    """The imported price tables and 集采 lists, oldest first (for the catalogue pages): kind, 文件号/批次, effective
    date, rows, records written (price events or selected products), source file, its hash and who imported it."""
    who.require("institution.read")
    q = select(InsTariffFile).order_by(InsTariffFile.kind, InsTariffFile.effective_from, InsTariffFile.id)
    if kind is not None:
        q = q.where(InsTariffFile.kind == kind)
    out = []
    for f in session.scalars(q):
        model = InsPriceEvent if f.kind == "price" else InsVbpProduct
        records = session.scalar(select(func.count()).select_from(model).where(model.file_id == f.id))
        out.append({"file_id": f.id, "kind": f.kind, "kind_name": KINDS.get(f.kind, f.kind), "version": f.version,
                    "effective_from": str(f.effective_from), "rows": f.rows, "records": int(records),
                    "source": f.source, "sha256": f.sha256, "imported_by": f.imported_by,
                    "imported_at": f.imported_at.isoformat(timespec="seconds")})
    return out


def vbp_usage(session: Session, who: Principal, *, year: int, batch: str | None = None) -> dict:
    """集采执行进度 of every institution's selected products for a year (optionally one 采购批次): agreed and used
    volume, completion rate (使用量 ÷ 约定量), and the totals per product; what the 集采 page lists."""

    who.require("institution.read")
    q = select(InsVbpProduct.fixmedins_code).where(InsVbpProduct.year == year).distinct()
    if batch is not None:
        q = q.where(InsVbpProduct.batch == batch)
    rows = []
    for code in sorted(session.scalars(q)):
        for p in progress(session, who, code, year)["products"]:
            if batch is None or p["batch"] == batch:
                rows.append({"fixmedins_code": code, **p})
    totals: dict[tuple[str, str], list[Decimal]] = {}
    for r in rows:
        t = totals.setdefault((r["batch"], r["med_list_codg"]), [Decimal(0), Decimal(0), 0])
        t[0] += Decimal(r["contract_volume"])
        t[1] += Decimal(r["used_volume"])
        t[2] += r["retained_fen"]
    return {"year": year, "batch": batch, "rows": rows,
            "products": [{"batch": b, "med_list_codg": c, "contract_volume": str(a), "used_volume": str(u),
                          "completion": str((u / a).quantize(Decimal("0.0001"))) if a else None,
                          "retained": fen_to_yuan(k)} for (b, c), (a, u, k) in sorted(totals.items())]}

