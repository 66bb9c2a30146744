"""Who may do what over REST: institutions only on their own visits, staff by role, identities
masked for roles that do not need them, and ``Idempotency-Key`` replay."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from yibao.service import sample
from yibao.service.app import create_app
from yibao.store.database import make_engine


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'yibao.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 4)
    keys = sample.make_keys()
    app = create_app(url, keys=keys.ring)
    with TestClient(app) as client:
        def call(who: str, method: str, path: str, **kw):
            headers = {**kw.pop("headers", {}), "X-API-Key": keys.keys[who]} if who else kw.pop("headers", {})
            return client.request(method, "/api/v1" + path, headers=headers, **kw)
        yield call, engine
    engine.dispose()


def settled_visit(call, who: str = "his1", key: str | None = None) -> tuple[str, str]:
    v = call(who, "POST", "/visits", json={"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001",
                                          "insutype": "390", "begntime": "2024-04-01T09:00:00"})
    assert v.status_code == 201, v.text
    mdtrt_id = v.json()["mdtrt_id"]
    up = call(who, "POST", f"/visits/{mdtrt_id}/fee-items", json={"items": sample.items(3), "at": "2024-04-01T10:00:00"})
    assert up.status_code == 200, up.text
    headers = {"Idempotency-Key": key} if key else {}
    s = call(who, "POST", f"/visits/{mdtrt_id}/settle", json={"setl_time": "2024-04-01T10:00:00"}, headers=headers)
    assert s.status_code == 200, s.text
    return mdtrt_id, s.json()["setlinfo"]["setl_id"]


def test_keys_are_required_and_checked(api):
    call, _ = api
    assert call(None, "GET", "/persons/P000000001").status_code == 401
    bad = call(None, "GET", "/persons/P000000001", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["problems"][0]["code"] == "AUT002"
    assert call(None, "GET", "/health").status_code == 200


def test_institution_acts_only_on_its_own_visits(api):
    call, _ = api
    mdtrt_id, setl_id = settled_visit(call)
    other = call("his2", "GET", f"/settlements/{setl_id}")
    assert other.status_code == 403 and other.json()["problems"][0]["code"] == "AUT004"
    assert call("his2", "POST", f"/settlements/{setl_id}/reverse").status_code == 403
    foreign = call("his2", "POST", "/visits", json={"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001",
                                                   "insutype": "390", "begntime": "2024-04-01T09:00:00"})
    assert foreign.status_code == 403
    assert call("his1", "GET", f"/settlements/{setl_id}").status_code == 200


@pytest.mark.parametrize("role, settle, reverse, audit, person", [
    ("clerk", 200, 200, 403, 200),
    ("reviewer", 403, 403, 403, 200),
    ("rechecker", 403, 200, 403, 200),
    ("auditor", 403, 403, 200, 403),
    ("analyst", 403, 403, 403, 403),
    ("admin", 200, 200, 200, 200),
])
def test_staff_roles(api, role, settle, reverse, audit, person):
    call, _ = api
    v = call("his1", "POST", "/visits", json={"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001",
                                              "insutype": "390", "begntime": "2024-04-01T09:00:00"}).json()
    call("his1", "POST", f"/visits/{v['mdtrt_id']}/fee-items", json={"items": sample.items(2), "at": "2024-04-01T10:00:00"})
    s = call(role, "POST", f"/visits/{v['mdtrt_id']}/settle", json={"setl_time": "2024-04-01T10:00:00"})
    assert s.status_code == settle, s.text
    if settle != 200:
        s = call("his1", "POST", f"/visits/{v['mdtrt_id']}/settle", json={"setl_time": "2024-04-01T10:00:00"})
    setl_id = s.json()["setlinfo"]["setl_id"]
    assert call(role, "POST", f"/settlements/{setl_id}/reverse", json={"at": "2024-04-01T11:00:00"}).status_code == reverse
    assert call(role, "GET", "/audit").status_code == audit
    assert call(role, "GET", "/persons/P000000001").status_code == person


def test_identities_masked_for_roles_that_do_not_need_them(api):
    call, _ = api
    _, setl_id = settled_visit(call)
    certno = sample.certno(1)
    full = call("reviewer", "GET", f"/settlements/{setl_id}/statement.html").text
    masked = call("auditor", "GET", f"/settlements/{setl_id}/statement.html").text
    assert certno in full and "测试甲0" in full
    assert certno not in masked and "测试甲0" not in masked
    assert certno[:6] + "********" + certno[-4:] in masked and "测***" in masked
    person = call("clerk", "POST", "/persons/lookup", json={"certno": certno, "on": "2024-04-01"}).json()
    assert person["baseinfo"]["certno"] == certno


def test_audit_log_records_writes_without_identities_and_is_append_only(api):
    call, engine = api
    settled_visit(call)
    rows = call("auditor", "GET", "/audit?limit=1000").json()
    assert {"register", "upload", "settle"} <= {r["action"] for r in rows}
    assert all(sample.certno(1) not in str(r) and "测试" not in str(r) for r in rows)
    with engine.connect() as conn:
        with pytest.raises(Exception, match="append-only"):
            conn.execute(text("UPDATE audit_log SET actor = 'x'"))
        conn.rollback()


def test_idempotency_key_replays_over_rest(api):
    call, engine = api
    mdtrt_id, setl_id = settled_visit(call, key="k-1")
    again = call("his1", "POST", f"/visits/{mdtrt_id}/settle", json={"setl_time": "2024-04-01T10:00:00"},
                 headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json()["setlinfo"]["setl_id"] == setl_id
    other = call("his1", "POST", f"/visits/{mdtrt_id}/settle", json={"setl_time": "2024-04-02T10:00:00"},
                 headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.json()["problems"][0]["code"] == "IDM001"
    twice = call("his1", "POST", f"/visits/{mdtrt_id}/settle", json={"setl_time": "2024-04-01T10:00:00"})
    assert twice.status_code == 409 and twice.json()["problems"][0]["code"] == "SET050"


def test_keys_file_that_cannot_be_written_or_read_is_a_coded_error(tmp_path):
    from yibao.service.auth import add_key, read_keys_file
    from yibao.service.errors import ServiceError

    with pytest.raises(ServiceError) as missing_dir:
        add_key(tmp_path / "no" / "such" / "keys.json", "clerk1", "clerk", None)
    assert missing_dir.value.problems[0].code == "AUT014"
    garbage = tmp_path / "keys.json"
    garbage.write_text("not json", encoding="utf-8")
    with pytest.raises(ServiceError) as unreadable:
        add_key(garbage, "clerk1", "clerk", None)
    assert unreadable.value.problems[0].code == "AUT013"
    assert garbage.read_text(encoding="utf-8") == "not json"  # nothing written
    key = add_key(tmp_path / "ok.json", "clerk1", "clerk", None)
    assert [p.name for _, p in read_keys_file(tmp_path / "ok.json")] == ["clerk1"] and len(key) >= 20


def test_a_body_that_is_not_json_gets_a_chinese_problem(api):
    call, _ = api
    r = call("his1", "POST", "/visits", content=b"x", headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    problem = r.json()["problems"][0]
    assert problem["code"] == "REQ010" and problem["path"] == "body" and "不是合法的 JSON" in problem["message"]
