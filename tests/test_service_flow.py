"""The platform flow 2201 → 2204 → 2206 → 2207 → 2208 → 2207 on SQLite and PostgreSQL, with
idempotency by msgid, latest-first reversal and the platform's errors.

Hand-computed amounts (pack shandong-2024, resident 390, 普通门诊 11 at a 基层 level-1 hospital:
no deductible, 60%, annual cap 400.00): 30 lines of 2 × 12.50 = 750.00, every third line 丙类
→ 全自费 10 × 25.00 = 250.00; 乙类 10 × 25.00 with 10% 先行自付 = 25.00; in scope 475.00;
统筹 475.00 × 60% = 285.00; the year's second such visit is capped at 400.00 − 285.00 = 115.00.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.service import ledger, sample
from yibao.service.app import create_app
from yibao.store.database import make_engine
from yibao.store.models import AccumulatorBalance, AccumulatorLedger, AuditLog, IdempotencyRecord, Settlement

PATH = "/fsi/api/rsfComIfsService/callService"


class Platform:
    """A HIS talking to the platform endpoint."""

    def __init__(self, client: TestClient, key: str, fixmedins_code: str = sample.HOSPITAL):
        self.client, self.key, self.code, self.n = client, key, fixmedins_code, 0

    def envelope(self, infno: str, inp: dict, msgid: str | None = None, inf_time: str = "2024-03-05 10:00:00") -> dict:
        self.n += 1
        return {"infno": infno, "msgid": msgid or f"{self.code}20240305{self.n:06d}", "mdtrtarea_admvs": "370102",
                "insuplc_admdvs": "370102", "recer_sys_code": "YBXT", "opter": "op1", "fixmedins_code": self.code,
                "inf_time": inf_time, "input": inp}

    def raw(self, infno: str, inp: dict, **kw) -> str:
        r = self.client.post(PATH, json=self.envelope(infno, inp, **kw), headers={"Authorization": f"Bearer {self.key}"})
        assert r.status_code == 200
        return r.text

    def __call__(self, infno: str, inp: dict, **kw) -> dict:
        return json.loads(self.raw(infno, inp, **kw), parse_float=Decimal)

    def ok(self, infno: str, inp: dict, **kw) -> dict:
        answer = self(infno, inp, **kw)
        assert answer["infcode"] == 0, answer["err_msg"]
        return answer["output"]

    def visit(self, psn_no: str = "P000000001", n_items: int = 30, med_type: str = "11", **kw) -> str:
        mdtrt_id = self.ok("2201", {"data": {"psn_no": psn_no, "insutype": "390" if int(psn_no[1:]) % 2 else "310",
                                             "begntime": "2024-03-05 09:00:00", "med_type": med_type}},
                           **kw)["data"]["mdtrt_id"]
        lines = [dict(x, mdtrt_id=mdtrt_id, psn_no=psn_no) for x in sample.items(n_items)]
        self.ok("2204", {"feedetail": lines}, **kw)
        return mdtrt_id


@pytest.fixture
def world(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 6)
    keys = sample.make_keys()
    app = create_app(store_url, keys=keys.ring)
    with TestClient(app) as client:
        yield client, keys, engine
    app.state.desk.engine.dispose()
    engine.dispose()


def counts(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (Settlement, AccumulatorLedger, AccumulatorBalance, IdempotencyRecord, AuditLog)}


def test_full_flow_settle_reverse_settle_again(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    person = his.ok("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": sample.certno(3)}})
    assert person["baseinfo"]["psn_no"] == "P000000003"
    mdtrt_id = his.visit("P000000003")
    before = counts(engine)
    pre = his.ok("2206", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id, "medfee_sumamt": "750.00"}})
    assert counts(engine) == before  # pre-settle writes nothing
    info = pre["setlinfo"]
    assert (info["medfee_sumamt"], info["fulamt_ownpay_amt"], info["preselfpay_amt"], info["inscp_scp_amt"]) == (
        Decimal("750.00"), Decimal("250.00"), Decimal("25.00"), Decimal("475.00"))
    assert info["hifp_pay"] == Decimal("285.00") and info["psn_cash_pay"] == Decimal("465.00")

    first = his.ok("2207", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id, "medfee_sumamt": "750.00"}})
    assert {k: v for k, v in first["setlinfo"].items() if k not in ("setl_id", "balc")} == \
        {k: v for k, v in info.items() if k not in ("setl_id", "balc")}
    setl_id = first["setlinfo"]["setl_id"]
    rev = his.ok("2208", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id, "setl_id": setl_id}})
    assert rev["setlinfo"]["hifp_pay"] == Decimal("-285.00") and rev["setlinfo"]["refd_setl_id"] == setl_id
    again = his("2208", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id, "setl_id": setl_id}})
    assert again["infcode"] == -1 and "REV004" in again["err_msg"] and "不能重复撤销" in again["err_msg"]
    with Session(engine) as s:
        assert ledger.ledger_sum(s, "P000000003", 2024) == {}  # restored exactly
        assert s.get(AccumulatorBalance, ("P000000003", 2024)).acc_values == {}
    second = his.ok("2207", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id}})
    assert second["setlinfo"]["hifp_pay"] == Decimal("285.00") and second["setlinfo"]["setl_id"] != setl_id
    with Session(engine) as s:
        bal = s.get(AccumulatorBalance, ("P000000003", 2024))
        assert ledger.ledger_sum(s, "P000000003", 2024) == bal.acc_values
        assert bal.acc_values["setl:count"] == 1 and bal.entries == 3
        actions = [a for (a,) in s.execute(select(AuditLog.action).order_by(AuditLog.id))]
    assert actions == ["register", "upload", "settle", "reverse", "settle"]
    totals = his.ok("3201", {"data": {"stmt_begndate": "2024-03-01", "stmt_enddate": "2024-03-31",
                                      "medfee_sumamt": "750.00", "fund_pay_sumamt": "285.00", "acct_pay": "0.00",
                                      "fixmedins_setl_cnt": 1}})
    assert totals["stmtinfo"]["stmt_rslt"] == "0"
    off = his.ok("3201", {"data": {"stmt_begndate": "2024-03-01", "stmt_enddate": "2024-03-31",
                                   "medfee_sumamt": "750.00", "fund_pay_sumamt": "285.01", "acct_pay": "0.00",
                                   "fixmedins_setl_cnt": 1}})
    assert off["stmtinfo"]["stmt_rslt"] == "1" and "fund_pay_sumamt" in off["stmtinfo"]["stmt_rslt_dscr"]


def test_same_msgid_replays_and_a_different_request_is_refused(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = his.visit("P000000001")
    data = {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id, "medfee_sumamt": "750.00"}}
    first = his.raw("2207", data, msgid="H3701020000120240305SETTLE01")
    after_first = counts(engine)
    replay = his.raw("2207", data, msgid="H3701020000120240305SETTLE01")
    assert replay == first and counts(engine) == after_first
    other = his("2207", {"data": {**data["data"], "acct_used_flag": "1"}}, msgid="H3701020000120240305SETTLE01")
    assert other["infcode"] == -1 and "IDM001" in other["err_msg"]
    assert counts(engine) == after_first
    # a failed request stores nothing: corrected and resent under the same msgid it goes through
    bad = his("2201", {"data": {"psn_no": "P000000001", "insutype": "310", "begntime": "2024-03-05 09:00:00"}},
              msgid="M-RETRY")
    assert bad["infcode"] == -1 and "REG021" in bad["err_msg"]
    good = his("2201", {"data": {"psn_no": "P000000001", "insutype": "390", "begntime": "2024-03-05 09:00:00"}},
               msgid="M-RETRY")
    assert good["infcode"] == 0


def test_reversal_is_latest_first_and_caps_carry_over(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    ids = [his.visit("P000000001") for _ in range(2)]
    s1 = his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": ids[0]}})["setlinfo"]
    s2 = his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": ids[1]}})["setlinfo"]
    assert (s1["hifp_pay"], s2["hifp_pay"]) == (Decimal("285.00"), Decimal("115.00"))  # annual cap 400
    early = his("2208", {"data": {"psn_no": "P000000001", "mdtrt_id": ids[0], "setl_id": s1["setl_id"]}})
    assert early["infcode"] == -1 and "SET040" in early["err_msg"]
    his.ok("2208", {"data": {"psn_no": "P000000001", "mdtrt_id": ids[1], "setl_id": s2["setl_id"]}})
    his.ok("2208", {"data": {"psn_no": "P000000001", "mdtrt_id": ids[0], "setl_id": s1["setl_id"]}})
    again = his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": ids[1]}})["setlinfo"]
    assert again["hifp_pay"] == Decimal("285.00")  # the year starts over once both are reversed


def test_personal_account_is_drawn_and_restored(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = his.visit("P000000002")  # employee with 2,000.00 in the personal account
    out = his.ok("2207", {"data": {"psn_no": "P000000002", "mdtrt_id": mdtrt_id, "acct_used_flag": "1"}})["setlinfo"]
    assert out["acct_pay"] > 0 and out["balc"] == Decimal("2000.00") - out["acct_pay"]
    assert out["acct_pay"] + out["psn_cash_pay"] == out["psn_part_amt"]
    rev = his.ok("2208", {"data": {"psn_no": "P000000002", "mdtrt_id": mdtrt_id, "setl_id": out["setl_id"]}})
    assert rev["setlinfo"]["balc"] == Decimal("2000.00")


@pytest.mark.parametrize("infno, inp, code, field", [
    ("9999", {}, "FSI003", "infno"),
    ("2201", {"data": {"psn_no": "P404", "insutype": "390", "begntime": "2024-03-05 09:00:00"}}, "REG010", "psn_no"),
    ("2201", {"data": {"psn_no": "P000000001", "insutype": "390"}}, "FSI020", "input.data.begntime"),
    ("2201", {"data": {"psn_no": "P000000001", "insutype": "390", "begntime": "2025-03-05 09:00:00"}},
     "REG020", "insutype"),
    ("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": "M404"}}, "VIS001", "mdtrt_id"),
    ("2204", {"feedetail": [{"feedetl_sn": "1", "mdtrt_id": "M1", "med_list_codg": "X", "det_item_fee_sumamt": "1.001"}]},
     "FSI020", "input.feedetail[0].det_item_fee_sumamt"),
    ("3201", {"data": {"stmt_begndate": "2024-03-31", "stmt_enddate": "2024-03-01", "medfee_sumamt": 0,
                       "fund_pay_sumamt": 0, "acct_pay": 0, "fixmedins_setl_cnt": 0}}, "TOT001", "stmt_enddate"),
])
def test_bad_requests_get_infcode_and_field(world, infno, inp, code, field):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    before = counts(engine)
    answer = his(infno, inp)
    assert answer["infcode"] == -1 and code in answer["err_msg"] and field in answer["err_msg"], answer["err_msg"]
    assert counts(engine) == before


def test_settlement_preconditions(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    bare = his.ok("2201", {"data": {"psn_no": "P000000001", "insutype": "390", "begntime": "2024-03-05 09:00:00"}})
    empty = his("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": bare["data"]["mdtrt_id"]}})
    assert empty["infcode"] == -1 and "SET051" in empty["err_msg"]  # items not uploaded
    mdtrt_id = his.visit("P000000001")
    wrong = his("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id, "medfee_sumamt": "749.99"}})
    assert wrong["infcode"] == -1 and "medfee_sumamt" in wrong["err_msg"] and "750.00" in wrong["err_msg"]
    other_person = his("2207", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id}})
    assert other_person["infcode"] == -1 and "VIS002" in other_person["err_msg"]
    late = his("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}}, inf_time="2025-01-02 10:00:00")
    assert late["infcode"] == -1 and "REG020" in late["err_msg"]  # enrollment ended 2024-12-31
    garbage = client.post(PATH, content=b"{not json", headers={"Authorization": f"Bearer {keys.keys['his1']}"})
    assert garbage.status_code == 200 and garbage.json()["infcode"] == -1
    no_key = client.post(PATH, json=his.envelope("1101", {}))
    assert no_key.json()["infcode"] == -1 and "AUT001" in no_key.json()["err_msg"]


def test_inpatient_flow_with_the_23xx_transactions(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    adm = his.ok("2401", {"mdtrtinfo": {"psn_no": "P000000003", "insutype": "390", "begntime": "2024-03-01 08:00:00",
                                        "ipt_no": "ZY001"},
                          "diseinfo": [{"diag_code": "J18.900", "maindiag_flag": "1"}]})["result"]
    assert adm["ipt_no"] == "ZY001"
    mdtrt_id = adm["mdtrt_id"]
    lines = [dict(x, mdtrt_id=mdtrt_id) for x in sample.items(30)]
    his.ok("2301", {"feedetail": lines})
    pre = his.ok("2303", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id}})["setlinfo"]
    # 居民普通住院, 基层: deductible 200.00, 85% → (475.00 − 200.00) × 85% = 233.75
    assert (pre["med_type"], pre["act_pay_dedc"], pre["hifp_pay"]) == ("21", Decimal("200.00"), Decimal("233.75"))
    done = his.ok("2304", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id}})["setlinfo"]
    assert done["hifp_pay"] == pre["hifp_pay"]
    rev = his.ok("2305", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id, "setl_id": done["setl_id"]}})
    assert rev["setlinfo"]["medfee_sumamt"] == Decimal("-750.00")


def test_blocking_audit_hit_refuses_settlement_and_warnings_are_returned(world, monkeypatch):
    """The supervision call site: blocking hits refuse 2207 (nothing written), 2206 reports them."""
    from types import SimpleNamespace

    from yibao.service import precheck
    from yibao.supervision import online

    seen = {}

    def fake(values, current, *, stage, ruleset):
        cols = online.value_columns()
        visit = dict(zip(cols["visits"], values["visits"][0]))
        seen.update(stage=stage, current=current == visit["mdtrt_id"], items=len(values["fee_items"]),
                    medfee=visit["medfee_sumamt"], psn_no=dict(zip(cols["persons"], values["persons"][0]))["psn_no"])
        hit = {"rule_id": "R-TEST", "rule_name": "测试规则", "severity": "high", "message": "第 1 条明细超量",
               "amount": "25.00", "feedetl_sns": ["F000001"]}
        return SimpleNamespace(to_dict=lambda: {"warnings": [], "blocking": [hit]})

    real = {name: getattr(online, name) for name in ("value_columns", "amount_value", "count_value", "time_value")}
    monkeypatch.setattr(precheck, "_online", lambda: SimpleNamespace(precheck_values=fake, **real,
                                                                     history_codes=lambda *_: frozenset()))
    monkeypatch.setattr(precheck, "_ruleset", lambda: None)
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = his.visit("P000000001")
    pre = his.ok("2206", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})
    assert seen == {"stage": "pre", "current": True, "items": 30, "medfee": 750.0, "psn_no": "P000000001"}
    assert pre["blocking"][0]["rule_id"] == "R-TEST"
    before = counts(engine)
    refused = his("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})
    assert refused["infcode"] == -1 and "SUP001" in refused["err_msg"] and "R-TEST" in refused["err_msg"]
    assert seen["stage"] == "during" and counts(engine) == before


def test_another_institution_cannot_replay_or_settle_a_visit(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = his.visit("P000000001")
    data = {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}}
    his.ok("2207", data, msgid="SHARED-MSGID")
    intruder = Platform(client, keys.keys["his2"])  # his2's key, claiming his1's fixmedins_code and msgid
    answer = intruder("2207", data, msgid="SHARED-MSGID")
    assert answer["infcode"] == -1 and "AUT004" in answer["err_msg"] and "setlinfo" not in answer["output"]
    own = Platform(client, keys.keys["his2"], sample.OTHER_HOSPITAL)("2207", data)
    assert own["infcode"] == -1 and "AUT004" in own["err_msg"]
