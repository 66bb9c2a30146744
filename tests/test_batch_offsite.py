"""异地就医 status as an optional claims column: `yibao batch settle` reads it, checks it before settling
(BAT013), and pays each visit as the service pays it for the same status."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from yibao.cli import app

runner = CliRunner()
STATUSES = ["local", "filed", "unfiled", None]


def _region(tmp_path, statuses):
    region = tmp_path / "region"
    assert runner.invoke(app, ["synth", "-p", "shandong-2024", "-n", "400", "-o", str(region)]).exit_code == 0
    visits = pq.read_table(region / "visits.parquet")
    column = [statuses[i % len(statuses)] for i in range(visits.num_rows)]
    pq.write_table(visits.append_column("offsite_status", pa.array(column, pa.string())), region / "visits.parquet")
    return region


def _settle(region, out):
    return runner.invoke(app, ["batch", "settle", "--claims", str(region), "--policy", "shandong-2024-offsite",
                               "--out", str(out)])


def test_batch_settle_reads_offsite_status_and_equals_all_local_only_where_local(tmp_path):
    region = _region(tmp_path, STATUSES)
    mixed = _settle(region, tmp_path / "mixed")
    assert mixed.exit_code == 0, mixed.output
    local_region = _region(tmp_path / "l", ["local"])
    local = _settle(local_region, tmp_path / "local")
    assert local.exit_code == 0, local.output
    got = {r["mdtrt_id"]: r for r in pq.read_table(tmp_path / "mixed" / "setlinfo.parquet").to_pylist()}
    ref = {r["mdtrt_id"]: r for r in pq.read_table(tmp_path / "local" / "setlinfo.parquet").to_pylist()}
    statuses = dict(zip(pq.read_table(region / "visits.parquet").column("mdtrt_id").to_pylist(),
                        pq.read_table(region / "visits.parquet").column("offsite_status").to_pylist()))
    assert got.keys() == ref.keys()
    # a person's later visits depend on the earlier ones (deductible, cap), so compare persons whose visits are
    # all local (or null) in the mixed region: they must settle exactly as in the all-local region
    by_person: dict[str, list[str]] = {}
    for mid, row in got.items():
        by_person.setdefault(row["psn_no"], []).append(mid)
    local_persons = [p for p, mids in by_person.items() if all(statuses[m] in ("local", None) for m in mids)]
    assert local_persons
    for p in local_persons:
        for mid in by_person[p]:
            assert got[mid]["hifp_pay"] == ref[mid]["hifp_pay"], mid
    offsite_paid = sum(got[m]["hifp_pay"] for m in got if statuses[m] in ("filed", "unfiled"))
    offsite_ref = sum(ref[m]["hifp_pay"] for m in got if statuses[m] in ("filed", "unfiled"))
    assert offsite_paid < offsite_ref  # the pack's points lower filed and unfiled visits' ratio


def test_bad_offsite_status_is_refused_before_anything_is_settled(tmp_path):
    region = _region(tmp_path, ["local", "abroad"])
    result = _settle(region, tmp_path / "out")
    assert result.exit_code == 2
    assert "BAT013" in result.output and "visits.offsite_status" in result.output
    assert not (tmp_path / "out" / "setlinfo.parquet").exists()
