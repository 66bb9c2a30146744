"""A server killed in the middle of a settlement leaves nothing of it behind.

The service is started as a real process (uvicorn with the same app factory ``yibao serve``
uses). ``YIBAO_FAULT=settle:after_settlement`` makes it ``os._exit`` after the settlement and
its detail rows have been written inside the transaction, before the ledger and balance rows.
After the crash the store must hold no settlement, no ledger row, no idempotency record and
the visit must still be unsettled; a restarted server then settles the same msgid once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.service import sample
from yibao.service.auth import key_hash
from yibao.store.database import make_engine
from yibao.store.models import AccumulatorLedger, IdempotencyRecord, Settlement, SettlementDetail, Visit
from yibao.store.throwaway import free_port

KEY = "crash-test-key"
PATH = "/fsi/api/rsfComIfsService/callService"
SETTLE_KEY = f"fsi:{sample.HOSPITAL}:m-settle"  # institution + msgid


def start(url: str, port: int, fault: str | None) -> subprocess.Popen:
    env = {**os.environ, "YIBAO_DATABASE_URL": url, "YIBAO_PACKS": "shandong-2024",
           "YIBAO_API_KEYS": f"his1:institution:{sample.HOSPITAL}=sha256:{key_hash(KEY)}"}
    env.pop("YIBAO_FAULT", None)
    if fault:
        env["YIBAO_FAULT"] = fault
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "yibao.service.app:create_app",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def call(port: int, infno: str, inp: dict, msgid: str) -> dict:
    env = {"infno": infno, "msgid": msgid, "mdtrtarea_admvs": "370102", "insuplc_admdvs": "370102",
           "recer_sys_code": "YBXT", "opter": "op", "fixmedins_code": sample.HOSPITAL,
           "inf_time": "2024-05-06 10:00:00", "input": inp}
    return httpx.post(f"http://127.0.0.1:{port}{PATH}", json=env, headers={"X-API-Key": KEY}, timeout=30).json()


@pytest.mark.slow
def test_crash_mid_settlement_leaves_no_partial_settlement(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    port = free_port()
    server = start(store_url, port, "settle:after_settlement")
    try:
        reg = call(port, "2201", {"data": {"psn_no": "P000000001", "insutype": "390",
                                           "begntime": "2024-05-06 09:00:00"}}, "m-reg")
        mdtrt_id = reg["output"]["data"]["mdtrt_id"]
        lines = [dict(x, mdtrt_id=mdtrt_id) for x in sample.items(30)]
        assert call(port, "2204", {"feedetail": lines}, "m-fee")["infcode"] == 0
        try:
            call(port, "2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}}, "m-settle")
            raise AssertionError("the server should have died mid-request")
        except httpx.TransportError:
            pass
        assert server.wait(timeout=10) == 70
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    def count(model) -> int:
        with Session(engine) as s:
            return s.scalar(select(func.count()).select_from(model)) or 0

    assert count(Settlement) == count(SettlementDetail) == count(AccumulatorLedger) == 0
    with Session(engine) as s:
        assert s.get(Visit, mdtrt_id).status == "registered"
        assert s.get(IdempotencyRecord, SETTLE_KEY) is None

    server = start(store_url, port, None)
    try:
        answer = call(port, "2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}}, "m-settle")
        assert answer["infcode"] == 0, answer["err_msg"]
        assert call(port, "2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}}, "m-settle") == answer
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert count(Settlement) == 1 and count(AccumulatorLedger) == 1
    with Session(engine) as s:
        assert s.get(IdempotencyRecord, SETTLE_KEY) is not None
    engine.dispose()
