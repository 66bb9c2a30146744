"""``yibao bench tariffs``: importing a 集采 list of N rows (institutions × selected products) and a price table of
N items as file versions (:func:`yibao.institutions.tariffs.import_file`: every row checked, then one bulk insert)
against the obvious alternative, one call per row of the functions that record a product or a price by hand
(:func:`yibao.institutions.procurement.add_product`, :func:`yibao.institutions.prices.set_price`: an ORM object and
an audit entry per row), on the same rows in the same run; both must store the same records.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session


def _institutions(n: int) -> list[str]:
    return [f"H3701{k:07d}" for k in range(n)]


def write_vbp(path: Path, n: int, institutions: list[str], seed: int = 7) -> None:
    rng = random.Random(seed)
    products = max(1, n // len(institutions) + 1)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["采购批次", "医保药品代码", "药品通用名", "规格", "中选企业", "医疗机构编码", "约定采购量", "中选价格", "集采前参考价"])
        k = 0
        for p in range(products):
            price = rng.randrange(10, 50000)
            for inst in institutions:
                if k == n:
                    return
                w.writerow(["国家第九批", f"X{p:022d}", f"示例中选药品{p}", "10mg*28片", f"示例药业{p % 97}", inst,
                            rng.randrange(1, 5000), f"{price / 100:.2f}", f"{price * rng.randrange(2, 6) / 100:.2f}"])
                k += 1


def write_prices(path: Path, n: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["项目编码", "项目名称", "计价单位", "三级价格", "二级价格", "一级价格"])
        for k in range(n):
            base = rng.randrange(100, 200000)
            w.writerow([f"{k:015d}", f"示例医疗服务项目{k}", "次", f"{base * 12 / 1000:.2f}", f"{base / 100:.2f}",
                        f"{base * 9 / 1000:.2f}" if rng.random() < 0.8 else ""])


def run(n: int = 100_000, alt_rows: int = 5_000, institutions: int = 200, url: str | None = None) -> dict:
    from yibao.institutions import prices, procurement, tariffs
    from yibao.institutions.models import InsPriceEvent, InsVbpProduct
    from yibao.service.auth import Principal
    from yibao.service.transactions import Context
    from yibao.store.database import make_engine
    from yibao.store.migrate import upgrade
    from yibao.store.models import Institution

    alt_rows = min(alt_rows, n)
    codes = _institutions(institutions)
    out: dict = {"rows": n, "row_by_row_rows": alt_rows}
    with tempfile.TemporaryDirectory(prefix="yibao-bench-tariff-") as tmp:
        url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        who = Principal("bench", "admin")
        ctx = Context("bench", "bench", datetime.now().replace(microsecond=0))
        with Session(engine) as s, s.begin():
            s.execute(insert(Institution.__table__), [
                {"fixmedins_code": c, "fixmedins_name": f"示例机构{c}", "level": "2", "admdvs": "370102",
                 "designated_from": date(2024, 1, 1), "designated_to": date(2030, 12, 31)} for c in codes])
        for kind, write in (("vbp", lambda p: write_vbp(p, n, codes)), ("price", lambda p: write_prices(p, n))):
            path = Path(tmp) / f"{kind}.csv"
            write(path)
            t0 = time.perf_counter()
            with Session(engine) as s, s.begin():
                result = tariffs.import_file(s, who, ctx, path, kind=kind, version=f"bench-{kind}",
                                             effective_from=date(2024, 1, 1))
            took = time.perf_counter() - t0
            with path.open(encoding="utf-8") as f:
                rows = list(csv.DictReader(f))[:alt_rows]
            t0 = time.perf_counter()
            with Session(engine) as s, s.begin():
                for r in rows:
                    if kind == "vbp":
                        procurement.add_product(s, who, ctx, batch="对照", year=2024, fixmedins_code=r["医疗机构编码"],
                                                med_list_codg=r["医保药品代码"], name=r["药品通用名"],
                                                contract_volume=r["约定采购量"], selected_price=r["中选价格"],
                                                reference_price=r["集采前参考价"], period_from=date(2024, 1, 1),
                                                period_to=date(2024, 12, 31))
                    else:
                        for level, col in (("3", "三级价格"), ("2", "二级价格"), ("1", "一级价格")):
                            if r[col]:
                                prices.set_price(s, who, ctx, med_list_codg=r["项目编码"], level=level, price=r[col],
                                                 eff_date=date(2025, 1, 1), doc_no="对照")
            alt = time.perf_counter() - t0
            with Session(engine) as s:
                if kind == "vbp":
                    cols = (InsVbpProduct.fixmedins_code, InsVbpProduct.med_list_codg, InsVbpProduct.contract_volume,
                            InsVbpProduct.selected_price_fen, InsVbpProduct.reference_price_fen)
                    ours = {tuple(r[:2]): tuple(r[2:]) for r in s.execute(select(*cols).where(
                        InsVbpProduct.file_id == result["file_id"]))}
                    theirs = {tuple(r[:2]): tuple(r[2:]) for r in s.execute(select(*cols).where(InsVbpProduct.batch == "对照"))}
                else:
                    cols = (InsPriceEvent.med_list_codg, InsPriceEvent.level, InsPriceEvent.price_fen)
                    ours = {tuple(r[:2]): r[2] for r in s.execute(select(*cols).where(
                        InsPriceEvent.file_id == result["file_id"]))}
                    theirs = {tuple(r[:2]): r[2] for r in s.execute(select(*cols).where(InsPriceEvent.doc_no == "对照"))}
            same = bool(theirs) and all(ours.get(k) == (Decimal(v[0]), *v[1:]) if kind == "vbp" else ours.get(k) == v
                                        for k, v in theirs.items())
            out[kind] = {"records": result["records"], "import_s": round(took, 2), "import_rows_per_s": round(n / took),
                         "row_by_row_s": round(alt, 2), "row_by_row_rows_per_s": round(len(rows) / alt),
                         "same_records": same}
        engine.dispose()
    return out
