"""Lock-out after failed authentication (per source address and per presented key) and a settlement rate
per institution: ``429`` with ``Retry-After``, on both faces. The clock is injected: the tests count
requests and move time by hand, they never sleep."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.errors import YibaoError
from yibao.service import sample
from yibao.service.app import create_app
from yibao.service.ratelimit import Guard, GuardConfig
from yibao.store.database import make_engine
from yibao.store.models import Settlement

from test_service_flow import PATH, Platform


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def guarded(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 4)
    keys = sample.make_keys()
    clock = Clock()
    guard = Guard(GuardConfig(auth_failures=3, auth_window=60, lockout=300, settle_rate=1, settle_burst=2), clock)
    app = create_app(store_url, keys=keys.ring, guard=guard)
    with TestClient(app, client=("10.0.0.1", 50000)) as a, TestClient(app, client=("10.0.0.2", 50000)) as b:
        yield a, b, keys, clock, engine
    app.state.desk.engine.dispose()
    engine.dispose()


def fsi(client, key: str | None) -> tuple[int, dict, str | None]:
    env = Platform(client, "").envelope("1101", {"data": {"psn_no": "P000000001"}})
    r = client.post(PATH, json=env, headers={"Authorization": f"Bearer {key}"} if key else {})
    return r.status_code, r.json(), r.headers.get("retry-after")


def test_failed_authentication_locks_the_address_out(guarded):
    a, b, keys, clock, _ = guarded
    good = keys.keys["his1"]
    for wrong in ("w1", "w2", None):  # three failures from 10.0.0.1 within the minute (no key counts too)
        status, answer, _ = fsi(a, wrong)
        assert status == 200 and answer["err_msg"][:8] in ("[AUT002]", "[AUT001]")
    status, answer, retry = fsi(a, good)  # locked out: even a good key waits
    assert (status, retry) == (429, "300")
    assert answer["err_msg"] == "[AUT030] Authorization: 认证失败次数过多, 来源 10.0.0.1 已被锁定, 请 300 秒后再试"
    r = a.get("/api/v1/settlements", headers={"Authorization": f"Bearer {good}"})  # the REST face alike
    assert r.status_code == 429 and r.headers["retry-after"] == "300"
    assert r.json()["problems"][0]["code"] == "AUT030"
    assert fsi(b, good)[1]["infcode"] == 0  # another address is not affected
    clock.now += 299.5
    assert fsi(a, good)[2] == "1"
    clock.now += 1
    assert fsi(a, good)[1]["infcode"] == 0


def test_a_key_guessed_from_several_addresses_is_locked_out(guarded):
    a, b, _, clock, _ = guarded
    assert fsi(a, "guess")[0] == 200
    assert fsi(b, "guess")[0] == 200
    clock.now += 30
    assert fsi(a, "guess")[0] == 200  # the key's third failure (each address only has one or two)
    status, answer, retry = fsi(b, "guess")
    assert (status, retry) == (429, "300") and answer["err_msg"].startswith("[AUT030] Authorization: 认证失败次数过多, 该密钥")


def test_failures_spread_over_more_than_the_window_do_not_lock(guarded):
    a, _, keys, clock, _ = guarded
    for _ in range(5):
        assert fsi(a, "wrong")[0] == 200
        clock.now += 31  # two failures per 60-second window at most
        fsi(a, keys.keys["his1"])  # a success between does not matter
    assert fsi(a, keys.keys["his1"])[1]["infcode"] == 0


def test_settlements_are_limited_per_institution(guarded):
    a, _, keys, clock, engine = guarded
    his, other = Platform(a, keys.keys["his1"]), Platform(a, keys.keys["his2"], sample.OTHER_HOSPITAL)
    visits = [his.visit("P000000001", n_items=2) for _ in range(3)]
    answers = [a.post(PATH, json=his.envelope("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": m}}),
                      headers={"Authorization": f"Bearer {his.key}"}) for m in visits]
    assert [r.status_code for r in answers] == [200, 200, 429]  # a burst of 2, then 1 a second
    assert answers[2].headers["retry-after"] == "1"
    assert answers[2].json()["err_msg"].startswith("[SET070] fixmedins_code: H37010200001 结算过于频繁(每秒最多 1 笔)")
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Settlement)) == 2  # nothing done for the third
    other_visit = other.visit("P000000003", n_items=2)
    other.ok("2207", {"data": {"psn_no": "P000000003", "mdtrt_id": other_visit}})  # its own bucket
    clock.now += 1
    his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": visits[2]}})
    # the REST face counts against the same institution
    rest = Platform(a, keys.keys["his1"]).visit("P000000001", n_items=2)
    assert a.post(f"/api/v1/visits/{rest}/settle", json={"setl_time": "2024-03-05T10:00:00"},
                  headers={"Authorization": f"Bearer {keys.keys['his1']}"}).status_code == 429


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("YIBAO_AUTH_FAILURES", "5")
    monkeypatch.setenv("YIBAO_LOCKOUT_SECONDS", "60")
    monkeypatch.setenv("YIBAO_SETTLE_RATE", "0")
    config = GuardConfig.from_env()
    assert (config.auth_failures, config.lockout, config.settle_rate, config.auth_window) == (5, 60.0, 0.0, 60.0)
    monkeypatch.setenv("YIBAO_SETTLE_BURST", "-1")
    with pytest.raises(YibaoError) as refused:
        GuardConfig.from_env()
    assert refused.value.problems[0].code == "SRV005"


def test_inline_keys_may_be_given_as_digests(monkeypatch):
    from yibao.service.auth import KeyRing, key_hash

    monkeypatch.setenv("YIBAO_API_KEYS", f"his1:institution:{sample.HOSPITAL}=sha256:{key_hash('the-key')}")
    ring = KeyRing.from_env()
    assert ring.authenticate("the-key").name == "his1"
    monkeypatch.setenv("YIBAO_API_KEYS", "t:admin=plain")  # a plaintext key in the environment: refused (issue 13)
    with pytest.raises(YibaoError) as plain:
        KeyRing.from_env()
    assert plain.value.problems[0].code == "AUT018"
    monkeypatch.setenv("YIBAO_API_KEYS", "t:admin=sha256:abc")
    with pytest.raises(YibaoError) as refused:
        KeyRing.from_env()
    assert refused.value.problems[0].code == "AUT017"
