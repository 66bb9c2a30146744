"""Policy simulation: a tiny region checked by hand, then the shipped reform on a synthetic region.

The tiny region (six persons, five households, six visits, every line 甲类 unless noted) is settled
under shandong-2024-baseline (基层 resident inpatient 80%) and shandong-2024 (85%). Worked by hand:

| person | household (income) | visit | what happens | annual OOP baseline → reform |
| --- | --- | --- | --- | --- |
| P1 居民 | H1 (5,000) | V1 基层住院 10,200 | (10,200 − 200) × 80% = 8,000 → × 85% = 8,500 | 2,200 → 1,700 |
| P2 居民 | H1 | V2 基层门诊 100 | 60% = 60 | 40 → 40 |
| P3 职工 | H2 (50,000) | V3 三级住院 100,800 甲 + 5,000 丙; V6 基层门诊 200 | (100,800 − 800) × 85% = 85,000; 120 | 20,880 → 20,880 |
| P4 居民 低保 | H3 (8,000) | V4 二级住院 30,500 | 22,500; 大病 (8,000 − 7,500) × 65% = 325; 救助 70% × 7,675 = 5,372.50 | 2,302.50 |
| P5 居民 | H4 (30,000) | — | | 0 |
| P6 居民 监测对象 | H5 (20,000) | V5 三级住院 61,000 | 36,000; 大病 6,000; 救助 8,000; 再救助 700 | 10,300 |

Catastrophic (OOP > 40% of household income): H1 2,240 > 2,000 (baseline only), H2 20,880 > 20,000,
H5 10,300 > 8,000; H3 2,302.50 ≤ 3,200; H4 0.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from yibao.batch.run import open_claims
from yibao.batch.validate import BatchError
from yibao.cli import app
from yibao.claims.schema import SCHEMAS
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.simulation.comparison import simulate
from yibao.simulation.errors import SimulationError
from yibao.simulation.render import format_simulation
from yibao.simulation.result import Pair
from yibao.synth import generate, write_region

runner = CliRunner()
D = Decimal

PERSONS = [  # psn_no, certno, name, gend, age, insutype, categories, hh_no, hh_income
    ("P1", "370102199001011234", "张三", "1", 34, "390", [], "H1", "5000.00"),
    ("P2", "370102199203041235", "李四", "2", 32, "390", [], "H1", "5000.00"),
    ("P3", "37010219800101123X", "欧阳娜娜", "2", 44, "310", [], "H2", "50000.00"),
    ("P4", "370104197505051236", "王五", "1", 49, "390", ["dibao"], "H3", "8000.00"),
    ("P5", "370105200001011237", "赵一", "1", 24, "390", [], "H4", "30000.00"),
    ("P6", "370106196001011238", "钱六", "1", 64, "390", ["monitor"], "H5", "20000.00"),
]
INSTITUTIONS = [("I1", "社区卫生服务中心", "1"), ("I2", "县人民医院", "2"), ("I3", "市中心医院", "3")]
VISITS = [  # mdtrt_id, psn_no, med_type, institution, level, begin, end, diagnosis, lines [(class, amount)]
    ("V1", "P1", "21", "I1", "1", "2024-03-01", "2024-03-05", "K35.800", [("01", "10200.00")]),
    ("V2", "P2", "11", "I1", "1", "2024-04-10", "2024-04-10", "J06.900", [("01", "100.00")]),
    ("V3", "P3", "21", "I3", "3", "2024-05-01", "2024-05-10", "C34.100", [("01", "100800.00"), ("03", "5000.00")]),
    ("V4", "P4", "21", "I2", "2", "2024-06-01", "2024-06-08", "J18.000", [("01", "30500.00")]),
    ("V5", "P6", "21", "I3", "3", "2024-07-01", "2024-07-15", "I63.900", [("01", "61000.00")]),
    ("V6", "P3", "11", "I1", "1", "2024-08-01", "2024-08-01", "J06.900", [("01", "200.00")]),
]


def tiny_tables() -> dict[str, pa.Table]:
    insutype = {p[0]: p[5] for p in PERSONS}
    persons = [dict(psn_no=p, certno=c, psn_name=n, gend=g, age=a, insutype=i, retiree=False, categories=cats,
                    admdvs="370102", hh_no=h, hh_income=D(inc)) for p, c, n, g, a, i, cats, h, inc in PERSONS]
    insts = [dict(fixmedins_code=c, fixmedins_name=n, level=lv, admdvs="370102") for c, n, lv in INSTITUTIONS]
    visits, items = [], []
    for mdtrt, psn, med, inst, lv, begin, end, dise, lines in VISITS:
        t0, t1 = datetime.fromisoformat(begin + " 09:00:00"), datetime.fromisoformat(end + " 16:00:00")
        visits.append(dict(mdtrt_id=mdtrt, psn_no=psn, insutype=insutype[psn], med_type=med, fixmedins_code=inst,
                           level=lv, begntime=t0, endtime=t1, setl_time=t1, dise_codg=dise, oprn_oprt_code=None,
                           referral_from_level=None, acct_balance=D("0.00"),
                           medfee_sumamt=sum(D(a) for _, a in lines)))
        for k, (cls, amount) in enumerate(lines):
            items.append(dict(feedetl_sn=f"{mdtrt}-{k}", mdtrt_id=mdtrt, med_list_codg=f"TEST-{cls}-{k}",
                              chrgitm_lv=cls, pric=D(amount), cnt=D("1.0000"), det_item_fee_sumamt=D(amount),
                              preselfpay_ratio=None))
    rows = {"persons": persons, "institutions": insts, "visits": visits, "fee_items": items}
    return {name: pa.Table.from_pylist(rows[name], schema=SCHEMAS[name]) for name in SCHEMAS}


def write_tiny_region(directory: Path) -> Path:
    write_region(tiny_tables(), directory)
    return directory


@pytest.fixture(scope="module")
def packs():
    return CompiledPack(resolve_pack("shandong-2024-baseline")), CompiledPack(resolve_pack("shandong-2024"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_region(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_dir, packs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-sim")
    return simulate(open_claims(tiny_dir), *packs, out)


def y(value: str) -> int:
    """yuan text → fen."""
    return int(D(value) * 100)


def test_tiny_region_fund_and_burden_by_hand(tiny):
    g = tiny.overall
    assert g.visits == 6 and g.visits_affected == 1 and g.persons_affected == 1
    assert g.burden.persons == 6 and g.persons_with_visits == 5
    a = g.amounts
    assert (a["medfee_sumamt"].baseline, a["medfee_sumamt"].reform) == (y("207800"), y("207800"))
    assert (a["hifp_pay"].baseline, a["hifp_pay"].reform) == (y("151680"), y("152180"))
    assert a["hifmi_pay"].baseline == a["hifmi_pay"].reform == y("6325")
    assert a["maf_pay"].baseline == a["maf_pay"].reform == y("14072.50")
    assert (a["fund_pay_sumamt"].baseline, a["fund_pay_sumamt"].reform) == (y("172077.50"), y("172577.50"))
    assert a["fund_pay_sumamt"].change == y("500") and a["fund_pay_sumamt"].pct == D("0.29")
    assert (a["psn_part_amt"].baseline, a["psn_part_amt"].reform) == (y("35722.50"), y("35222.50"))
    rules = g.rules
    # 居民住院 V1 + V4 + V5: 8,000 (→ 8,500) + 22,500 + 36,000
    assert (rules["resident_inpatient"].baseline, rules["resident_inpatient"].reform) == (y("66500"), y("67000"))
    assert rules["employee_inpatient"].baseline == y("85000") and rules["employee_outpatient"].reform == y("120")
    assert rules["reassistance"].reform == y("700") and rules["assistance_core"].reform == y("5372.50")
    assert rules["assistance_edge"].reform == y("8000") and rules["assistance_on_application"].reform == 0


def test_tiny_region_deciles_and_mean(tiny):
    burden = tiny.overall.burden
    # six person-years, sorted baseline 0, 40, 2,200, 2,302.50, 10,300, 20,880; P(k) = value ⌈6k/10⌉
    assert [d.baseline for d in burden.deciles] == [y(v) for v in
                                                     ("0", "40", "40", "2200", "2200", "2302.50", "10300", "10300", "20880")]
    assert [d.reform for d in burden.deciles] == [y(v) for v in
                                                   ("0", "40", "40", "1700", "1700", "2302.50", "10300", "10300", "20880")]
    assert burden.mean() == (D("5953.75"), D("5870.42"))  # 35,722.50 / 6 and 35,222.50 / 6 (half-up)
    level1 = tiny.group("level", "1").burden  # P1, P2, P3 at 基层: 2,200 → 1,700; 40; 80
    assert level1.persons == 3
    assert [d.baseline for d in level1.deciles] == [y(v) for v in ("40",) * 3 + ("80",) * 3 + ("2200",) * 3]
    assert (level1.total.baseline, level1.total.reform) == (y("2320"), y("1820"))


def test_tiny_region_catastrophic_shares(tiny):
    g = tiny.overall
    assert (g.households.total, g.households.known) == (5, 5)
    assert (g.households.catastrophic.baseline, g.households.catastrophic.reform) == (3, 2)
    assert g.households.shares() == (D("60.00"), D("40.00")) and g.households.change_points() == D("-20.00")
    assert (g.persons.catastrophic.baseline, g.persons.catastrophic.reform) == (4, 2)
    assert g.persons.shares() == (D("66.67"), D("33.33"))
    none = tiny.group("category", "(none)")  # P1, P2, P3, P5 in H1, H2, H4
    assert none.burden.persons == 4 and none.households.total == 3
    assert (none.households.catastrophic.baseline, none.households.catastrophic.reform) == (2, 1)
    assert none.burden.mean() == (D("5780.00"), D("5655.00"))
    monitor = tiny.group("category", "monitor")
    assert monitor.households.shares() == (D("100.00"), D("100.00"))
    dibao = tiny.group("category", "dibao")
    assert dibao.households.catastrophic == Pair(0, 0)
    assert dibao.amounts["maf_pay"].baseline == y("5372.50")
    # every category of the pack is listed, also one nobody holds
    assert [g.key for g in tiny.dimension("category")] == ["tekun", "dibao", "fanpin", "dibao_edge", "monitor",
                                                           "illness_poverty", "(none)"]
    assert tiny.group("category", "tekun").burden.persons == 0 and tiny.group("category", "tekun").visits == 0


def test_tiny_region_groups_by_scheme_level_and_kind(tiny):
    resident, employee = tiny.group("insutype", "390"), tiny.group("insutype", "310")
    assert resident.burden.persons == 5 and employee.burden.persons == 1
    assert employee.fund.change == 0 and resident.fund.change == y("500")
    assert resident.persons_affected == 1 and employee.persons_affected == 0
    assert [g.key for g in tiny.dimension("level")] == ["1", "2", "3"]
    assert tiny.group("level", "1").visits == 3 and tiny.group("level", "2").visits_affected == 0
    kind = tiny.group("visit_kind", "390/1/21")
    assert kind.name == "居民 · 一级/基层医疗卫生机构 · 普通住院"
    assert (kind.burden.total.baseline, kind.burden.total.reform) == (y("2200"), y("1700"))
    assert tiny.group("med_type", "21").visits == 4 and tiny.group("med_type", "11").visits == 2


def test_catastrophic_share_can_be_set(tiny_dir, packs):
    # at 50%: H1 2,240 ≤ 2,500, H2 20,880 ≤ 25,000, H5 10,300 > 10,000 → 1 of 5 both ways
    result = simulate(open_claims(tiny_dir), *packs, catastrophic_share="0.5")
    assert result.catastrophic_share == D("0.5")
    assert result.overall.households.catastrophic == Pair(1, 1)
    with pytest.raises(SimulationError) as exc:
        simulate(open_claims(tiny_dir), *packs, catastrophic_share="1.5")
    assert exc.value.problems[0].code == "SIM001"


def test_outputs_exist_and_parse(tiny):
    out = tiny.outputs
    assert set(out) >= {"json", "xlsx", "html", "chart_fund_by_tier", "chart_burden_deciles"}
    doc = json.loads(out["json"].read_text(encoding="utf-8"))
    overall = next(g for g in doc["groups"] if g["dimension"] == "overall")
    assert overall["amounts"]["fund_pay_sumamt"] == {"baseline": "172077.50", "reform": "172577.50",
                                                     "change": "500.00", "change_pct": "0.29"}
    assert overall["burden"]["deciles"][5]["baseline"] == "2302.50"
    assert overall["catastrophic"]["households"]["baseline_pct"] == "60.00"
    assert doc["catastrophic_share"] == "0.40" and doc["baseline"]["id"] == "shandong-2024-baseline"
    wb = load_workbook(out["xlsx"])
    assert wb.sheetnames[:4] == ["概览", "按险种", "按机构等级", "按人员类别"] and "负担分布" in wb.sheetnames
    assert wb["按险种"]["A1"].value == "分组代码" and wb["按险种"]["B2"].value == "职工基本医疗保险"
    values = {row[0].value: row for row in wb["概览"].iter_rows(min_row=2)}
    row = values["基金支付总额 (fund_pay_sumamt)"]
    assert (D(str(row[2].value)), D(str(row[3].value))) == (D("172077.50"), D("172577.50"))
    for key, path in out.items():
        if key.startswith("chart_"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    html = out["html"].read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 4
    assert "政策模拟报告" in html and "按人员类别" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert not [p for p in out["json"].parent.iterdir() if p.name.startswith(".")]  # no temp dir left


def test_format_simulation_renders(tiny):
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(format_simulation(tiny))
    text = console.export_text()
    assert "基金支付总额" in text and "+500.00" in text and "普通参保人" in text


def test_synthetic_region_reform_raises_payout_and_lowers_grassroots_inpatient_burden(packs, tmp_path):
    tables = generate(packs[1].pack, persons=3000, seed=5)
    region = tmp_path / "region"
    write_region(tables, region)
    result = simulate(open_claims(region), *packs, tmp_path / "sim")
    g = result.overall
    assert g.fund.change > 0 and g.amounts["hifp_pay"].change > 0
    assert g.rules["resident_inpatient"].change > 0 and g.rules["resident_two_diseases"].change > 0
    kind = result.group("visit_kind", "390/1/21")
    assert kind.burden.total.change < 0 and kind.burden.mean()[1] < kind.burden.mean()[0]
    assert result.group("insutype", "310").fund.change == 0  # employees untouched by the reform
    for pair_name in ("baseline", "reform"):  # medfee = funds + personal share, per pack
        medfee = getattr(g.amounts["medfee_sumamt"], pair_name)
        assert medfee == getattr(g.fund, pair_name) + getattr(g.amounts["psn_part_amt"], pair_name)
    for dim in ("insutype", "level", "med_type", "visit_kind"):  # visit groups partition the visits
        groups = result.dimension(dim)
        assert sum(x.visits for x in groups) == g.visits
        assert sum(x.fund.reform for x in groups) == g.fund.reform
    assert sum(x.burden.persons for x in result.dimension("insutype")) == g.burden.persons == 3000
    assert sum(x.burden.persons for x in result.dimension("category")) >= 3000
    for d in (g.burden.deciles, kind.burden.deciles):
        assert [p.baseline for p in d] == sorted(p.baseline for p in d)
    assert (tmp_path / "sim" / "simulation.xlsx").exists() and (tmp_path / "sim" / "simulation.html").exists()


# --- the command ---------------------------------------------------------------------------


def test_cli_simulate_json_and_files(tiny_dir, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", "--claims", str(tiny_dir), "--baseline", "shandong-2024-baseline",
                                 "--reform", "shandong-2024", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["groups"][0]["amounts"]["hifp_pay"]["change"] == "500.00"
    assert (out / "simulation.json").exists() and (out / "chart_catastrophic.png").exists()
    text = runner.invoke(app, ["simulate", "-c", str(tiny_dir), "-b", "shandong-2024-baseline", "-r", "shandong-2024"],
                         env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.stderr
    assert "政策模拟" in text.stdout and "按人员类别" in text.stdout


@pytest.mark.parametrize("args, code", [
    (["--claims", "{missing}"], "BAT010"),
    (["--reform", "no-such-pack"], "POL"),
    (["--catastrophic-share", "abc"], "SIM001"),
    (["--reform", "jishou-2022"], "BAT001"),  # visits of 2024 are outside the 2022 pack
])
def test_cli_simulate_bad_input_writes_nothing(tiny_dir, tmp_path, args, code):
    out = tmp_path / "out"
    base = {"--claims": str(tiny_dir), "--baseline": "shandong-2024-baseline", "--reform": "shandong-2024"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value.replace("{missing}", str(tmp_path / "missing"))
    argv = ["simulate", "--out", str(out), "--json"] + [x for kv in base.items() for x in kv]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert code in result.stderr
    assert not out.exists()


def test_out_path_that_is_a_file_is_refused(tiny_dir, packs, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(SimulationError) as exc:
        simulate(open_claims(tiny_dir), *packs, target)
    assert exc.value.problems[0].code == "SIM003"


def test_bad_claims_raise_batch_error_before_writing(tiny_dir, tmp_path):
    jishou = CompiledPack(resolve_pack("jishou-2022"))
    with pytest.raises(BatchError):
        simulate(open_claims(tiny_dir), jishou, jishou, tmp_path / "never")
    assert not (tmp_path / "never").exists()
