"""Category list import: a per-row report, nothing written from a rejected file, and the set-based fold
agreeing with the Python fold."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.enrolment import facts as F
from yibao.enrolment import importer
from yibao.enrolment import registry as er
from yibao.enrolment.models import CategoryFact, ImportBatch
from yibao.service import registry, sample
from yibao.service.auth import Principal
from yibao.service.transactions import Context
from yibao.store.database import make_engine
from yibao.store.models import AuditLog, PersonCategory

CLERK = Principal("clerk1", "clerk")
CTX = Context("imp-1", "clerk1", datetime(2024, 1, 5, 9, 0))
KNOWN = {"tekun", "dibao", "dibao_edge", "fanpin", "monitor"}


def _store(url: str, n: int = 4):
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        for i in range(n):
            registry.add_person(s, psn_no=f"P{i}", certno=sample.certno(100 + i), psn_name=f"人{i}", insutype="390",
                                admdvs="370102", valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31),
                                categories={"dibao": "民政"} if i == 0 else None)
    return engine


def _csv(tmp_path, lines: list[str], name: str = "list.csv"):
    path = tmp_path / name
    path.write_text("证件号码,姓名,类别,认定日期,有效期起,有效期止\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_clean_list_is_written_and_projected(store_url, tmp_path):
    engine = _store(store_url)
    c = [sample.certno(100 + i) for i in range(4)]
    path = _csv(tmp_path, [f"{c[0]},人0,tekun,2024-06-20,2024-07-01,2024-12-31",
                           f"{c[1]},人1,dibao,2024-01-03,2024-01-01,2024-12-31",
                           f"{c[2]},人2,monitor,,2024-03-01,2024-08-31"])
    with Session(engine) as s, s.begin():
        result = importer.import_categories(s, CLERK, CTX, path, dept="民政", known=KNOWN)
    assert (result.rows, result.persons) == (3, 3)
    with Session(engine) as s:
        cats = s.execute(select(PersonCategory.psn_no, PersonCategory.category, PersonCategory.valid_from,
                                PersonCategory.valid_to).order_by(PersonCategory.psn_no, PersonCategory.category)).all()
        assert [tuple(r) for r in cats] == [
            ("P0", "dibao", date(2024, 1, 1), date(2024, 12, 31)), ("P0", "tekun", date(2024, 7, 1), date(2024, 12, 31)),
            ("P1", "dibao", date(2024, 1, 1), date(2024, 12, 31)), ("P2", "monitor", date(2024, 3, 1), date(2024, 8, 31))]
        # P0's legacy row became a fact before the new one; the as-of read agrees with the projection
        assert s.scalar(select(func.count()).select_from(CategoryFact)) == 4
        assert [c["category"] for c in er.as_of(s, "P0", date(2024, 8, 1))["categories"]] == ["dibao", "tekun"]
        assert s.scalar(select(ImportBatch.rows)) == 3
        assert s.scalar(select(AuditLog.action)) == "category.import"
    engine.dispose()


def test_a_bad_row_rejects_the_file_with_a_report_and_writes_nothing(tmp_path):
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'i.db'}"
    upgrade(url)
    engine = _store(url)
    c = [sample.certno(100 + i) for i in range(4)]
    bad_check = c[1][:17] + ("0" if c[1][17] != "0" else "1")
    stranger = sample.certno(999)
    path = _csv(tmp_path, [f"{c[0]},人0,tekun,2024-06-20,2024-07-01,2024-12-31",  # row 2 fine
                           f"{bad_check},人1,dibao,,2024-01-01,2024-12-31",  # row 3
                           f"{c[2]},人2,rich,,2024-01-01,2024-12-31",  # row 4
                           f"{c[3]},人3,dibao,,2024-05-01,2024-02-01",  # row 5
                           f"{c[0]},人0,tekun,,2024-09-01,2025-06-30",  # row 6: overlaps row 2
                           f"{stranger},外人,dibao,,2024-01-01,2024-12-31",  # row 7
                           f"{c[2]},人2,dibao,,2024-13-01,2024-12-31"])  # row 8
    with pytest.raises(importer.ImportRejected) as exc, Session(engine) as s, s.begin():
        importer.import_categories(s, CLERK, CTX, path, dept="民政", known=KNOWN)
    got = [(p.path, p.code) for p in exc.value.problems]
    assert got == [("第3行.certno", "REG001"), ("第4行.category", "ENR020"), ("第5行.valid_to", "ENR021"),
                   ("第6行.valid_from", "ENR022"), ("第7行.certno", "ENR023"), ("第8行.valid_from", "ENR042")]
    assert "第 2 行" in exc.value.problems[3].message
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(CategoryFact)) == 0
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == 0
        assert s.scalar(select(func.count()).select_from(PersonCategory)) == 1  # P0's legacy row untouched
    missing = tmp_path / "m.csv"
    missing.write_text("姓名,类别\n张,dibao\n", encoding="utf-8")
    with pytest.raises(importer.ImportRejected) as exc, Session(engine) as s, s.begin():
        importer.import_categories(s, CLERK, CTX, missing, dept="民政", known=KNOWN)
    assert exc.value.problems[0].code == "ENR041"
    engine.dispose()


def test_excel_lists_are_read_like_csv(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["身份证号", "人员类别", "有效期起", "有效期止"])
    ws.append([sample.certno(100), "tekun", date(2024, 7, 1), date(2024, 12, 31)])
    wb.save(tmp_path / "l.xlsx")
    table = importer.read_table(tmp_path / "l.xlsx")
    assert table.to_pylist() == [{"certno": sample.certno(100), "category": "tekun", "valid_from": "2024-07-01",
                                  "valid_to": "2024-12-31"}]


def _xlsx(tmp_path, rows: list[list], name: str = "list.xlsx", blank_rows: int = 0):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for _ in range(blank_rows):
        ws.append([])
    ws.append(["证件号码", "姓名", "类别", "认定日期", "有效期起", "有效期止"])
    for r in rows:
        ws.append(r)
    wb.save(tmp_path / name)
    return tmp_path / name


def test_an_excel_list_gets_the_same_per_row_report_as_csv_and_writes_nothing(tmp_path):
    """The fast Excel reader (fastexcel) feeds the same DuckDB checks: same rows, fields and codes as the CSV twin;
    date cells (with or without a time of day) read as their date."""
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    engine = _store(url)
    c = [sample.certno(100 + i) for i in range(4)]
    bad_check = c[1][:17] + ("0" if c[1][17] != "0" else "1")
    path = _xlsx(tmp_path, [[c[0], "人0", "tekun", date(2024, 6, 20), date(2024, 7, 1), datetime(2024, 12, 31, 8, 30)],
                            [bad_check, "人1", "dibao", None, "2024-01-01", date(2024, 12, 31)],  # row 3
                            [c[2], "人2", "rich", None, date(2024, 1, 1), date(2024, 12, 31)],  # row 4
                            [c[3], "人3", "dibao", None, date(2024, 5, 1), date(2024, 2, 1)],  # row 5
                            [c[2], "人2", "dibao", None, "2024-13-01", date(2024, 12, 31)]])  # row 6
    with pytest.raises(importer.ImportRejected) as exc, Session(engine) as s, s.begin():
        importer.import_categories(s, CLERK, CTX, path, dept="民政", known=KNOWN)
    assert [(p.path, p.code) for p in exc.value.problems] == [
        ("第3行.certno", "REG001"), ("第4行.category", "ENR020"), ("第5行.valid_to", "ENR021"),
        ("第6行.valid_from", "ENR042")]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(CategoryFact)) == 0
    good = _xlsx(tmp_path, [[c[0], "人0", "tekun", date(2024, 6, 20), date(2024, 7, 1), datetime(2024, 12, 31, 8, 30)],
                            [c[1], "人1", "dibao", None, "2024-01-01", date(2024, 12, 31)]], name="good.xlsx")
    with Session(engine) as s, s.begin():
        assert importer.import_categories(s, CLERK, CTX, good, dept="民政", known=KNOWN).rows == 2
    with Session(engine) as s:
        assert s.execute(select(PersonCategory.valid_from, PersonCategory.valid_to).where(
            PersonCategory.psn_no == "P0", PersonCategory.category == "tekun")).one() == (date(2024, 7, 1),
                                                                                          date(2024, 12, 31))
    engine.dispose()


@pytest.mark.parametrize("make, code", [
    (lambda p: _xlsx(p, [[sample.certno(100), "人0", "tekun", None, date(2024, 7, 1), date(2024, 12, 31)]],
                     blank_rows=2), "ENR044"),  # row numbers would shift: refused, not misreported
    (lambda p: (p / "bad.xlsx").write_bytes(b"not a zip") and p / "bad.xlsx", "ENR040"),
])
def test_unreadable_or_shifted_excel_lists_are_refused(tmp_path, make, code):
    with pytest.raises(importer.ImportRejected) as exc:
        importer.read_table(make(tmp_path))
    assert exc.value.problems[0].code == code


DAY0 = date(2024, 1, 1)


@given(st.lists(st.tuples(st.sampled_from(["P1", "P2"]), st.sampled_from(["dibao", "tekun"]),
                          st.sampled_from(["grant", "revoke"]), st.integers(0, 300), st.integers(0, 200),
                          st.booleans()), max_size=10))
def test_the_set_based_fold_equals_the_python_fold(raw):
    fs = [F.CategoryFact(i + 1, p, c, a, DAY0 + timedelta(days=d), F.OPEN_END if open_ else DAY0 + timedelta(days=d + n),
                         "民政" if i % 2 else "乡村振兴") for i, (p, c, a, d, n, open_) in enumerate(raw)]
    table = pa.table({"id": pa.array([f.id for f in fs], pa.int64()), "psn_no": pa.array([f.psn_no for f in fs], pa.string()),
                      "category": pa.array([f.category for f in fs], pa.string()),
                      "action": pa.array([f.action for f in fs], pa.string()),
                      "valid_from": pa.array([f.valid_from for f in fs], pa.date32()),
                      "valid_to": pa.array([f.valid_to for f in fs], pa.date32()),
                      "dept": pa.array([f.dept for f in fs], pa.string())})
    got = [(r["psn_no"], r["category"], r["valid_from"], r["valid_to"], r["issuing_dept"])
           for r in importer.fold_table(table).to_pylist()]
    want = sorted((p, m.category, m.start, m.end, m.dept) for p in ("P1", "P2")
                  for m in F.memberships([f for f in fs if f.psn_no == p]))
    assert got == want


def test_roster_lists_who_is_enrolled_nowhere_and_the_rate_by_month(tmp_path):
    from yibao.enrolment import coverage
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = _store(url, 3)  # P0..P2 enrolled all 2024
    with Session(engine) as s, s.begin():
        er.change_status(s, CLERK, CTX, psn_no="P2", insutype="390", action="terminate", eff_date=date(2024, 2, 1),
                         reason="迁出")
    path = tmp_path / "roster.csv"
    outsider = sample.certno(777)
    path.write_text("证件号码,区划,类别\n" + "\n".join([
        f"{sample.certno(100)},370102,dibao", f"{sample.certno(101)},370102,", f"{sample.certno(102)},370102,",
        f"{outsider},370103,dibao"]) + "\n", encoding="utf-8")
    with Session(engine) as s:
        out = coverage.report(s, coverage.read_roster(path), coverage.month_ends(date(2024, 1, 1), date(2024, 2, 29)))
    by = {(r["admdvs"], r["category"], r["month"]): (r["population"], r["enrolled"], r["rate"]) for r in out["rates"]}
    assert by[("370102", "", "2024-01")] == (2, 2, 100.0)
    assert by[("370102", "", "2024-02")] == (2, 1, 50.0)
    assert by[("370103", "dibao", "2024-02")] == (1, 0, 0.0)
    assert [(m["admdvs"], m["registry"]) for m in out["not_enrolled"]] == [("370102", "有人员记录但未参保"),
                                                                           ("370103", "无人员记录")]
    assert all("*" in m["certno"] for m in out["not_enrolled"])
    engine.dispose()


def test_a_roster_in_excel_reads_as_its_csv_twin(tmp_path):
    from openpyxl import Workbook

    from yibao.enrolment import coverage

    rows = [[sample.certno(100), 370102, "dibao"], [sample.certno(101), "370102", None]]
    csv = tmp_path / "r.csv"
    csv.write_text("证件号码,区划,类别\n" + "\n".join(f"{c},{a},{k or ''}" for c, a, k in rows) + "\n", encoding="utf-8")
    wb = Workbook()
    wb.active.append(["证件号码", "区划", "类别"])
    for r in rows:
        wb.active.append(r)
    wb.save(tmp_path / "r.xlsx")
    assert coverage.read_roster(tmp_path / "r.xlsx").to_pylist() == coverage.read_roster(csv).to_pylist()
    (tmp_path / "bad.xlsx").write_bytes(b"PK not really")
    with pytest.raises(importer.ImportRejected) as exc:
        coverage.read_roster(tmp_path / "bad.xlsx")
    assert exc.value.problems[0].code == "ENR070"
