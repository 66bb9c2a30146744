"""``yibao bench institutions``: building a month's settlement applications from N settlements in the store,
the SQL aggregation (:func:`yibao.institutions.applications.build_month`) against the obvious alternative,
a row-by-row Python fold over ORM objects (:func:`yibao.institutions.payments.fold_month`), timed on a
bounded number of rows in the same run and checked to give the same totals.

The store is a throwaway SQLite file (or ``--url``, emptied of nothing: use a scratch database). Rows are
loaded straight through the driver with foreign keys off (the bench measures the aggregation, not the load).
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.settlement.model import SETLINFO_FIELDS

_COLUMNS = ["setl_id", "mdtrt_id", "psn_no", "fixmedins_code", "insutype", "med_type", "setl_time", "year", "pack_id",
            "pack_version", "status", "revs_setl_id", "revs_time", "delta", "acc_after", "explanation", "opter",
            *SETLINFO_FIELDS, "prev_hash", "row_hash"]


def _rows(n: int, institutions: int, month_first: date, seed: int, start: int):
    """Synthetic settlements of one month: amounts in fen, 2% reversed within the month."""
    rng = random.Random(seed + start)
    span = 27 * 86400
    base = datetime.combine(month_first, datetime.min.time())
    fields = {f: i for i, f in enumerate(SETLINFO_FIELDS)}
    for k in range(start, start + n):
        at = base + timedelta(seconds=rng.randrange(span))
        amounts = [0] * len(SETLINFO_FIELDS)
        hifp, mi, maf, cash = rng.randrange(0, 800_000), rng.randrange(0, 50_000), rng.randrange(0, 20_000), rng.randrange(0, 200_000)
        for name, value in (("hifp_pay", hifp), ("hifmi_pay", mi), ("maf_pay", maf), ("psn_cash_pay", cash),
                            ("fund_pay_sumamt", hifp + mi + maf), ("psn_part_amt", cash),
                            ("medfee_sumamt", hifp + mi + maf + cash), ("inscp_scp_amt", hifp + mi + maf + cash)):
            amounts[fields[name]] = value
        reversed_ = rng.random() < 0.02
        revs = (at + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S.000000") if reversed_ else None
        yield (f"S{k:010d}", f"M{k:010d}", f"P{k % 200_000:09d}", f"H{rng.randrange(institutions):06d}", "390", "11",
               at.strftime("%Y-%m-%d %H:%M:%S.000000"), month_first.year, "bench", "1",
               "reversed" if reversed_ else "valid", f"R{k:010d}" if reversed_ else None, revs, "{}", "{}", "[]", "",
               *amounts, "", "")


def load(url: str, n: int, institutions: int, month: str, seed: int = 1, chunk: int = 100_000) -> float:
    """Insert ``n`` settlements of ``month`` (SQLite through the driver, foreign keys off); returns seconds."""
    from sqlalchemy import insert

    from yibao.store.database import make_engine
    from yibao.store.models import Settlement

    first = date.fromisoformat(month + "-01")
    engine = make_engine(url)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = conn.connection.dbapi_connection
            raw.execute("PRAGMA foreign_keys=OFF")
            sql = f"INSERT INTO settlements ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
            raw.execute("BEGIN")
            for start in range(0, n, chunk):
                raw.executemany(sql, _rows(min(chunk, n - start), institutions, first, seed, start))
            raw.execute("COMMIT")
            raw.execute("PRAGMA foreign_keys=ON")
        else:  # PostgreSQL: a scratch database whose foreign keys are checked (the bench rows have no visits)
            conn.exec_driver_sql("SET session_replication_role = replica")
            for start in range(0, n, chunk):
                conn.execute(insert(Settlement.__table__), [dict(zip(_COLUMNS, r)) for r in _rows(
                    min(chunk, n - start), institutions, first, seed, start)])
            conn.commit()
    engine.dispose()
    return time.perf_counter() - t0


def run(n: int = 1_000_000, institutions: int = 500, fold_rows: int = 100_000, month: str = "2026-03",
        url: str | None = None) -> dict:
    from yibao.institutions import applications as ap
    from yibao.institutions.payments import fold_month, month_bounds
    from yibao.service.auth import Principal
    from yibao.service.transactions import Context
    from yibao.store.database import make_engine
    from yibao.store.migrate import upgrade
    from yibao.store.models import Settlement

    tmp = None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="yibao-bench-ins-")
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    try:
        t0 = time.perf_counter()
        upgrade(url)
        migrate_s = time.perf_counter() - t0
        load_s = load(url, n, institutions, month)
        first, after = month_bounds(month)
        engine = make_engine(url)
        who = Principal("bench", "admin")
        ctx = Context("bench", "bench", datetime.combine(after, datetime.min.time()).replace(hour=9))
        t0 = time.perf_counter()
        with Session(engine) as s, s.begin():
            built = ap.build_month(s, who, ctx, month=month)
        sql_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with Session(engine) as s:
            totals_sql = {t["fixmedins_code"]: {k: v for k, v in t.items() if k != "fixmedins_code"}
                          for t in ap.month_totals(s, month)}
        agg_s = time.perf_counter() - t0
        start, end = datetime.combine(first, datetime.min.time()), datetime.combine(after, datetime.min.time())
        m = min(fold_rows, n)
        t0 = time.perf_counter()
        with Session(engine) as s:  # the obvious alternative: every settlement as an ORM object, folded in Python
            objs = s.scalars(select(Settlement).order_by(Settlement.setl_id).limit(m)).all()
            folded = fold_month(({"fixmedins_code": o.fixmedins_code, "setl_time": o.setl_time, "revs_time": o.revs_time,
                                  "hifp_pay": o.hifp_pay, "cvlserv_pay": o.cvlserv_pay, "hifmi_pay": o.hifmi_pay,
                                  "hifob_pay": o.hifob_pay, "maf_pay": o.maf_pay} for o in objs), start, end)
        fold_s = time.perf_counter() - t0
        with Session(engine) as s:  # the same bounded rows through SQL, to compare totals
            last = f"S{m - 1:010d}"  # the first m ids (zero-padded: text order is number order)
            bounded = {r.fixmedins_code: {k: int(v) for k, v in r._mapping.items() if k != "fixmedins_code"}
                       for r in s.execute(ap.month_totals_query(start, end).where(Settlement.setl_id <= last))}
        engine.dispose()
        return {"settlements": n, "institutions": institutions, "month": month, "applications": len(built["applications"]),
                "migrate_s": round(migrate_s, 2), "load_s": round(load_s, 2), "build_month_s": round(sql_s, 2),
                "aggregation_only_s": round(agg_s, 2), "sql_rows_per_s": round(n / sql_s),
                "fold_rows": m, "fold_s": round(fold_s, 2), "fold_rows_per_s": round(m / fold_s),
                "fold_extrapolated_s": round(fold_s * n / m, 1), "fold_agrees": folded == bounded,
                "totals_checked": len(totals_sql)}
    finally:
        if tmp is not None:
            tmp.cleanup()
