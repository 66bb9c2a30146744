"""The ``yibao`` command as a user runs it: settle, statements, JSON, schema, packs, demo."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from yibao.cli import app
from yibao.policy.loader import shipped_pack_names, shipped_pack_path
from yibao.policy.schema import schema_text, shipped_schema_path

HERE = Path(__file__).parent
PACK = str(HERE / "packs" / "worked_example.yaml")
REQUEST = str(HERE / "requests" / "worked_example.json")
runner = CliRunner()


def settle_json(tmp_path, request: dict):
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(app, ["settle", "-p", PACK, "-r", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout, parse_float=Decimal)


def test_settle_json_worked_example():
    result = runner.invoke(app, ["settle", "--policy", PACK, "--request", REQUEST, "--json"])
    assert result.exit_code == 0, result.stderr
    assert '"hifp_pay": 15555.00' in result.stdout  # yuan with exactly two decimals
    doc = json.loads(result.stdout, parse_float=Decimal)
    info = doc["setlinfo"]
    assert info["inscp_scp_amt"] == Decimal("18500.00")
    assert info["hifp_pay"] == Decimal("15555.00")
    assert info["hifmi_pay"] == Decimal("0.00")
    assert info["maf_pay"] == Decimal("2061.50")
    assert info["psn_part_amt"] == Decimal("2383.50")
    assert [(d["fund_pay_type"], d["fund_payamt"]) for d in doc["setldetail"]] == [
        ("390100", Decimal("15555.00")), ("610100", Decimal("2061.50"))]
    assert any("18,300.00 × 85%" in line for line in doc["explanation"])


def test_settle_statement_is_readable_chinese():
    result = runner.invoke(app, ["settle", "--policy", PACK, "--request", REQUEST], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for words in ("结算单", "15,555.00", "2,061.50", "倾斜支付(低保对象)", "起付线 × 50%", "hifp_pay", "个人现金支出"):
        assert words in text, words


def test_list_of_visits_equals_chaining_accumulators(tmp_path):
    person = {"psn_no": "P9", "insutype": "390", "categories": ["dibao"]}
    v1 = {"mdtrt_id": "A", "med_type": "21", "level": "1", "setl_time": "2024-02-01",
          "amounts": {"inscp_scp_amt": "60000.00"}}
    v2 = {"mdtrt_id": "B", "med_type": "21", "level": "1", "setl_time": "2024-06-01",
          "amounts": {"inscp_scp_amt": "30000.00", "fulamt_ownpay_amt": "123.45"}}
    both = settle_json(tmp_path, {"person": person, "visits": [v1, v2]})
    assert [d["mdtrt_id"] for d in both] == ["A", "B"]
    first = settle_json(tmp_path, {"person": person, "visit": v1})
    second = settle_json(tmp_path, {"person": person, "visit": v2, "accumulators": first["accumulators_after"]})
    assert second["setlinfo"] == both[1]["setlinfo"]
    # the second admission's 大病 base continues from the first: own share 60,000 − 50,830 = 9,170
    # crosses 7,500 (halved) in the first visit already, so the second pays 60% of its whole base
    assert both[0]["setlinfo"]["hifmi_pay"] == Decimal("1002.00")  # (9,170 − 7,500) × 60%
    # second: hifp (30,000 − 200) × 85% = 25,330; own share 4,670, all above the threshold → × 60%
    assert both[1]["setlinfo"]["hifmi_pay"] == Decimal("2802.00")


def test_list_mode_error_names_the_visit(tmp_path):
    person = {"psn_no": "P9", "insutype": "390"}
    visits = [{"mdtrt_id": "A", "med_type": "21", "level": "1", "setl_time": "2024-02-01",
               "amounts": {"inscp_scp_amt": 100}},
              {"mdtrt_id": "B", "med_type": "21", "level": "7", "setl_time": "2024-03-01",
               "amounts": {"inscp_scp_amt": 100}}]
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"person": person, "visits": visits}), encoding="utf-8")
    result = runner.invoke(app, ["settle", "-p", PACK, "-r", str(path), "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    problem = json.loads(result.stderr)["problems"][0]
    assert problem["path"] == "visits[1].level" and "就诊 B" in problem["message"]


def test_schema_command_matches_shipped_schema():
    result = runner.invoke(app, ["policy", "schema"])
    assert result.exit_code == 0
    assert result.stdout == schema_text() == shipped_schema_path().read_text(encoding="utf-8"), (
        "regenerate: yibao policy schema -o src/yibao/policy/packs/policy-pack.schema.json")


def _yaml_as_json(path: Path):
    def plain(value):
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        return value

    return plain(yaml.safe_load(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", shipped_pack_names())
def test_shipped_packs_pass_the_json_schema_and_check(name):
    schema = json.loads(shipped_schema_path().read_text(encoding="utf-8"))
    jsonschema.validate(_yaml_as_json(shipped_pack_path(name)), schema)
    result = runner.invoke(app, ["policy", "check", name])
    assert result.exit_code == 0, result.stderr
    assert "✓" in result.stdout


def test_json_schema_rejects_what_the_loader_rejects():
    schema = json.loads(shipped_schema_path().read_text(encoding="utf-8"))
    data = _yaml_as_json(HERE / "packs" / "worked_example.yaml")
    data["basic"][0]["mode"] = "per_visit"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_policy_list_shows_shipped_packs():
    result = runner.invoke(app, ["policy", "list"])
    assert result.exit_code == 0
    for name in ("shandong-2024", "jishou-2022", "sichuan-county-2020"):
        assert name in result.stdout


def test_demo_examples_run_and_explain():
    result = runner.invoke(app, ["demo", "--examples"])
    assert result.exit_code == 0, result.stderr
    assert "结算单" in result.stdout and "setlinfo" in result.stdout


@pytest.mark.parametrize("args, words", [
    (["settle", "--policy", "shandong-2024"], "缺少必填选项 --request"),
    (["settle", "--polcy", "x"], "没有选项 --polcy"),
    (["batch", "settle", "--claims", "x", "--policy", "y", "--out", "z", "--engine", "oracle"], "BAT011"),
])
def test_usage_errors_are_chinese_with_a_code(args, words, monkeypatch, capsys):
    """The entry point as the ``yibao`` script runs it (in this process: a subprocess per case cost a second each;
    the next test runs one for real)."""
    from yibao.cli import main

    monkeypatch.setattr("sys.argv", ["yibao", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        main()
    captured = capsys.readouterr()
    assert done.value.code == 2
    assert words in captured.err, captured.err
    assert captured.out == ""
    assert "Traceback" not in captured.err


def test_a_coded_error_a_command_lets_through_is_printed_without_a_traceback():
    import subprocess
    import sys

    script = ("from yibao.cli import app, main\n"
              "from yibao.errors import Problem, YibaoError\n"
              "@app.command('boom')\n"
              "def boom():\n"
              "    raise YibaoError(Problem('TST001', 'x', '测试错误'))\n"
              "main()\n")
    done = subprocess.run([sys.executable, "-c", script, "boom"], capture_output=True, text=True,
                          env={**__import__("os").environ, "COLUMNS": "200"})
    assert done.returncode == 2
    assert "TST001" in done.stderr and "测试错误" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_demo_runs_every_step_and_writes_what_it_lists(tmp_path):
    # the README's main job on a small region: every step runs and every listed output exists
    from decimal import Decimal

    from rich.console import Console

    from yibao.demo import run_demo

    console = Console(record=True, width=120)
    got = run_demo(console, persons=2_000, out_dir=tmp_path / "demo", seed=3)
    text = console.export_text()
    for step in ("synth", "simulate", "monitor", "audit", "dip", "ltc", "fund"):  # the yuan tables: while settling
        assert got[step] > 0, step
    for sub in ("region", "simulation", "monitoring", "audit", "dip-catalog", "dip", "fund"):
        assert any((tmp_path / "demo" / sub).iterdir()), sub
    assert all(Path(p).is_file() for p in got["settled"].values())
    assert (tmp_path / "demo" / "audit" / "hits.parquet").is_file()
    assert (tmp_path / "demo" / "fund" / "fund.xlsx").is_file()
    # what the summary reports is what the files hold
    import json

    import pyarrow.parquet as pq

    demo = tmp_path / "demo"
    assert got["audit_hits"] == pq.read_table(demo / "audit" / "hits.parquet").num_rows
    dip = json.loads((demo / "dip" / "settlement.json").read_text(encoding="utf-8"))
    assert got["dip_point_value"] == dip["settlement_point_value"] and Decimal(dip["settlement_point_value"]) > 0
    assert f"结算点值 {dip['settlement_point_value']}" in text
    # the fund pays the budget plus the 结余留用/超支分担 adjustment, to the fen
    assert Decimal(dip["fund_paid"]) == Decimal(dip["budget"]) + Decimal(dip["band_adjustment"])
    years = json.loads((demo / "fund" / "fund.json").read_text(encoding="utf-8"))["years"]
    assert got["fund_levels"] == {y["insutype"]: y["level"] for y in years} and set(got["fund_levels"]) == {"310", "390", "LTC"}
    ltc_paid = sum(pq.read_table(demo / "settled" / "ltc_settlements.parquet").column("fund_pay").to_pylist())
    assert ltc_paid > 0 and next(y for y in years if y["insutype"] == "LTC")["expense"] == int(ltc_paid * 100)
    for y in years:
        assert y["closing"] == y["opening"] + y["income"] - y["expense"]
        assert str(y["months_of_payout"]) in text
    assert "基金监管" in text and "可支付月数" in text


def test_batch_settle_in_directories_whose_names_hold_a_quote(tmp_path):
    # paths reach DuckDB as SQL string literals: a quote in a name must not break the statement
    region, out = tmp_path / "r'q", tmp_path / "s'q"
    assert runner.invoke(app, ["synth", "-p", "shandong-2024", "-n", "200", "-o", str(region)]).exit_code == 0
    result = runner.invoke(app, ["batch", "settle", "-c", str(region), "-p", "shandong-2024", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "setlinfo.parquet").is_file() and (out / "setldetail.parquet").is_file()


def _command_paths(group, prefix=()):
    """Every command under ``yibao`` as the words a user types (groups and their subcommands)."""
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _command_paths(cmd, (*prefix, name))


@pytest.mark.slow  # ~140 help pages, 5-10 s; the fast lane still imports every command module (test_import_cycles.py)
def test_every_command_prints_its_help():
    """``yibao <command> --help`` works for every registered command (imports at module top must not break one)."""
    import typer.main

    paths = list(_command_paths(typer.main.get_command(app)))
    assert len(paths) > 100 and ("audit", "rules") in paths and ("bench", "scalar") in paths
    broken = []
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        if result.exit_code != 0 or "Usage" not in result.stdout:
            broken.append(f"{' '.join(path)}: {result.exit_code} {result.stdout[-200:]}")
    assert broken == []


def test_the_command_table_says_what_each_module_registers():
    """``yibao.cli.DOMAIN_COMMANDS`` decides which module a command line imports: every name in it is the one
    that module registers, and the whole app is exactly their union."""
    import importlib

    import typer
    import typer.main

    from yibao.cli import DOMAIN_COMMANDS

    def names(app):
        return ({c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
                | {g.name for g in app.registered_groups})

    for module, (top, benches) in DOMAIN_COMMANDS.items():
        one, bench = typer.Typer(), typer.Typer()
        importlib.import_module(module).register(one, bench)
        assert names(one) == set(top), module
        assert names(bench) == set(benches), module
    whole = typer.main.get_command(app)
    assert set(whole.commands) == {"bench"} | {n for top, _ in DOMAIN_COMMANDS.values() for n in top}
    assert set(whole.commands["bench"].commands) == {n for _, b in DOMAIN_COMMANDS.values() for n in b}


@pytest.mark.parametrize("args, modules", [
    (["batch", "settle", "--claims", "x"], ["yibao.batch.commands"]),
    (["bench", "settle", "--persons", "10"], ["yibao.batch.commands"]),
    (["settle", "-p", "x"], ["yibao.settlement.commands"]),
    (["bench", "serve"], ["yibao.service.commands"]),
    (["fund", "--help"], ["yibao.payment.commands"]),
])
def test_a_command_line_imports_only_its_commands_module(args, modules):
    from yibao.cli import DOMAIN_COMMANDS, modules_for

    assert modules_for(args) == modules
    for everything in ([], ["--help"], ["bench"], ["bench", "--help"], ["no-such-command"], ["bench", "nothing"]):
        assert modules_for(everything) == list(DOMAIN_COMMANDS)


def test_the_script_starts_with_its_command_s_module_only():
    """The ``yibao`` entry point in a fresh interpreter: ``yibao batch settle --help`` prints its help without
    loading the store (SQLAlchemy) or another domain's commands."""
    import subprocess
    import sys

    script = ("import sys\n"
              "sys.argv = ['yibao', 'batch', 'settle', '--help']\n"
              "from yibao.cli import main\n"
              "try:\n    main()\nexcept SystemExit as done:\n    assert done.code == 0, done.code\n"
              "print('LOADED', ' '.join(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**__import__("os").environ, "COLUMNS": "200"})
    assert "--claims" in done.stdout
    loaded = set(done.stdout.split("LOADED", 1)[1].split())
    assert "yibao.batch.commands" in loaded
    assert "sqlalchemy" not in loaded and "yibao.enrolment.commands" not in loaded
