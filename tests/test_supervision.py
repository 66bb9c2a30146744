"""Fund supervision: the rule library on injected and clean regions, online = batch, bad input, cases."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from yibao.policy.loader import resolve_pack
from yibao.supervision import audit as A
from yibao.synth.fraud import add_supervision_columns, inject_fraud, write_supervised
from yibao.supervision.library import RULES
from yibao.supervision.model import CaseError, SupervisionError
from yibao.supervision.online import Baselines, precheck
from yibao.supervision.ruleset import load_ruleset
from yibao.synth import generate, write_region

ISSUE_FAMILIES = {"限性别", "限年龄", "限医院等级", "限就医方式", "限适应症", "重复收费", "分解收费", "超标准收费",
                  "超限定频次", "超数量", "超量开药", "分解住院", "挂床住院", "低标准入院", "冒名就医",
                  "同一时间多地就医", "频繁就诊", "检查检验雷同", "药品进销存不符", "医保卡购买非医药品",
                  "医师超量接诊", "机构异常", "串换项目"}


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    base = tmp_path_factory.mktemp("sv")
    tables = generate(resolve_pack("shandong-2024"), persons=1500, seed=11)
    write_region(tables, base / "plain")
    clean = add_supervision_columns(tables, 11)
    write_supervised(clean, base / "clean")
    injected, labels = inject_fraud(clean, 0.02, 11)
    write_supervised(injected, base / "injected", labels)
    return base, injected, labels


def audit(path, **kw):
    run = A.open_claims(path)
    A.run_rules(run, load_ruleset(**kw), skip_invalid=kw.get("skip_invalid", False))
    return run


def test_library_covers_the_issue():
    assert len(RULES) >= 30
    assert ISSUE_FAMILIES <= {r.family for r in RULES.values()}
    assert len(load_ruleset().rules) == len(RULES)


def test_recall_on_injected_and_false_positives_on_clean(regions):
    from yibao.supervision.evaluate import evaluate, false_positive_rates

    base, _, labels = regions
    rs = load_ruleset()
    run = audit(base / "injected")
    quality = {q.rule_id: q for q in evaluate(A.hits_table(run), labels, [r.id for r in rs.rules])}
    for rid, q in quality.items():
        if q.labelled:
            assert q.recall >= 0.95, (rid, q)
    assert sum(q.labelled for q in quality.values()) > 150
    clean = audit(base / "clean")
    providers = clean.con.sql("SELECT COUNT(*) FROM institutions").fetchone()[0]
    rates = false_positive_rates(A.hits_table(clean), clean.visits, providers,
                                 {r.id: r.rule.scope for r in rs.rules})
    for r in rs.rules:
        assert rates[r.id] <= r.rule.fp_bound, (r.id, rates[r.id])


def test_online_gives_the_batch_hits(regions):
    """Same SQL, two engines: each visit with its whole earlier history online (SQLite) == batch
    (DuckDB), rule by rule, to the fen, with the same lines and the same explanation; every
    online rule has hits in the comparison."""
    base, tables, labels = regions
    rs = load_ruleset()
    run = audit(base / "injected")
    online_ids = {r.id for r in rs.rules if "during" in r.rule.stages and r.rule.scope == "visit"}
    batch = {}
    for row in A.hits_table(run).to_pylist():
        if row["rule_id"] in online_ids:
            batch[(row["rule_id"], row["mdtrt_id"])] = (int(row["amount_yuan"] * 100), row["feedetl_sns"] or [],
                                                        sorted(row["detail"].split("; ")))
    visits = tables["visits"].to_pylist()
    persons = {p["psn_no"]: p for p in tables["persons"].to_pylist()}
    insts = {i["fixmedins_code"]: i for i in tables["institutions"].to_pylist()}
    items: dict[str, list] = {}
    for it in tables["fee_items"].to_pylist():
        items.setdefault(it["mdtrt_id"], []).append(it)
    by_psn: dict[str, list] = {}
    for v in visits:
        by_psn.setdefault(v["psn_no"], []).append(v)
    flagged = {m for (_, m) in batch}
    sample = [v for v in visits if v["mdtrt_id"] in flagged] + visits[::60]
    learned = Baselines(run.baselines)  # online reads the table batch learned
    seen = {}
    for v in sample:
        key = (v["begntime"], v["mdtrt_id"])
        hist = sorted((h for h in by_psn[v["psn_no"]] if (h["begntime"], h["mdtrt_id"]) < key),
                      key=lambda h: h["begntime"], reverse=True)
        res = precheck(persons[v["psn_no"]], insts[v["fixmedins_code"]], v, items.get(v["mdtrt_id"], []),
                       [(h, items.get(h["mdtrt_id"], [])) for h in hist], stage="during", params=rs,
                       baselines=learned, history_institutions=[insts[h["fixmedins_code"]] for h in hist])
        for h in res.warnings + res.blocking:
            seen[(h.rule_id, h.mdtrt_id)] = (h.amount_fen, h.feedetl_sns, sorted(h.detail.split("; ")))
    expected = {k: v for k, v in batch.items() if k[1] in {s["mdtrt_id"] for s in sample}}
    diff = [f"{rid} {mdtrt}: online={seen.get((rid, mdtrt))} batch={expected.get((rid, mdtrt))}"
            for rid, mdtrt in sorted(set(seen) | set(expected)) if seen.get((rid, mdtrt)) != expected.get((rid, mdtrt))]
    assert not diff, f"{len(diff)} 处不一致 / mismatches:\n" + "\n".join(diff[:30])
    assert {rid for rid, _ in expected} == online_ids, online_ids - {rid for rid, _ in expected}
    assert len(expected) > 100


PERSON = {"psn_no": "P1", "certno": "x", "psn_name": "张三", "gend": "1", "age": 40, "insutype": "390",
          "retiree": False, "categories": [], "admdvs": "370102", "hh_no": "H1", "hh_income": Decimal("50000.00")}
INST = {"fixmedins_code": "H1", "fixmedins_name": "示例医院", "level": "2", "admdvs": "370102", "fixmedins_type": "1"}


def visit(mdtrt_id="V1", med_type="11", begn=datetime(2024, 5, 1, 9), dise="J06.900"):
    return {"mdtrt_id": mdtrt_id, "psn_no": "P1", "insutype": "390", "med_type": med_type, "fixmedins_code": "H1",
            "level": "2", "begntime": begn, "endtime": begn.replace(hour=10), "setl_time": begn.replace(hour=10),
            "dise_codg": dise, "acct_balance": Decimal("0"), "medfee_sumamt": Decimal("0")}


def line(sn, code, pric, cnt, mdtrt_id="V1"):
    amt = (Decimal(pric) * Decimal(cnt)).quantize(Decimal("0.01"))
    return {"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "med_list_codg": code, "chrgitm_lv": "01",
            "pric": Decimal(pric), "cnt": Decimal(cnt), "det_item_fee_sumamt": amt}


def test_worked_examples_online():
    """A man billed a cervical test (blocking), an injection priced 7.50 over a 5.00 cap twice
    (违规 2 × 2.50 = 5.00 yuan) and a drug whose indication is missing."""
    res = precheck(PERSON, INST, visit(), [line("F1", "SV-S-TCT", "60.00", "1"), line("F2", "SV-S-IVINJ", "7.50", "2"),
                                          line("F3", "SV-D-ALB", "300.00", "1"), line("F4", "YB-D01-0001", "9.90", "1")])
    got = {h.rule_id: (h.amount_fen, h.feedetl_sns) for h in res.warnings + res.blocking}
    assert got == {"SV-GEND-01": (6000, ["F1"]), "SV-PRICE-01": (500, ["F2"]), "SV-IND-01": (30000, ["F3"])}
    assert [h.rule_id for h in res.blocking] == ["SV-GEND-01"]
    doc = res.to_dict()
    assert doc["blocking"][0]["amount"] == "60.00" and "宫颈" in doc["blocking"][0]["message"]
    # a qualifying diagnosis clears the indication rule; the pre stage skips history rules
    res = precheck(PERSON, INST, visit(dise="K74.600"), [line("F3", "SV-D-ALB", "300.00", "1")], stage="pre")
    assert res.to_dict() == {"warnings": [], "blocking": []}


def test_readmission_online_uses_history():
    first = visit("V0", "21", datetime(2024, 5, 1, 9), "J18.900")
    first["endtime"] = datetime(2024, 5, 6, 9)
    second = visit("V1", "21", datetime(2024, 5, 14, 9), "J18.100")
    second["endtime"], second["medfee_sumamt"] = datetime(2024, 5, 18, 9), Decimal("100.00")
    items = [line("F1", "YB-S01-0001", "100.00", "1")]
    res = precheck(PERSON, INST, second, items, [(first, [line("F0", "YB-S01-0001", "100.00", "1", "V0")])])
    # a visit-level hit: the whole readmission's medfee_sumamt (100.00 yuan), no single fee line
    assert [(h.rule_id, h.amount_fen, h.feedetl_sns) for h in res.warnings] == [("SV-ADM-01", 10000, [])]
    assert precheck(PERSON, INST, second, items).warnings == []


def test_bad_rule_ids_and_parameters(tmp_path):
    with pytest.raises(SupervisionError) as e:
        load_ruleset(only=["SV-NOPE-99"])
    assert e.value.problems[0].code == "SUP010" and "SV-NOPE-99" in str(e.value)
    bad = tmp_path / "r.yaml"
    bad.write_text("extends: default\nrules:\n  SV-GEND-01:\n    params:\n      items:\n        - {code: X, gend: '3'}\n"
                   "  SV-VISIT-01:\n    params: {max_visits: -1, colour: red}\n", encoding="utf-8")
    with pytest.raises(SupervisionError) as e:
        load_ruleset(str(bad))
    text = str(e.value)
    assert "SV-GEND-01" in text and "items[0].gend" in text and "SV-VISIT-01" in text and "max_visits" in text
    rs = load_ruleset(str(bad), skip_invalid=True)
    assert {s.rule_id for s in rs.skipped} == {"SV-GEND-01", "SV-VISIT-01"}
    assert len(rs.rules) == len(RULES) - 2


def test_missing_optional_columns(regions):
    base, _, _ = regions
    with pytest.raises(SupervisionError) as e:
        audit(base / "plain")
    assert "SV-DOC-01" in str(e.value) and "visits.atddr_no" in str(e.value)
    run = audit(base / "plain", skip_invalid=True)
    skipped = {s.rule_id for s in run.skipped}
    assert skipped == {r.id for r in RULES.values() if r.needs}
    assert "SV-GEND-01" in run.timings


def test_cli_audit_check_and_cases(regions, tmp_path):
    from yibao.cli import app

    base, _, _ = regions
    runner = CliRunner()
    r = runner.invoke(app, ["audit", "--claims", str(base / "injected"), "--out", str(tmp_path / "out"), "--evaluate",
                            "--since", "2024-03-01"])
    assert r.exit_code == 0, r.output
    assert "召回率" in r.output and (tmp_path / "out" / "audit.xlsx").is_file()
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    r = runner.invoke(app, ["case", "import", "--hits", str(tmp_path / "out" / "hits.parquet"), "--db", db])
    assert r.exit_code == 0 and "新建" in r.output
    r = runner.invoke(app, ["case", "confirm", "1", "--db", db])
    assert r.exit_code == 2 and "CAS010" in r.output
    for cmd in (["verify", "1"], ["confirm", "1"], ["recover", "1", "--amount", "0.01"]):
        assert runner.invoke(app, ["case", *cmd, "--db", db]).exit_code == 0
    r = runner.invoke(app, ["case", "show", "1", "--db", db])
    assert "追回" in r.output and "0.01" in r.output
    r = runner.invoke(app, ["case", "credit", "--db", db])
    assert r.exit_code == 0 and ("A" in r.output or "B" in r.output)


def test_case_lifecycle(tmp_path):
    from yibao.store.database import make_engine
    from yibao.supervision import cases as C

    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    C.create_tables(engine)
    hit = {"rule_id": "SV-GEND-01", "rule_name": "限性别项目", "severity": "high", "subject": "V1", "mdtrt_id": "V1",
           "fixmedins_code": "H1", "atddr_no": "H1-D001", "amount_fen": 6000, "message": "m"}
    with Session(engine) as s, s.begin():
        assert C.import_hits(s, [hit, hit]) == 1
        with pytest.raises(CaseError) as e:
            C.move(s, 1, "recovered", "u", amount_fen=100)
        assert e.value.problems[0].code == "CAS010"
        C.assign(s, 1, "李核查", "u")
        C.comment(s, 1, "调取病历", "u")
        C.move(s, 1, "verifying", "u")
        C.move(s, 1, "confirmed", "u")
        with pytest.raises(CaseError) as e:
            C.move(s, 1, "recovered", "u", amount_fen=6001)
        assert e.value.problems[0].code == "CAS013"
        C.move(s, 1, "recovered", "u", amount_fen=6000)
        assert [ev.action for ev in C.events(s, 1)] == ["create", "assign", "comment", "status", "status", "status"]
        inst, doc = C.credit_scores(s)
    assert inst == [{"fixmedins_code": "H1", "confirmed": 1, "deducted": 10, "amount_fen": 6000,
                     "recovered_fen": 6000, "score": 90, "grade": "A"}]
    assert doc[0]["score"] == 12 - 6


@pytest.mark.spark
def test_spark_runs_the_whole_library(regions):
    """All rules on Spark (one job, through the batch engine's portable layer) give DuckDB's hits, rule by rule."""
    from yibao.batch.spark import spark_session

    base, _, _ = regions
    rs = load_ruleset()
    duck = A.raw_hit_rows(audit(base / "injected"))
    spark = spark_session()
    tuned = {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"}  # tiny data: fewer tasks
    saved = {k: spark.conf.get(k) for k in tuned}
    for k, v in tuned.items():
        spark.conf.set(k, v)
    try:
        on_spark = A.run_on_spark(spark, base / "injected", rs)
    finally:
        for k, v in saved.items():
            spark.conf.set(k, v)
    assert set(on_spark) == set(RULES)
    diff = [f"{rid}: spark-only {sorted(set(on_spark[rid]) - set(duck.get(rid, [])))[:3]}, "
            f"duckdb-only {sorted(set(duck.get(rid, [])) - set(on_spark[rid]))[:3]}"
            for rid in sorted(RULES) if on_spark[rid] != duck.get(rid, [])]
    assert not diff, "\n".join(diff)
    assert all(on_spark[rid] for rid in RULES), [rid for rid in RULES if not on_spark[rid]]


def test_rules_listing_and_one_rule_in_full():
    from yibao.cli import app

    runner = CliRunner()
    listing = runner.invoke(app, ["audit", "rules"])
    assert listing.exit_code == 0 and "SV-GEND-01" in listing.output and "共 42 条规则" in listing.output
    one = runner.invoke(app, ["audit", "rules", "SV-DRUG-02"])
    assert one.exit_code == 0 and "long_rx_days: 84" in one.output and "单次开药超过限定天数" in one.output
    bad = runner.invoke(app, ["audit", "rules", "SV-NOPE"])
    assert bad.exit_code == 2 and "SUP010" in bad.output and "SV-NOPE" in bad.output


# --- bad input at the edges: amounts, files, URLs, paths, options -------------------------------


@pytest.mark.parametrize("field,value,words", [
    ("pric", "5.015", "最多 2 位小数"), ("pric", "Infinity", "有限数字"), ("pric", "NaN", "有限数字"),
    ("pric", "1e30", "必须小于"), ("pric", "-1.00", "不得为负"), ("det_item_fee_sumamt", "0.001", "最多 2 位小数"),
    ("cnt", "1.00001", "最多 4 位小数"), ("cnt", "sNaN", "有限数字"), ("cnt", "abc", "无法转换"),
])
def test_online_refuses_inexact_amounts(field, value, words):
    """Online amounts must be what the batch path can hold: finite, to the fen, bounded; else SUP030."""
    items = [line("F0", "YB-D01-0001", "9.90", "1"), line("F1", "SV-S-IVINJ", "5.00", "1")]
    items[1][field] = value
    with pytest.raises(SupervisionError) as e:
        precheck(PERSON, INST, visit(), items)
    p = e.value.problems[0]
    assert (p.code, p.path) == ("SUP030", f"fee_items.{field}")
    assert "第 2 行" in p.message and "feedetl_sn=F1" in p.message and words in p.message, p.message


def test_online_exact_amounts_pass_and_cli_reports_sup030(tmp_path):
    # trailing zeros are still exact: 7.500 yuan over the 5.00 cap, twice, is 5.00 yuan (as in the worked example)
    res = precheck(PERSON, INST, visit(), [line("F2", "SV-S-IVINJ", "7.500", "2.0000")])
    assert [(h.rule_id, h.amount_fen, h.feedetl_sns) for h in res.warnings] == [("SV-PRICE-01", 500, ["F2"])]
    from yibao.cli import app

    item = {k: str(v) for k, v in line("F1", "SV-S-IVINJ", "5.00", "1").items()}
    item["pric"] = "NaN"
    v = {k: str(x) if isinstance(x, (Decimal, datetime)) else x for k, x in visit().items()}
    person = {k: str(x) if isinstance(x, Decimal) else x for k, x in PERSON.items()}
    doc = tmp_path / "visit.json"
    doc.write_text(json.dumps({"person": person, "institution": INST, "visit": v, "items": [item]}), encoding="utf-8")
    r = CliRunner().invoke(app, ["audit", "check", "--visit", str(doc)])
    assert r.exit_code == 2 and "SUP030" in r.output and "fee_items.pric" in r.output, r.output
    assert not isinstance(r.exception, TypeError)


def test_case_commands_keep_the_store_migratable(tmp_path):
    """A case command on a fresh database leaves it under Alembic, so `yibao db upgrade` still works."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text

    from yibao.cli import app
    from yibao.store import migrate

    url = f"sqlite:///{tmp_path / 'fresh' / 'yibao.db'}"
    r = CliRunner().invoke(app, ["case", "list", "--db", url])
    assert r.exit_code == 0, r.output
    migrate.upgrade(url)  # failed with "table sv_cases already exists" when cases used create_all
    heads = set(ScriptDirectory.from_config(migrate.alembic_config(url)).get_heads())
    assert {"supervision_0001"} < heads
    engine = create_engine(url)
    with engine.connect() as c:
        stored = tuple(row[0] for row in c.execute(text("SELECT version_num FROM alembic_version")))
    script = ScriptDirectory.from_config(migrate.alembic_config(url))  # a head another branch depends on is implied
    assert heads <= {r.revision for r in script.iterate_revisions(stored, "base")}
    engine.dispose()


def test_case_bad_files_urls_and_status(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from yibao.cli import app

    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'c.db'}"
    no_rule = tmp_path / "h.parquet"
    pq.write_table(pa.table({"subject": ["V1"], "rule_name": ["x"], "severity": ["high"], "amount_yuan": [1]}), no_rule)
    not_parquet = tmp_path / "h.txt"
    not_parquet.write_text("rule_id,subject\n", encoding="utf-8")
    cases = [(["import", "--hits", str(no_rule), "--db", db], "CAS003", "rule_id"),
             (["import", "--hits", str(not_parquet), "--db", db], "CAS004", "Parquet"),
             (["list", "--db", "notaurl"], "CAS020", "notaurl"),
             (["list", "--db", "postgresql+psycopg://u:s3cret@127.0.0.1:1/x"], "CAS020", "127.0.0.1"),
             (["list", "--status", "bogus", "--db", db], "CAS011", "bogus")]
    for args, code, words in cases:
        r = runner.invoke(app, ["case", *args])
        assert r.exit_code == 2 and code in r.output and words in r.output, (args, r.output, r.exception)
        assert "s3cret" not in r.output and "Traceback" not in r.output


def test_audit_refuses_reversed_period_and_reads_quoted_paths(regions, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from yibao.cli import app

    base, _, _ = regions
    runner = CliRunner()
    r = runner.invoke(app, ["audit", "--claims", str(base / "injected"), "--since", "2024-12-01", "--until", "2024-01-01"])
    assert r.exit_code == 2 and "AUD006" in r.output, r.output
    quoted = tmp_path / "r'q"
    shutil.copytree(base / "injected", quoted)
    r = runner.invoke(app, ["audit", "--claims", str(quoted), "--rules", "SV-GEND-01", "--no-excel"])
    assert r.exit_code == 0, r.output
    hits = pq.read_table(quoted / "audit" / "hits.parquet")
    assert hits.num_rows > 0 and set(hits.column("rule_id").to_pylist()) == {"SV-GEND-01"}
