"""The faster LTC step (issue #12) decides exactly as the day-by-day and draw-by-draw definitions did:
the in-hospital audit rule over day ranges, the synthetic draws, and the batch's output tables."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from yibao.ltc.audit import _inside_a_stay, audit_month
from yibao.ltc.batch import tables
from yibao.ltc.settle import CarePerson, CareRecord, LevelSpan, settle_month
from yibao.ltc.synth import INJECT_CDF, INJECTS, MODE_CDF, MODES, _choose
from yibao.money import fen_to_yuan
from yibao.policy.loader import resolve_pack

LTC = resolve_pack("shandong-2024").ltc
DAY0 = date(2024, 3, 1)


def day_by_day(r: CareRecord, stays) -> bool:
    """The rule as first written: some day of the record strictly between admission and discharge."""
    days = (r.srv_date + timedelta(days=k) for k in range(r.days))
    return any(begin < d < end for d in days for begin, end in stays)


records = st.builds(lambda start, days: CareRecord("S1", DAY0 + timedelta(days=start), "institution", "care", 100, days),
                    st.integers(0, 30), st.integers(0, 31))
stays = st.lists(st.tuples(st.integers(-40, 70), st.integers(0, 40)).map(
    lambda t: (DAY0 + timedelta(days=t[0]), DAY0 + timedelta(days=t[0] + t[1]))), max_size=4)


@settings(max_examples=500, deadline=None)
@given(records, stays)
def test_inside_a_stay_is_the_day_by_day_rule(record, stay_list):
    assert _inside_a_stay(record, stay_list) == day_by_day(record, stay_list)


@settings(max_examples=200, deadline=None)
@given(st.lists(records, min_size=1, max_size=6), stays)
def test_a02_hits_the_records_the_day_by_day_rule_names(recs, stay_list):
    recs = [CareRecord(f"S{i}", r.srv_date, r.mode, r.item_class, r.amount, max(r.days, 1)) for i, r in enumerate(recs)]
    recs = [r for r in recs if r.srv_date + timedelta(days=r.days - 1) <= date(2024, 3, 31)]
    person = CarePerson("P1", "310", (LevelSpan("3", date(2023, 1, 1), date(2025, 1, 1)),), date(2020, 1, 1))
    hits = [h for h in audit_month(LTC, person, "2024-03", recs, {}, stay_list) if h.rule_id == "LTC-A02"]
    named = tuple(sorted(r.srv_id for r in recs if day_by_day(r, stay_list)))
    assert (hits[0].srv_ids if hits else ()) == named


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_choose_is_generator_choice_draw_for_draw(seed):
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    for values, cdf, p in ((MODES, MODE_CDF, [0.3, 0.5, 0.2]), (INJECTS, INJECT_CDF, [0.94, 0.02, 0.02, 0.02])):
        assert [_choose(a, values, cdf) for _ in range(50)] == [str(b.choice(values, p=p)) for _ in range(50)]
    scores = [0, 5, 10, 15]
    assert ([scores[int(a.integers(0, len(scores)))] for _ in range(50)]
            == [int(b.choice(scores)) for _ in range(50)])


def test_output_tables_hold_the_settlements_yuan_exactly():
    person = CarePerson("P1", "310", (LevelSpan("3", date(2023, 1, 1), date(2025, 1, 1)),), date(2020, 1, 1),
                        date(2024, 3, 20))
    recs = [CareRecord("S1", date(2024, 3, 1), "institution", "care", 1_234_567, 10),
            CareRecord("S2", date(2024, 3, 11), "institution", "meals", 33_301, 10),
            CareRecord("S3", date(2024, 3, 25), "institution", "care", 9_999, 1)]
    s = settle_month(LTC, person, "2024-03", recs)
    hits = audit_month(LTC, person, "2024-03", recs, {"S1": "4"}, [(date(2024, 3, 2), date(2024, 3, 6))])
    out = tables([s], hits)
    row = out["ltc_settlements"].to_pylist()[0]
    assert row["ltc_sumamt"] == fen_to_yuan(s.ltc_sumamt) and row["fund_pay"] == fen_to_yuan(s.fund_pay)
    assert row["psn_pay"] == fen_to_yuan(s.psn_pay) and s.ltc_sumamt == 1_234_567 + 33_301 + 9_999
    assert out["ltc_lines"].column("pay").to_pylist() == [fen_to_yuan(ln.pay) for ln in s.lines]
    assert out["ltc_excluded"].column("amount").to_pylist() == [fen_to_yuan(a) for _, _, a in s.excluded]
    assert out["ltc_hits"].to_pylist() == [
        {"rule_id": h.rule_id, "rule_name": h.rule_name, "psn_no": h.psn_no, "month": h.month, "srv_ids": list(h.srv_ids),
         "amount": fen_to_yuan(h.amount), "reason": h.reason} for h in hits]
    assert {h.rule_id for h in hits} == {"LTC-A02", "LTC-A03", "LTC-A04"}
    assert out["ltc_settlements"].schema.field("fund_pay").type == pa.decimal128(16, 2)
