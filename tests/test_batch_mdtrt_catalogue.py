"""异地就医 in batch (issue 16): `yibao batch settle --mdtrt-packs` classifies the lines of a visit outside the
insured's city by the catalogue of the pack for the institution's area (吉首's codes, classes and price caps) and
settles them by the run's pack, as the service does online (tests/test_service_mdtrt_catalogue.py); a local visit is
classified by the run's own pack."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from yibao.claims.schema import SCHEMAS
from yibao.cli import app
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, resolve_pack
from yibao.settlement.classify import classify_items
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, FeeItem, Person, Visit

runner = CliRunner()
JISHOU_2024 = """extends: jishou-2022
pack: {id: jishou-2024-example, version: "2024.1", effective_from: 2024-01-01, effective_to: 2024-12-31}
"""
AWAY = [("JS-EX-D001", "12.00", "100"), ("JS-EX-S001", "300.00", "5"), ("JS-EX-S002", "500.00", "1")]
HOME = [("SD-EX-D001", "20.00", "10"), ("SD-EX-D002", "50.00", "4")]


def _claims(root):
    root.mkdir()
    persons = [{"psn_no": "P1", "certno": "370102199001011237", "psn_name": "测试", "gend": "1", "age": 34,
                "insutype": "390", "retiree": False, "categories": [], "admdvs": "370102", "hh_no": "H1",
                "hh_income": Decimal(0)}]
    institutions = [{"fixmedins_code": "H370102", "fixmedins_name": "济南", "level": "3", "admdvs": "370102"},
                    {"fixmedins_code": "H433101", "fixmedins_name": "吉首", "level": "3", "admdvs": "433101"}]
    visits, items = [], []
    for k, (inst, lines, month) in enumerate((("H433101", AWAY, 3), ("H370102", HOME, 5))):
        at = datetime(2024, month, 2, 9)
        visits.append({"mdtrt_id": f"V{k}", "psn_no": "P1", "insutype": "390", "med_type": "21", "fixmedins_code": inst,
                       "level": "3", "begntime": at, "endtime": at, "setl_time": at, "dise_codg": "", "acct_balance": Decimal(0),
                       "medfee_sumamt": sum(Decimal(p) * Decimal(c) for _, p, c in lines)})
        items += [{"feedetl_sn": f"V{k}-{i}", "mdtrt_id": f"V{k}", "med_list_codg": code, "chrgitm_lv": None,
                   "pric": Decimal(p), "cnt": Decimal(c), "det_item_fee_sumamt": Decimal(p) * Decimal(c)}
                  for i, (code, p, c) in enumerate(lines)]
    for name, data in (("persons", persons), ("institutions", institutions), ("visits", visits), ("fee_items", items)):
        pq.write_table(pa.Table.from_pylist(data, schema=SCHEMAS[name]), root / f"{name}.parquet")
    return root


def _items(lines, k):
    return tuple(FeeItem(f"V{k}-{i}", code, int(Decimal(p) * Decimal(c) * 100), cnt=Decimal(c), pric=int(Decimal(p) * 100))
                 for i, (code, p, c) in enumerate(lines))


def test_offsite_lines_by_the_mdtrt_catalogue_in_batch(tmp_path):
    claims = _claims(tmp_path / "claims")
    jishou_path = tmp_path / "jishou-2024.yaml"
    jishou_path.write_text(JISHOU_2024, encoding="utf-8")
    result = runner.invoke(app, ["batch", "settle", "--claims", str(claims), "--policy", "shandong-2024",
                                 "--mdtrt-packs", str(jishou_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    got = {r["mdtrt_id"]: r for r in pq.read_table(tmp_path / "out" / "setlinfo.parquet").to_pylist()}
    shandong, jishou = CompiledPack(resolve_pack("shandong-2024")), CompiledPack(load_pack(jishou_path))
    first = settle(shandong, Person("P1", "390"), Visit("V0", "21", "3", datetime(2024, 3, 2).date(),
                                                         amounts=classify_items(jishou, _items(AWAY, 0))), Accumulators(2024))
    second = settle(shandong, Person("P1", "390"), Visit("V1", "21", "3", datetime(2024, 5, 2).date(),
                                                          items=_items(HOME, 1)), first.accumulators_after)
    for mid, expected in (("V0", first.setlinfo), ("V1", second.setlinfo)):
        for f in ("inscp_scp_amt", "preselfpay_amt", "fulamt_ownpay_amt", "hifp_pay", "psn_part_amt"):
            assert got[mid][f] == Decimal(getattr(expected, f)) / 100, (mid, f)
    assert got["V0"]["inscp_scp_amt"] == Decimal("2550.00")  # 吉首: 1,200 甲类 + 1,350 乙类 after its 10%
    # without the 就医地 pack the 吉首 codes are unknown to the run's catalogue: refused before settling
    plain = runner.invoke(app, ["batch", "settle", "--claims", str(claims), "--policy", "shandong-2024",
                                "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 2 and "BAT007" in plain.output
