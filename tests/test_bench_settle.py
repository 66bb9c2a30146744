"""`yibao bench settle` runs and reports every figure it promises (a benchmark: figures are printed, never
asserted here), and the streamed and in-memory batch results it compares are the same."""

from __future__ import annotations

from typer.testing import CliRunner

from yibao.cli import app

runner = CliRunner()


def test_bench_settle_reports_each_figure_on_a_small_region(tmp_path):
    region = tmp_path / "r"
    assert runner.invoke(app, ["synth", "-p", "shandong-2024", "-n", "300", "-o", str(region)]).exit_code == 0
    result = runner.invoke(app, ["bench", "settle", "--claims", str(region), "--scalar-sample", "200"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for label in ("kernel alone", "settle step", "joins + sort alone", "floor on", "end to end", "scalar engine", "ratio", "peak RSS", "核 cores"):
        assert label in text, label
    assert "相同 same" in text and "DIFFERENT" not in text
    assert "at the floor:" in text
    assert "参保人 persons 300;" in text  # the given region's own size
