"""``yibao bench catalogue``: importing a national code table of N rows as a catalogue version — the import
(:func:`yibao.institutions.catalogue_store.import_version`: DuckDB checks every row at once, then one bulk
insert) against the obvious alternative, a row-by-row loop (csv reader, a pydantic model per row, an ORM object
per row), on the same file in the same run; both must store the same entries.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

HEADER = ["药品代码", "注册名称", "注册剂型", "注册规格", "甲乙类", "先行自付比例", "支付标准", "限定支付范围", "限定条件代码", "药品企业"]


def write_csv(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    forms = ["片剂", "胶囊剂", "注射剂", "颗粒剂", "口服溶液剂"]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for k in range(n):
            cls = rng.choice(["甲类", "乙类", "乙类", "丙类"])
            pre = rng.choice(["", "", "5%", "0.15"]) if cls == "乙类" else ""
            std = f"{rng.randrange(10, 500000) / 100:.2f}" if rng.random() < 0.6 else ""
            cond = rng.choice(["", "", "", "med_type=21|14", "age>=18", "gend=2;level>=2"])
            w.writerow([f"{'XZ'[k % 2]}{k:022d}", f"示例药品{k}", rng.choice(forms), f"{rng.randrange(1, 500)}mg",
                        cls, pre, std, "限二级及以上医疗机构" if cond else "", cond, f"示例药业{k % 997}"])


class _Row(BaseModel):
    """The alternative's per-row check: the same rules as CHECK_SQL, one row at a time."""

    med_list_codg: str = Field(pattern=r"^[XZ][A-Z0-9]{4,49}$")
    name: str = Field(min_length=1, max_length=200)
    chrgitm_lv: str
    preselfpay_ratio: Decimal | None = None
    pay_std: Decimal | None = Field(None, ge=0, decimal_places=2)
    limit_text: str | None = None
    limit_codes: str | None = None
    spec: str | None = None
    dosform: str | None = None
    producer: str | None = None

    @field_validator("chrgitm_lv")
    @classmethod
    def _cls(cls, v: str) -> str:
        from yibao.institutions.catalogue import CLASS_ALIASES

        if v not in CLASS_ALIASES:
            raise ValueError("甲乙类未知")
        return CLASS_ALIASES[v]

    @field_validator("preselfpay_ratio", mode="before")
    @classmethod
    def _pct(cls, v):
        if v in (None, ""):
            return None
        return Decimal(v[:-1]) / 100 if str(v).endswith("%") else Decimal(v)

    @field_validator("limit_codes")
    @classmethod
    def _codes(cls, v):
        from yibao.institutions.catalogue import parse_conditions

        parse_conditions(v)
        return v or None


def row_by_row(session: Session, path: Path, version_id: int, limit: int) -> int:
    from yibao.institutions.models import InsCatalogueEntry

    names = dict(zip(HEADER, ["med_list_codg", "name", "dosform", "spec", "chrgitm_lv", "preselfpay_ratio", "pay_std",
                              "limit_text", "limit_codes", "producer"]))
    seen: set[str] = set()
    n = 0
    with path.open(encoding="utf-8") as f:
        for i, raw in enumerate(csv.DictReader(f)):
            if i >= limit:
                break
            data = {names[k]: (v if v != "" else None) for k, v in raw.items()}
            try:
                row = _Row.model_validate(data)
            except ValidationError as exc:
                raise ValueError(f"row {i + 2}: {exc}") from None
            if row.med_list_codg in seen:
                raise ValueError(f"row {i + 2}: duplicate")
            seen.add(row.med_list_codg)
            session.add(InsCatalogueEntry(version_id=version_id, med_list_codg=row.med_list_codg, name=row.name,
                                          chrgitm_lv=row.chrgitm_lv, preselfpay_ratio=row.preselfpay_ratio,
                                          pay_std_fen=None if row.pay_std is None else int(row.pay_std * 100),
                                          limit_text=row.limit_text, limit_codes=row.limit_codes, spec=row.spec,
                                          dosform=row.dosform, producer=row.producer))
            n += 1
    session.flush()
    return n


def _norm(value) -> str | None:
    return None if value is None else str(Decimal(value).normalize())


def run(n: int = 100_000, alt_rows: int | None = None, url: str | None = None) -> dict:
    from yibao.institutions import catalogue_store as cs
    from yibao.institutions.models import InsCatalogueEntry, InsCatalogueVersion
    from yibao.service.auth import Principal
    from yibao.service.transactions import Context
    from yibao.store.database import make_engine
    from yibao.store.migrate import upgrade

    alt_rows = n if alt_rows is None else min(alt_rows, n)
    with tempfile.TemporaryDirectory(prefix="yibao-bench-cat-") as tmp:
        path = Path(tmp) / "drugs.csv"
        write_csv(path, n)
        url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        who = Principal("bench", "admin")
        ctx = Context("bench", "bench", datetime.now().replace(microsecond=0))
        t0 = time.perf_counter()
        with Session(engine) as s, s.begin():
            result = cs.import_version(s, who, ctx, path, kind="drug", version=f"bench-{n}", effective_from=date(2026, 1, 1))
        import_s = time.perf_counter() - t0
        with Session(engine) as s:
            ours = {code: (lv, _norm(pre), std) for code, lv, pre, std in s.execute(select(
                InsCatalogueEntry.med_list_codg, InsCatalogueEntry.chrgitm_lv, InsCatalogueEntry.preselfpay_ratio,
                InsCatalogueEntry.pay_std_fen).where(InsCatalogueEntry.version_id == result["version_id"]))}
        t0 = time.perf_counter()
        with Session(engine) as s, s.begin():
            alt = InsCatalogueVersion(kind="drug", version="bench-alt", effective_from=date(2027, 1, 1),
                                      default_preselfpay=Decimal("0.1"), source="alt", sha256="", rows=0,
                                      imported_by="bench", imported_at=ctx.at)
            s.add(alt)
            s.flush()
            alt_n = row_by_row(s, path, alt.id, alt_rows)
            alt_id = alt.id
        alt_s = time.perf_counter() - t0
        with Session(engine) as s:
            theirs = s.execute(select(InsCatalogueEntry.med_list_codg, InsCatalogueEntry.chrgitm_lv,
                                      InsCatalogueEntry.preselfpay_ratio, InsCatalogueEntry.pay_std_fen)
                               .where(InsCatalogueEntry.version_id == alt_id)
                               .order_by(InsCatalogueEntry.med_list_codg)).all()
            total = s.scalar(select(func.count()).select_from(InsCatalogueEntry))
        with Session(engine) as s, s.begin():
            s.execute(delete(InsCatalogueEntry).where(InsCatalogueEntry.version_id == alt_id))
        engine.dispose()
        same = len(theirs) == alt_n and all(ours.get(code) == (lv, _norm(pre), std) for code, lv, pre, std in theirs)
        return {"rows": n, "import_s": round(import_s, 2), "import_rows_per_s": round(n / import_s),
                "timings": result["timings"], "row_by_row_rows": alt_n, "row_by_row_s": round(alt_s, 2),
                "row_by_row_rows_per_s": round(alt_n / alt_s), "same_entries": same, "entries_stored": total}
