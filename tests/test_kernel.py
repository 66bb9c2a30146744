"""The compiled batch kernel = the scalar engine, also when categories, insutype and retiree status change
within a year; packs it cannot run exactly are refused at compile time; bad batch input keeps its codes."""

from __future__ import annotations

import ast
import random
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import Phase, given, settings
from typer.testing import CliRunner

from conftest import sized
from strategies import valid_packs
from test_batch import DISEASES, assert_same
from yibao.batch.duck import settle_visits
from yibao.batch.lower import KernelError, lower
from yibao.sql import ident
from yibao.cli import app
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import pack_from_text, resolve_pack
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit

runner = CliRunner()


def changing_region(pack: CompiledPack, visits: int, seed: int):
    """Visits whose person's categories, insutype and retiree status change within the year (per visit)."""
    rng = random.Random(seed)
    year = pack.effective_from.year
    start = datetime.combine(pack.effective_from, datetime.min.time())
    span = max(1, (pack.effective_to - pack.effective_from).days + 1) * 24 * 60 - 1
    cats = sorted(pack.categories)
    insutypes = sorted({r.rule.insutype for r in pack.basic})
    base: dict[str, tuple] = {}
    rows, persons = [], {}
    has_full = any(c.full for c in pack.classes.values())
    for i in range(visits):
        pid = f"P{rng.randrange(max(1, visits // 6)):06d}"
        if pid not in base:
            base[pid] = (rng.choice(insutypes), frozenset(rng.sample(cats, min(rng.choice([0, 1, 2]), len(cats)))),
                         rng.random() < 0.3, rng.randrange(0, 101))
        insutype, categories, retiree, age = base[pid]
        if rng.random() < 0.3:  # recognised, or no longer, in some category for this visit
            categories = frozenset(rng.sample(cats, min(rng.choice([0, 1, 2]), len(cats))))
        if rng.random() < 0.1:
            insutype = rng.choice(insutypes)
        if rng.random() < 0.1:
            retiree = not retiree
        person = Person(pid, insutype, categories, retiree, age=age,
                        hh_no=f"H{int(pid[1:]) // 3:06d}" if pack.uses_households else None)
        rule = rng.choice([r for r in pack.basic if r.rule.insutype == insutype])
        levels = list(rule.by_level)
        amounts = [int(rng.lognormvariate(8, 1.6)) if rng.random() < 0.6 else 0 for _ in range(3)]
        inscp = 0 if rng.random() < 0.03 else int(rng.lognormvariate(11, 1.9))
        mdtrt_id = f"M{i:08d}"
        persons[mdtrt_id] = person
        rows.append({
            "psn_no": pid, "yr": year, "setl_time": start + timedelta(minutes=rng.randrange(span)), "mdtrt_id": mdtrt_id,
            "insutype": insutype, "retiree": retiree, "age": age, **{f"cat_{ident(c)}": c in categories for c in cats},
            "med_type": rng.choice(rule.rule.med_types), "level": rng.choice(levels),
            "dise_codg": rng.choice(list(rule.diseases) or DISEASES),
            "referral_from_level": rng.choice(levels) if rng.random() < 0.15 else None,
            "acct_balance": rng.choice([0, rng.randrange(1, 800_000)]),
            "fulamt": amounts[0], "overlmt": amounts[1], "pre": amounts[2], "inscp": min(inscp, 300_000_000)})
        if pack.uses_households:  # households of three persons: members' visits interleave
            rows[-1]["hh_no"] = person.hh_no
        if has_full:  # a class without co-share (coshare: false): part of inscp paid in full
            rows[-1]["inscp_full"] = rng.randrange(0, rows[-1]["inscp"] + 1) if rng.random() < 0.4 else 0
    return persons, rows


def scalar_changing(pack: CompiledPack, persons, rows):
    """The service's semantics: each visit settled with the person as they were on its settlement date, in time
    order (a household's members share its household accumulators)."""
    out, acc, households = {}, {}, {}
    for r in sorted(rows, key=lambda r: (r["setl_time"], r["mdtrt_id"])):
        a = acc.get(r["psn_no"]) or Accumulators(r["yr"])
        person = persons[r["mdtrt_id"]]
        hh = households.get(person.hh_no) or Accumulators(r["yr"]) if person.hh_no else None
        visit = Visit(r["mdtrt_id"], r["med_type"], r["level"], r["setl_time"].date(), dise_codg=r["dise_codg"],
                      referral_from_level=r["referral_from_level"], acct_balance=r["acct_balance"],
                      amounts=ClassifiedAmounts(r["fulamt"], r["overlmt"], r["pre"], r["inscp"], r.get("inscp_full", 0)))
        s = settle(pack, person, visit, a, hh)
        acc[r["psn_no"]] = s.accumulators_after
        if person.hh_no:
            households[person.hh_no] = s.household_after
        out[r["mdtrt_id"]] = s
    return out


def test_tekun_only_in_march_caps_by_what_was_counted():
    # the case: 特困 only at the March stay; three 300,000-yuan stays at level 3 (March, April, May);
    # a tier's used cap is the sum of what was actually counted against it, never recomputed from the
    # current category: the third stay's 大病 is 134,970.00 (a window recomputation gave 145,500.00)
    pack = CompiledPack(resolve_pack("shandong-2024"))
    cats = sorted(pack.categories)
    rows = [{"psn_no": "P1", "yr": 2024, "setl_time": datetime(2024, m, 10, 9), "mdtrt_id": f"M{m}", "insutype": "390",
             "retiree": False, **{f"cat_{ident(c)}": (c == "tekun" and m == 3) for c in cats}, "med_type": "21",
             "level": "3", "dise_codg": "", "referral_from_level": None, "acct_balance": 0, "fulamt": 0, "overlmt": 0,
             "pre": 0, "inscp": 30_000_000} for m in (3, 4, 5)]
    got = {r["mdtrt_id"]: r["hifmi_pay"] for r in settle_visits(pack, pa.Table.from_pylist(rows)).to_pylist()}
    assert got == {"M3": 7_417_000, "M4": 19_086_000, "M5": 13_497_000}
    persons = {r["mdtrt_id"]: Person("P1", "390", frozenset({"tekun"}) if r["cat_tekun"] else frozenset()) for r in rows}
    assert {k: s.setlinfo.hifmi_pay for k, s in scalar_changing(pack, persons, rows).items()} == got


@pytest.mark.parametrize("name", ["shandong-2024", "jishou-2022", "sichuan-county-2020"])
def test_kernel_equals_scalar_when_persons_change_within_the_year(name):
    pack = CompiledPack(resolve_pack(name))
    persons, rows = changing_region(pack, sized(12_000), seed=7)
    batch = settle_visits(pack, pa.Table.from_pylist(rows))
    assert assert_same(pack, rows, batch, scalar_changing(pack, persons, rows)) == len(rows)


@settings(max_examples=6, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(valid_packs())
def test_kernel_equals_scalar_on_random_packs_with_changes(data_and_pack):
    _, model = data_and_pack
    pack = CompiledPack(model)
    persons, rows = changing_region(pack, sized(6_000), seed=sum(map(ord, model.pack.id)))
    batch = settle_visits(pack, pa.Table.from_pylist(rows))
    assert assert_same(pack, rows, batch, scalar_changing(pack, persons, rows)) == len(rows)


def test_a_pack_the_kernel_cannot_run_exactly_is_refused_at_compile_time():
    fine = pack_from_text("extends: shandong-2024\nbasic:\n  - id: resident_inpatient\n    ratio_by_level: {'1': 0.8512}\n",
                          "fine.yaml")
    assert lower(CompiledPack(fine)).den == 10_000
    huge = pack_from_text("extends: shandong-2024\nbasic:\n  - id: resident_inpatient\n"
                          "    ratio_by_level: {'1': 0.8512345678901}\n", "huge.yaml")
    with pytest.raises(KernelError) as exc:
        lower(CompiledPack(huge))
    assert [p.code for p in exc.value.problems] == ["KRN002"]


def test_keyed_order_puts_equal_times_in_mdtrt_id_order():
    # batch runs sort on the person's integer rank (psn_key) and setl_time, and put a person's equal times in
    # mdtrt_id order afterwards: the scalar engine's (setl_time, mdtrt_id) order, so the same amounts to the fen
    pack = CompiledPack(resolve_pack("shandong-2024"))
    persons, rows = changing_region(pack, 4_000, seed=5)
    rng = random.Random(9)
    by_person: dict[str, list] = {}
    for r in rows:
        by_person.setdefault(r["psn_no"], []).append(r)
    ties = 0
    for visits in by_person.values():  # a third of the persons: two visits at the same second
        if len(visits) > 1 and rng.random() < 0.33:
            a, b = rng.sample(visits, 2)
            b["setl_time"] = a["setl_time"]
            ties += 1
    rank = {p: k for k, p in enumerate(sorted(by_person))}
    keyed = [{**r, "psn_key": rank[r["psn_no"]]} for r in reversed(rows)]
    assert ties > 100
    batch = settle_visits(pack, pa.Table.from_pylist(keyed))
    assert assert_same(pack, rows, batch, scalar_changing(pack, persons, rows)) == len(rows)
    assert batch.to_pylist() == settle_visits(pack, pa.Table.from_pylist(rows)).to_pylist()  # = the string order


def test_out_of_order_or_unsettleable_input_is_refused_not_settled():
    from yibao.batch.stream import block_output, settle_batch  # noqa: F401  (the block path the stream uses)

    pack = CompiledPack(resolve_pack("shandong-2024"))
    cats = sorted(pack.categories)

    def row(pid, day, mid, **kw):
        return {"psn_no": pid, "yr": 2024, "setl_time": datetime(2024, 1, day), "mdtrt_id": mid, "insutype": "390",
                "retiree": False, **{f"cat_{ident(c)}": False for c in cats}, "med_type": "21", "level": "1",
                "dise_codg": "", "referral_from_level": None, "acct_balance": 0, "fulamt": 0, "overlmt": 0, "pre": 0,
                "inscp": 100_000, **kw}

    with pytest.raises(KernelError) as exc:
        settle_visits(pack, pa.Table.from_pylist([row("P1", 2, "M1", med_type="99")]))
    assert exc.value.problems[0].code == "KRN010" and "M1" in exc.value.problems[0].message
    # the stream path orders its input itself; a block handed over out of order is refused
    import duckdb

    from yibao.batch.stream import ordering_query, register_program

    con = duckdb.connect()
    con.register("visits_in", pa.Table.from_pylist([row("P1", 2, "M1"), row("P2", 3, "M2"), row("P1", 4, "M3")]))
    program = lower(pack)
    program = register_program(con, pack, program, "visits_in")  # with the input's code combinations
    shuffled = con.sql(ordering_query(program, "visits_in", order=False) + " ORDER BY mdtrt_id").to_arrow_table()
    with pytest.raises(KernelError) as exc:
        settle_batch(program, shuffled.to_batches()[0])
    assert exc.value.problems[0].code == "KRN011"
    # persons in any order are accepted while each person-year is contiguous (the check's slow path), and settle
    # as in ascending order; a person-year out of time order is refused
    con.register("visits_in", pa.Table.from_pylist([row("P2", 3, "M2"), row("P1", 2, "M1"), row("P1", 4, "M3")]))
    base = ordering_query(program, "visits_in", order=False)
    descending = settle_batch(program, con.sql(base + " ORDER BY psn_no DESC, setl_time").to_arrow_table().to_batches()[0])
    ascending = settle_batch(program, con.sql(base + " ORDER BY psn_no, setl_time").to_arrow_table().to_batches()[0])
    by_visit = lambda b: sorted(zip(b.column("mdtrt_id").to_pylist(), b.column("hifp_pay").to_pylist()))  # noqa: E731
    assert by_visit(descending) == by_visit(ascending) and len(by_visit(ascending)) == 3
    with pytest.raises(KernelError) as exc:
        settle_batch(program, con.sql(base + " ORDER BY psn_no, setl_time DESC").to_arrow_table().to_batches()[0])
    assert exc.value.problems[0].code == "KRN011" and exc.value.problems[0].path == "visits.setl_time"


def test_batch_input_errors_keep_their_codes_and_write_nothing(tmp_path):
    region = tmp_path / "region"
    assert runner.invoke(app, ["synth", "-p", "shandong-2024", "-n", "300", "-o", str(region)]).exit_code == 0
    persons = pq.read_table(region / "persons.parquet").to_pylist()
    persons[0]["categories"] = ["nobody"]
    pq.write_table(pa.Table.from_pylist(persons, pq.read_schema(region / "persons.parquet")), region / "persons.parquet")
    items = pq.read_table(region / "fee_items.parquet")
    rows = items.to_pylist()
    rows[0]["det_item_fee_sumamt"] = rows[0]["det_item_fee_sumamt"] * 0 + 20_000_000  # one visit above the batch limit
    pq.write_table(pa.Table.from_pylist(rows, items.schema), region / "fee_items.parquet")
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", "settle", "--claims", str(region), "--policy", "shandong-2024", "--out", str(out)])
    assert result.exit_code == 2
    assert "BAT005" in result.output and "BAT008" in result.output
    assert not (out / "setlinfo.parquet").exists()


def test_output_memory_is_used_again_only_when_nothing_holds_it():
    """kernel.OutputPool: a block's output slab goes to a later block only once every view of it is gone — a block
    a sink still holds keeps its amounts — and a stream whose sink keeps every block settles what a stream whose
    blocks are dropped settles, to the fen."""
    import numpy as np

    from yibao.batch import kernel
    from yibao.batch.stream import settle_stream

    pool = kernel.OutputPool(keep=2)
    out, pays = pool.views(3, 2, 10)
    out[:] = 7
    assert (pays == 0).all()
    held = out.T[:, 1]  # a view of the slab, as an Arrow buffer over a column holds one
    del out, pays
    out2, pays2 = pool.views(3, 2, 10)
    assert not np.shares_memory(out2, held) and (held == 7).all()  # held: a second slab
    pays2[:] = 5
    del out2, pays2
    out3, pays3 = pool.views(3, 2, 8)  # the second slab is free again: taken, and its pays zeroed
    assert not np.shares_memory(out3, held) and (pays3 == 0).all()
    assert len(pool._slabs) == 2
    out4, _ = pool.views(3, 2, 10)  # both kept slabs in use: a slab of its own, not kept
    assert not np.shares_memory(out4, held) and not np.shares_memory(out4, out3) and len(pool._slabs) == 2
    del held
    out5, _ = pool.views(3, 2, 10)
    assert np.shares_memory(out5, pool._slabs[0])  # the first slab, freed, is used again

    pack = CompiledPack(resolve_pack("shandong-2024"))
    persons, rows = changing_region(pack, 3_000, seed=11)
    import duckdb

    from yibao.batch import stream
    con = duckdb.connect()
    con.register("visits_in", pa.Table.from_pylist(rows))
    kept, copied = [], []
    old = stream.BATCH_ROWS
    stream.BATCH_ROWS = 257  # many small blocks: slabs reused many times over
    try:
        settle_stream(pack, con, "visits_in", kept.append)
        settle_stream(pack, con, "visits_in", lambda b: copied.append(pa.RecordBatch.from_pylist(b.to_pylist(), b.schema)))
    finally:
        stream.BATCH_ROWS = old
    assert len(kept) > 20
    assert pa.Table.from_batches(kept).equals(pa.Table.from_batches(copied))
    assert assert_same(pack, rows, pa.Table.from_batches(kept), scalar_changing(pack, persons, rows)) == len(rows)


def test_the_passes_loaded_before_a_run_are_the_ones_it_calls(tmp_path):
    """``yibao batch settle`` loads the compiled passes on a thread while it opens the claims (``load_compiled``):
    warmed with the wrong types, a run would load (or compile) its passes again. In a fresh interpreter, after the
    warm-up a whole run adds no signature to the classification pass nor to the kernel."""
    import subprocess
    import sys

    from yibao.synth import generate_to

    generate_to(resolve_pack("shandong-2024"), tmp_path / "r", persons=60, seed=5)
    script = (
        "import sys\n"
        "from yibao.batch import classify, kernel\n"
        "from yibao.batch.run import classify as classify_claims, load_compiled, open_claims, settle\n"
        "from yibao.policy.compiled import CompiledPack\n"
        "from yibao.policy.loader import resolve_pack\n"
        "pack = CompiledPack(resolve_pack('shandong-2024'))\n"
        "load_compiled(pack).result()\n"
        "before = (len(classify._classify_lines.signatures), len(kernel.settle_block.signatures))\n"
        "run = open_claims(sys.argv[1])\n"
        "classify_claims(run, pack)\n"
        "settle(run, pack, 'main', out_dir=sys.argv[2], keep_fen=False)\n"
        "after = (len(classify._classify_lines.signatures), len(kernel.settle_block.signatures))\n"
        "print('SIGNATURES', repr((before, after, run.totals['settled_main']['visits'])))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r"), str(tmp_path / "out")],
                          capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("SIGNATURES"))
    before, after, visits = ast.literal_eval(line.removeprefix("SIGNATURES").strip())
    assert visits > 0 and (tmp_path / "out" / "setlinfo.parquet").exists()
    assert before[0] >= 1 and before[1] == 1
    assert after == before
