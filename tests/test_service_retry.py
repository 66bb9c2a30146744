"""A HIS retrying after a timeout: sixteen identical copies of one 2207 envelope at once.

Every copy must get the first answer byte for byte (one settlement, one ledger row). A copy that
queued on the balance/visit row locks behind the first must not fail with ``SET050 已结算``: the
stored-answer lookup is repeated once the locks are held (``desk.recheck``). Run with real threads on
SQLite and on a real PostgreSQL, through the platform face's own handler.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.service import platform, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.store.database import make_engine
from yibao.store.models import AccumulatorLedger, IdempotencyRecord, Settlement

COPIES = 16
HIS = Principal("his1", "institution", sample.HOSPITAL)


def envelope(infno: str, data: dict, msgid: str) -> bytes:
    return json.dumps({"infno": infno, "msgid": msgid, "mdtrtarea_admvs": "370102", "insuplc_admdvs": "370102",
                       "recer_sys_code": "YBXT", "opter": "op1", "fixmedins_code": sample.HOSPITAL,
                       "inf_time": "2024-06-01 10:00:00", "input": data}).encode()


def call(desk: Desk, body: bytes, who: Principal = HIS) -> dict:
    text, _ = platform._handle(desk, who, body)
    return json.loads(text)


def together(n: int, fn) -> list:
    """``fn(k)`` on ``n`` threads released at once by a barrier; the results in order."""
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(k: int) -> None:
        barrier.wait()
        try:
            out[k] = fn(k)
        except BaseException as exc:  # noqa: BLE001 - compared below
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def visit_with_items(desk: Desk, psn_no: str = "P000000001", at: datetime = datetime(2024, 6, 1, 9, 0)) -> str:
    ctx = tx.Context("setup", "op", at)
    lines = [FeeItemIn.model_validate(x) for x in sample.items(30)]

    def make(session):
        v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no,
                              insutype="390" if int(psn_no[1:]) % 2 else "310", med_type="21", begntime=at)
        tx.upload_items(session, HIS, ctx, desk.packs, mdtrt_id=v["mdtrt_id"], items=lines)
        return v["mdtrt_id"]
    return desk.read(make)


def test_sixteen_copies_of_one_settlement_all_get_the_first_answer(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    desk = Desk(make_engine(store_url, pool_size=COPIES, max_overflow=4), PackSet.load(["shandong-2024"]))
    mdtrt_id = visit_with_items(desk)
    body = envelope("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}}, "H3701020000120240601000001")
    answers = together(COPIES, lambda _k: platform._handle(desk, HIS, body)[0])

    assert all(isinstance(a, str) for a in answers), answers
    decoded = [json.loads(a) for a in answers]
    assert [d["infcode"] for d in decoded] == [0] * COPIES, {d["err_msg"] for d in decoded}
    assert len(set(answers)) == 1  # byte for byte the first answer
    # (475.00 − 200.00 deductible) × 85% at a 基层 hospital, inpatient
    assert decoded[0]["output"]["setlinfo"]["hifp_pay"] == 233.75
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Settlement)) == 1
        assert s.scalar(select(func.count()).select_from(AccumulatorLedger)) == 1
        assert s.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1
    desk.engine.dispose()
    engine.dispose()


def test_sixteen_copies_of_an_upload_and_of_a_reversal_all_get_the_first_answer(store_url):
    """The other writes that lock rows (2204: the visit; 2208: the balance) recheck the stored answer too."""
    from yibao.store.models import FeeItem

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    desk = Desk(make_engine(store_url, pool_size=COPIES, max_overflow=4), PackSet.load(["shandong-2024"]))
    ctx = tx.Context("setup", "op", datetime(2024, 6, 1, 9, 0))
    mdtrt_id = desk.read(lambda s: tx.register_visit(s, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no="P000000001",
                                                     insutype="390", med_type="11",
                                                     begntime=datetime(2024, 6, 1, 9, 0))["mdtrt_id"])
    lines = [dict(x, mdtrt_id=mdtrt_id, psn_no="P000000001") for x in sample.items(30)]
    upload = envelope("2204", {"feedetail": lines}, "H3701020000120240601000002")
    answers = together(COPIES, lambda _k: platform._handle(desk, HIS, upload)[0])
    assert len(set(answers)) == 1 and json.loads(answers[0])["infcode"] == 0, {json.loads(a)["err_msg"] for a in answers}

    settled = call(desk, envelope("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}}, "settle-1"))
    setl_id = settled["output"]["setlinfo"]["setl_id"]
    reverse = envelope("2208", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id, "setl_id": setl_id}}, "rev-1")
    answers = together(COPIES, lambda _k: platform._handle(desk, HIS, reverse)[0])
    assert len(set(answers)) == 1 and json.loads(answers[0])["infcode"] == 0, {json.loads(a)["err_msg"] for a in answers}
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(FeeItem)) == 30
        assert s.scalar(select(func.count()).select_from(AccumulatorLedger)) == 2  # +delta, −delta
        assert s.scalar(select(func.count()).select_from(IdempotencyRecord)) == 3
    desk.engine.dispose()
    engine.dispose()


def test_a_retry_after_key_rotation_gets_the_first_answer(store_url):
    """The idempotency key is institution + msgid (REST: institution + Idempotency-Key), not the API key's name."""
    from fastapi.testclient import TestClient

    from yibao.service.app import create_app
    from yibao.service.auth import KeyRing, key_hash
    from yibao.store.models import Visit

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    ring = KeyRing([(key_hash("old"), Principal("his1-2023", "institution", sample.HOSPITAL)),
                    (key_hash("new"), Principal("his1-2024", "institution", sample.HOSPITAL)),
                    (key_hash("other"), Principal("his2", "institution", sample.OTHER_HOSPITAL))])
    app = create_app(store_url, keys=ring)
    body = envelope("2201", {"data": {"psn_no": "P000000001", "insutype": "390", "begntime": "2024-06-01 09:00:00",
                                      "med_type": "11"}}, "H3701020000120240601000009")
    rest_body = {"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001", "insutype": "390",
                 "begntime": "2024-06-01T09:00:00"}
    with TestClient(app) as client:
        def post(key: str) -> dict:
            return client.post(platform.PATH, content=body, headers={"Authorization": f"Bearer {key}"}).json()

        def rest(key: str):
            return client.post("/api/v1/visits", json=rest_body, headers={"Authorization": f"Bearer {key}",
                                                                         "Idempotency-Key": "visit-1"})

        first = post("old")
        assert first["infcode"] == 0
        again = post("new")
        assert again == first  # the stored answer, byte for byte (inf_refmsgid included)
        stolen = post("other")  # another institution may not replay it
        assert stolen["err_msg"].startswith("[AUT004] fixmedins_code: 机构 H37010200002 只能办理本机构业务")
        r1, r2 = rest("old"), rest("new")
        assert r1.status_code == r2.status_code == 201 and r1.text == r2.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Visit)) == 2  # one per face
    app.state.desk.engine.dispose()
    engine.dispose()


def test_long_idempotency_keys_and_principal_names_fit_the_store(store_url, monkeypatch):
    """scope_key is 200 characters wide: a long Idempotency-Key with the longest principal name is stored
    as a digest, never a 500 (PostgreSQL enforces the width; SQLite does not); a longer name is refused when
    the keys are loaded."""
    from fastapi.testclient import TestClient

    from yibao.service.app import create_app
    from yibao.service.auth import KeyRing, key_hash

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    ring = KeyRing([(key_hash("k"), Principal("clerk-" + "x" * 34, "clerk"))])  # 40: the longest name allowed
    app = create_app(store_url, keys=ring)
    body = {"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001", "insutype": "390",
            "begntime": "2024-06-01T09:00:00"}
    with TestClient(app) as client:
        def post(key: str):
            return client.post("/api/v1/visits", json=body, headers={"Authorization": "Bearer k", "Idempotency-Key": key})
        first, again = post("i" * 100), post("i" * 100)
        assert first.status_code == again.status_code == 201 and first.text == again.text
        assert post("i" * 101).status_code == 422
    app.state.desk.engine.dispose()
    engine.dispose()
    import pytest

    from yibao.service.errors import ServiceError

    for spec, code in (("x" * 41 + ":clerk=k", "AUT015"), ("a\u202eb:clerk=k", "AUT015"),
                       (f"his:institution:{'H' * 41}=k", "AUT016"), ("his:institution:H<1>=k", "AUT016")):
        monkeypatch.setenv("YIBAO_API_KEYS", spec)
        with pytest.raises(ServiceError) as refused:
            KeyRing.from_env()
        assert refused.value.problems[0].code == code
