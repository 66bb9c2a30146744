"""Hostile but well-formed-looking input at the service's door: refused with a code, nothing written,
never an HTTP 500 (the platform endpoint promises HTTP 200 with an infcode).

Each test here failed before its fix: quantities finer than the store holds, identifiers carrying NUL /
RTL-override / zero-width characters / markup, lone surrogates, JSON nested 100k deep, amounts whose
sums overflow 64 bits, implausible visits and declared totals, an unknown psn_no.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.errors import RequestError
from yibao.service import sample
from yibao.settlement.request import parse_request
from yibao.store.models import AuditLog, FeeItem, IdempotencyRecord, Settlement, Visit

from test_service_flow import PATH, Platform, world  # noqa: F401  (fixture)

IMPLANT = "SD-EX-M001"  # shandong-2024: 乙类植入耗材, price cap 3000.00, 先行自付 20%


def written(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (Visit, FeeItem, Settlement, IdempotencyRecord, AuditLog)}


def register(his: Platform, psn_no: str = "P000000001", med_type: str = "21") -> str:
    return his.ok("2201", {"data": {"psn_no": psn_no, "insutype": "390", "begntime": "2024-03-05 09:00:00",
                                    "med_type": med_type}})["data"]["mdtrt_id"]


def implant(mdtrt_id: str, cnt: str, amount: str) -> dict:
    return {"feedetl_sn": "F1", "med_list_codg": IMPLANT, "chrgitm_lv": "02", "pric": "4000.00", "cnt": cnt,
            "det_item_fee_sumamt": amount, "mdtrt_id": mdtrt_id, "psn_no": "P000000001"}


# --- stored amounts are exactly what was settled -------------------------------------------------


def test_a_quantity_finer_than_the_store_holds_is_refused_at_upload(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = register(his)
    before = written(engine)
    # 4000.00 × 1.00005 = 4000.20; stored as cnt 1.0001 it would have settled 1000.10 over the cap, not 1000.05
    answer = his("2204", {"feedetail": [implant(mdtrt_id, "1.00005", "4000.20")]})
    assert answer["infcode"] == -1
    assert "[FSI020] input.feedetail[0].cnt: 数量 cnt 最多 4 位小数, 实际为 1.00005" in answer["err_msg"]
    assert written(engine) == before
    with pytest.raises(RequestError) as refused:  # yibao settle refuses it alike
        parse_request({"person": {"psn_no": "P1", "insutype": "390"},
                       "visit": {"mdtrt_id": "M1", "med_type": "21", "level": "1", "setl_time": "2024-03-05",
                                 "items": [{k: v for k, v in implant("M1", "1.00005", "4000.20").items()
                                            if k not in ("mdtrt_id", "psn_no")}]}})
    assert refused.value.problems[0].code == "REQ010" and "cnt" in refused.value.problems[0].path


def test_four_decimals_settle_exactly_as_classified_at_upload(world):
    client, keys, _ = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = register(his)
    # 4000.00 × 1.0001 = 4000.40; over the cap (4000.00 − 3000.00) × 1.0001 = 1000.10
    line = his.ok("2204", {"feedetail": [implant(mdtrt_id, "1.0001", "4000.40")]})["result"][0]
    assert line["overlmt_amt"] == Decimal("1000.10")
    pre = his.ok("2206", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})["setlinfo"]
    done = his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})["setlinfo"]
    assert pre["overlmt_selfpay"] == done["overlmt_selfpay"] == Decimal("1000.10")
    assert pre["hifp_pay"] == done["hifp_pay"]


# --- never an HTTP 500 on the platform face ------------------------------------------------------


def post_raw(client, key: str | None, body: bytes | str, **headers) -> dict:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    r = client.post(PATH, content=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_json_nested_100k_deep_is_a_coded_answer(world):
    client, keys, engine = world
    before = written(engine)
    answer = post_raw(client, keys.keys["his1"], "[" * 100_000 + "]" * 100_000)
    assert answer["infcode"] == -1 and answer["err_msg"].startswith("[FSI005]")
    his = Platform(client, keys.keys["his1"])
    nested: dict = {}
    for _ in range(20):  # parses, but deeper than any envelope
        nested = {"x": nested}
    answer = his("2201", {"data": {"psn_no": "P000000001", "insutype": "390", "begntime": "2024-03-05 09:00:00"},
                          "extra": nested})
    assert answer["infcode"] == -1 and answer["err_msg"].startswith("[FSI005] input.extra.x.x.x")
    assert written(engine) == before


@pytest.mark.parametrize("field, value, code", [
    ("feedetl_sn", "F\ud800", "FSI004"),  # a lone surrogate: not a character, cannot be encoded
    ("feedetl_sn", "F\x001", "FSI004"),  # NUL: PostgreSQL text refuses it
    ("med_list_codg", "X\x00", "FSI004"),
    ("med_list_codg", "SD-EX-D001\u202e", "FSI004"),  # RTL override
    ("feedetl_sn", "F\u200b1", "FSI004"),  # zero-width space
    ("med_list_codg", "<script>", "FSI020"),  # markup: outside the identifier characters
    ("feedetl_sn", "F 1", "FSI020"),
    ("med_list_codg", "ＳＤ-EX-D001", "FSI020"),  # full-width look-alikes
])
def test_hostile_characters_in_a_fee_line_are_refused_and_nothing_written(world, field, value, code):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = register(his)
    before = written(engine)
    line = dict(sample.items(1)[0], mdtrt_id=mdtrt_id, psn_no="P000000001", **{field: value})
    answer = post_raw(client, keys.keys["his1"], json.dumps(his.envelope("2204", {"feedetail": [line]})))
    assert answer["infcode"] == -1
    assert answer["err_msg"].startswith(f"[{code}] input.feedetail[0].{field}: 第 ")
    assert "不允许" in answer["err_msg"]
    assert written(engine) == before


@pytest.mark.parametrize("where", ["msgid", "fixmedins_code", "opter", "certno", "opter_name"])
def test_nul_rtl_and_zero_width_in_the_envelope_or_a_certno_lookup(world, where):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    before = written(engine)
    for bad in ("\x00", "\u202e", "\u2060", "\ufeff"):
        env = his.envelope("1101", {"data": {"certno": sample.certno(1)}})
        if where == "certno":
            env["input"]["data"]["certno"] = sample.certno(1)[:9] + bad + sample.certno(1)[9:]
        else:
            env[where] = env.get(where, "x") + bad
        answer = post_raw(client, keys.keys["his1"], json.dumps(env))
        assert answer["infcode"] == -1 and answer["err_msg"].startswith("[FSI004] "), answer["err_msg"]
    # markup in an identifier: the allowed-character rule
    env = his.envelope("2201", {"data": {"psn_no": "P000000001", "insutype": "390", "begntime": "2024-03-05 09:00:00"}},
                       msgid="<b>1</b>")
    answer = post_raw(client, keys.keys["his1"], json.dumps(env))
    assert answer["err_msg"].startswith("[FSI002] msgid: 第 1 个字符 U+003C 不允许: 编码只能由字母")
    assert written(engine) == before


def test_amounts_that_would_overflow_64_bits_are_refused_at_upload(world):
    """5,000 lines at 9,999,999,999,999.99 (4.99×10¹⁶ yuan: past 2⁶³ fen once summed with the fund's parts)."""
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = register(his)
    before = written(engine)
    lines = [{"feedetl_sn": f"F{k}", "med_list_codg": "X1", "chrgitm_lv": "01", "det_item_fee_sumamt": "9999999999999.99",
              "mdtrt_id": mdtrt_id, "psn_no": "P000000001"} for k in range(5000)]
    answer = his("2204", {"feedetail": lines})
    assert answer["infcode"] == -1
    assert answer["err_msg"].startswith("[LIM001] input.feedetail[0].det_item_fee_sumamt: 明细金额 9999999999999.99 "
                                        "超过单条上限 1000000.00 元")
    assert answer["err_msg"].count("LIM001") == 5000
    assert written(engine) == before
    pre = his("2206", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})
    assert pre["err_msg"].startswith("[SET051]")  # nothing was stored to settle


# --- identifiers, unknown persons, declared totals -----------------------------------------------


def test_settling_for_an_unknown_psn_no_says_not_found(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    before = written(engine)
    answer = his("2207", {"data": {"psn_no": "P404", "mdtrt_id": "M404"}})
    assert answer["err_msg"] == "[REG010] psn_no: 人员编号 P404 不存在"
    assert written(engine) == before


def test_absurd_declared_totals_are_refused(world):
    client, keys, _ = world
    his = Platform(client, keys.keys["his1"])
    answer = his("3201", {"data": {"stmt_begndate": "2024-01-01", "stmt_enddate": "2024-12-31", "medfee_sumamt": "1e30",
                                   "fund_pay_sumamt": "0", "acct_pay": "0", "fixmedins_setl_cnt": 10**13}})
    assert answer["infcode"] == -1
    assert "[FSI020] input.data.medfee_sumamt: 金额超出范围(须小于 10 万亿元)" in answer["err_msg"]
    assert "[FSI020] input.data.fixmedins_setl_cnt: 不得大于 1000000000000" in answer["err_msg"]
    as_number = his("3201", {"data": {"stmt_begndate": "2024-01-01", "stmt_enddate": "2024-12-31", "medfee_sumamt": 1e30,
                                      "fund_pay_sumamt": "0", "acct_pay": "0", "fixmedins_setl_cnt": 0}})
    assert as_number["err_msg"].startswith("[FSI007] input.data.medfee_sumamt: 数值 ")


# --- plausibility limits ------------------------------------------------------------------------


@pytest.fixture
def tight(store_url):
    """The service with small limits: a line ≤ 100.00, a visit ≤ 150.00, a person's day ≤ 200.00."""
    from fastapi.testclient import TestClient

    from yibao.service.app import create_app
    from yibao.service.limits import Limits
    from yibao.store.database import make_engine

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    keys = sample.make_keys()
    limits = Limits.model_validate({"max_line_amount": "100.00", "max_price": "50.00", "max_cnt": 10,
                                    "cnt_decimals": 2, "price_decimals": 2, "max_visit_amount": "150.00",
                                    "max_day_amount": "200.00"})
    app = create_app(store_url, keys=keys.ring, limits=limits)
    with TestClient(app) as client:
        yield Platform(client, keys.keys["his1"]), engine
    app.state.desk.engine.dispose()
    engine.dispose()


def line(mdtrt_id: str, sn: str, pric: str, cnt: str, amount: str) -> dict:
    return {"feedetl_sn": sn, "med_list_codg": "X1", "chrgitm_lv": "01", "pric": pric, "cnt": cnt,
            "det_item_fee_sumamt": amount, "mdtrt_id": mdtrt_id, "psn_no": "P000000001"}


def test_limits_per_line_per_visit_and_per_day(tight):
    his, engine = tight
    first = register(his, med_type="11")
    before = written(engine)
    answer = his("2204", {"feedetail": [line(first, "F1", "60.00", "1.005", "60.30"),
                                        line(first, "F2", "10.00", "11", "110.00")]})
    assert answer["err_msg"] == ("[LIM002] input.feedetail[0].pric: 单价 60.00 超过上限 50.00 元; "
                                 "[LIM004] input.feedetail[0].cnt: 数量 1.005 超过 2 位小数; "
                                 "[LIM001] input.feedetail[1].det_item_fee_sumamt: 明细金额 110.00 超过单条上限 100.00 元; "
                                 "[LIM003] input.feedetail[1].cnt: 数量 11 超过单条上限 10")
    assert written(engine) == before
    his.ok("2204", {"feedetail": [line(first, "F1", "50.00", "2", "100.00")]})
    over = his("2204", {"feedetail": [line(first, "F2", "25.50", "2", "51.00")]})  # 100.00 + 51.00 > 150.00
    assert over["err_msg"] == "[LIM010] input.feedetail: 本次就诊医疗费总额 151.00 超过上限 150.00 元"
    his.ok("2204", {"feedetail": [line(first, "F2", "25.00", "2", "50.00")]})  # exactly 150.00
    his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": first}})
    second = register(his, med_type="11")
    his.ok("2204", {"feedetail": [line(second, "F1", "25.50", "2", "51.00")]})
    settled = written(engine)
    refused = his("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": second}})  # 150.00 + 51.00 > 200.00
    assert refused["err_msg"] == ("[LIM011] psn_no: 参保人 2024-03-05 已结算医疗费 150.00 加本次 51.00 "
                                  "超过当日上限 200.00 元")
    assert written(engine) == settled
    pre = his("2206", {"data": {"psn_no": "P000000001", "mdtrt_id": second}})  # pre-settle tells the same
    assert pre["err_msg"] == refused["err_msg"]


def test_the_shipped_limits_file_loads_and_a_bad_one_is_refused(tmp_path):
    from yibao.errors import PolicyError
    from yibao.service.limits import Limits

    shipped = Limits.load()
    assert (shipped.max_visit_amount, shipped.cnt_decimals) == (Decimal("5000000.00"), 4)
    bad = tmp_path / "limits.yaml"
    bad.write_text("max_line_amount: 1e30\nmax_price: 1\nmax_cnt: 1\ncnt_decimals: 5\nprice_decimals: 3\n"
                   "max_visit_amount: 1\nmax_day_amount: 1\n", encoding="utf-8")
    with pytest.raises(PolicyError) as refused:
        Limits.load(bad)
    assert [(p.code, p.path) for p in refused.value.problems] == [
        ("LIM090", "max_line_amount"), ("LIM090", "cnt_decimals"), ("LIM090", "price_decimals")]


# --- the REST face ------------------------------------------------------------------------------


def test_rest_refuses_hostile_identifiers_with_4xx(world):
    client, keys, engine = world
    h = {"Authorization": f"Bearer {keys.keys['clerk']}"}
    before = written(engine)
    for params in ({"psn_no": "P1\x00"}, {"mdtrt_id": "M\u202e1"}, {"fixmedins_code": "<b>"},
                   {"cursor": "2024-01-01T00:00:00|S\x00"}):
        r = client.get("/api/v1/settlements", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["problems"][0]["code"] in ("REQ010", "SET061")
    r = client.post("/api/v1/persons/lookup", json={"certno": sample.certno(1)[:17] + "\x00"}, headers=h)
    assert r.status_code == 422 and r.json()["problems"][0]["path"] == "body.certno"
    visit = client.post("/api/v1/visits", headers=h, json={"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001",
                                                            "insutype": "390", "begntime": "2024-03-05T09:00:00"})
    assert visit.status_code == 201
    mdtrt_id = visit.json()["mdtrt_id"]
    before = written(engine)
    body = json.dumps({"items": [dict(sample.items(1)[0], feedetl_sn="F\ud800")]})  # ASCII-escaped surrogate
    r = client.post(f"/api/v1/visits/{mdtrt_id}/fee-items", content=body,
                    headers={**h, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["problems"][0]["path"] == "body.items[0].feedetl_sn"
    assert r.json()["problems"][0]["message"].startswith("不是合法的 Unicode 文本")
    assert written(engine) == before


# --- the body is bounded, and the platform face checks the key before reading it -----------------


@pytest.fixture
def small_body(store_url):
    from fastapi.testclient import TestClient

    from yibao.service.app import create_app

    keys = sample.make_keys()
    app = create_app(store_url, keys=keys.ring, max_body=64 * 1024)
    with TestClient(app) as client:
        yield client, keys
    app.state.desk.engine.dispose()


def test_no_key_and_a_big_array_is_refused_before_the_body_is_read(small_body):
    client, keys = small_body
    big = b"[" + b"0," * 100_000 + b"0]"  # 200 KB, not an object: parsing it first would say FSI001
    answer = post_raw(client, None, big)
    assert answer["err_msg"].startswith("[AUT001]")
    answer = post_raw(client, "wrong", big)
    assert answer["err_msg"].startswith("[AUT002]")
    answer = post_raw(client, keys.keys["his1"], big)  # a valid key: the bound
    assert answer["err_msg"] == "[FSI006]: 报文超过 65536 字节的上限"

    def chunks():  # no Content-Length: read until past the bound
        for _ in range(10):
            yield b" " * 10_000
    r = client.post(PATH, content=chunks(), headers={"Authorization": f"Bearer {keys.keys['his1']}"})
    assert r.status_code == 200 and r.json()["err_msg"].startswith("[FSI006]")


def test_rest_answers_413_past_the_bound(small_body):
    client, keys = small_body
    h = {"Authorization": f"Bearer {keys.keys['clerk']}", "content-type": "application/json"}
    r = client.post("/api/v1/visits", content=b" " * 70_000, headers=h)
    assert r.status_code == 413
    assert r.json()["problems"] == [{"code": "REQ413", "path": "body",
                                     "message": "请求体超过 65536 字节的上限(YIBAO_MAX_BODY_BYTES)"}]
    r = client.post("/api/v1/visits", content=(b" " * 10_000 for _ in range(10)), headers=h)
    assert r.status_code == 413
    r = client.post("/api/v1/visits", content=b"[" * 30_000 + b"]" * 30_000, headers=h)  # nested: a 400, no 500
    assert r.status_code == 400 and r.json()["problems"][0]["code"] == "HTTP400"


@pytest.mark.parametrize("number", ["1E+9999999", "-1e19", "1e-19", "NaN", "Infinity", "1" + "0" * 19])
def test_numbers_beyond_any_field_are_refused_before_the_models(world, number):
    """``1E+9999999`` in an integer field cost pydantic six seconds of CPU per request (10**9999999)."""
    client, keys, _ = world
    his = Platform(client, keys.keys["his1"])
    env = his.envelope("3201", {"data": {"stmt_begndate": "2024-01-01", "stmt_enddate": "2024-12-31",
                                         "medfee_sumamt": "0", "fund_pay_sumamt": "0", "acct_pay": "0",
                                         "fixmedins_setl_cnt": "N"}})
    answer = post_raw(client, keys.keys["his1"], json.dumps(env).replace('"N"', number))
    assert answer["err_msg"].startswith("[FSI007] input.data.fixmedins_setl_cnt: 数值 ")
