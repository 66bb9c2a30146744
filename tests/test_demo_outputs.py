"""Issue 12 (``make demo`` faster): what the demo now does beside its main line gives what it gave in line.

- the simulation's files written by a child process (:mod:`yibao.simulation.background`) are the files
  :func:`yibao.simulation.outputs.write_outputs` writes in-process: the same bytes for the charts, the HTML
  and the JSON, the same cells in the workbook; its errors and warnings reach the caller;
- the audit run in a second thread on its own connection while the year is settled finds what a
  standalone audit of the same region finds, the simulation the demo reports is a standalone one's, and
  the fund projection (which reads a copy of simulation.json written in-process) used the report's factors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from rich.console import Console

from yibao.batch.run import open_claims
from yibao.fund.operation import simulation_factors
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.simulation.background import OutputsProcess
from yibao.simulation.comparison import simulate
from yibao.simulation.errors import SimulationError
from yibao.simulation.outputs import write_outputs
from yibao.supervision import audit as A
from yibao.supervision.ruleset import load_ruleset

from test_simulation import write_tiny_region


@pytest.fixture(scope="module")
def packs():
    return CompiledPack(resolve_pack("shandong-2024-baseline")), CompiledPack(resolve_pack("shandong-2024"))


@pytest.fixture(scope="module")
def compared(packs, tmp_path_factory):
    """The tiny region compared, no files written yet."""
    return simulate(open_claims(write_tiny_region(tmp_path_factory.mktemp("tiny"))), *packs)


def cells(path: Path) -> dict:
    wb = load_workbook(path)
    return {ws.title: [[c.value for c in row] for row in ws.iter_rows()] for ws in wb.worksheets}


def same_files(a: dict[str, Path], b: dict[str, Path]) -> None:
    assert set(a) == set(b) and len(a) == 7  # json, xlsx, html, four charts
    for key in a:
        assert a[key].name == b[key].name
        if key == "xlsx":  # the zip holds the time it was written: compare what a reader sees
            assert cells(a[key]) == cells(b[key])
        else:
            assert a[key].read_bytes() == b[key].read_bytes(), key


def test_child_process_writes_the_files_written_in_process(compared, tmp_path):
    here = write_outputs(compared, tmp_path / "here")
    child = OutputsProcess().start()
    assert child.proc is not None  # a second interpreter, not the in-process fallback
    child.write(compared, tmp_path / "child")
    there = child.wait()
    same_files(here, there)
    assert compared.outputs == there and child.proc is None
    assert not [p for p in (tmp_path / "child").iterdir() if p.name.startswith(".")]  # no staging folder left


def test_without_a_child_the_files_are_written_in_process(compared, tmp_path):
    writer = OutputsProcess()  # never started: as where no interpreter can be launched
    writer.write(compared, tmp_path / "here")
    same_files(write_outputs(compared, tmp_path / "ref"), writer.wait())


def test_child_errors_and_warnings_reach_the_caller(compared, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("x")
    child = OutputsProcess().start()
    child.write(compared, blocked / "sub")  # a folder under a file: cannot be created
    with pytest.raises(SimulationError) as exc:
        child.wait()
    assert exc.value.problems[0].code == "SIM003" and exc.value.problems[0].path == "out_dir"
    # a child's warning (here one put in the result before sending) comes back once, not twice
    compared.warnings.append("测试警告")
    try:
        child = OutputsProcess().start()
        child.write(compared, tmp_path / "ok")
        child.wait()
        assert compared.warnings.count("测试警告") == 1
        assert "测试警告" in json.loads((tmp_path / "ok" / "simulation.json").read_text(encoding="utf-8"))["warnings"]
    finally:
        compared.warnings.remove("测试警告")


def test_on_settled_runs_between_settling_and_comparing(packs, tmp_path):
    # the demo starts DIP and long-term care there: both packs settled and the reform's yuan tables complete,
    # the comparison not begun
    run = open_claims(write_tiny_region(tmp_path / "tiny"))
    seen = []

    def check():
        tables = {r[0] for r in run.con.sql("SELECT view_name FROM duckdb_views() UNION ALL "
                                            "SELECT table_name FROM duckdb_tables()").fetchall()}
        seen.append(({"settled_baseline", "settled_reform"} <= tables, "sim_visits" in tables,
                     pq.read_table(tmp_path / "settled" / "setlinfo.parquet").num_rows))

    result = simulate(run, *packs, reform_tables=tmp_path / "settled", on_settled=check)
    assert seen == [(True, False, 6)]
    assert result.overall.visits == 6


def test_a_child_given_no_work_is_stopped(tmp_path):
    child = OutputsProcess().start()
    proc = child.proc
    child.close()
    assert child.proc is None and proc.poll() is not None


@pytest.mark.slow
def test_demo_audit_and_simulation_equal_standalone_runs(packs, tmp_path):
    from yibao.demo import run_demo

    out = tmp_path / "demo"
    run_demo(Console(record=True, width=120), persons=1_500, out_dir=out, seed=5)
    # the audit of the region on its own, in this thread
    run = A.open_claims(out / "region")
    A.run_rules(run, load_ruleset())
    summary = A.summaries(run)
    alone = A.write_outputs(run, tmp_path / "audit", summary, excel=False)
    for name in ("hits", "by_rule", "by_institution", "by_physician", "peer_scores", "baselines"):
        got, want = pq.read_table(out / "audit" / f"{name}.parquet"), pq.read_table(alone[name])
        assert got.equals(want), name
    assert pq.read_table(alone["by_rule"]).column("hits").to_pylist()  # 34 rules listed
    # the simulation of the region on its own, written in-process
    sim = simulate(open_claims(out / "region"), *packs, tmp_path / "sim")
    got = json.loads((out / "simulation" / "simulation.json").read_text(encoding="utf-8"))
    assert got == json.loads(sim.outputs["json"].read_text(encoding="utf-8"))
    assert cells(out / "simulation" / "simulation.xlsx") == cells(sim.outputs["xlsx"])
    for name in ("chart_fund_by_tier.png", "simulation.html"):
        assert (out / "simulation" / name).read_bytes() == (tmp_path / "sim" / name).read_bytes()
    # the fund projection read the reform's factors from a JSON written apart: they are the report's
    factors = simulation_factors(out / "simulation" / "simulation.json")
    assert factors and all(v > 0 for v in factors.values())
    fund = json.loads((out / "fund" / "fund.json").read_text(encoding="utf-8"))
    assert fund["assumptions"]["simulation_expense_factors"] == {k: str(v) for k, v in factors.items()}
