"""A hypothesis-driven fuzzer over the platform envelope: 0 × 5xx.

The platform endpoint promises HTTP 200 with an ``infcode`` for every request it accepts (429 only when the
caller must wait). Starting from real envelopes of each transaction (a registered visit with fee lines
exists, so some mutations reach the service layer and the store), hypothesis replaces one field — at the top,
in ``input.data`` or in a fee line — with something hostile: deep nesting, lone surrogates, NUL, direction
overrides, zero-width characters, markup, huge and odd numbers, long strings, wrong types; or sends a
mangled body (truncated, nested 100k deep, not UTF-8). On SQLite and on a real PostgreSQL (which refuses NUL
in text). Derandomised in CI (tests/conftest.py), so a failure reproduces.
"""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from yibao.service import sample
from yibao.service.app import create_app
from yibao.service.ratelimit import Guard, GuardConfig
from yibao.store.database import make_engine

from test_service_flow import PATH, Platform

HOSTILE_CHARS = ["\x00", "\ud800", "\udfff", "\u202e", "\u200b", "\u2060", "\ufeff", "\x1b", "\n", "<", ">", "&",
                 "'", '"', "\\", "%00", "ＳＤ", "😀", "\U0010ffff"]


class Raw:
    """A number written into the JSON text as is (beyond what json.dumps would produce)."""

    def __init__(self, text: str):
        self.text = text


def nested(depth: int) -> Raw:
    """Objects and lists alternating ``depth`` deep, as JSON text (hypothesis need not hold it as objects)."""
    return Raw('{"k":[' * (depth // 2) + '"x"' + "]}" * (depth // 2))


hostile_strings = st.one_of(
    st.lists(st.sampled_from(HOSTILE_CHARS) | st.text(max_size=3), min_size=1, max_size=6).map("".join),
    st.builds(lambda c, n: "A" * n + c, st.sampled_from(HOSTILE_CHARS), st.integers(0, 70)),
    st.integers(1, 5).map(lambda k: "9" * (10 ** k)),  # long strings, up to 100k characters
    st.text(max_size=20),
)
hostile_numbers = st.one_of(
    st.sampled_from([Raw("1e30"), Raw("-1e30"), Raw("1e999999"), Raw("9999999999999.99"), Raw("9" * 5000),
                     Raw("-0"), Raw("0.000000000000000001"), Raw("1E-999999"), Raw("NaN"), Raw("Infinity"),
                     Raw("-Infinity"), Raw("1.00005"), Raw(str(2 ** 63)), Raw(str(-(2 ** 63) - 1))]),
    st.integers(-(2 ** 70), 2 ** 70),
    st.floats(allow_nan=False, allow_infinity=False),
)
hostile_values = st.one_of(
    hostile_strings, hostile_numbers, st.sampled_from([None, True, False, [], {}, [None], {"": ""}]),
    st.integers(1, 3000).map(nested),
)


def dump(value: object) -> str:
    """JSON text: surrogates escaped as \\uXXXX, Raw text verbatim."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dump(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request, tmp_path_factory, pg_url):
    import uuid

    from sqlalchemy import create_engine, text

    from yibao.store.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'yibao.db'}"
        admin = None
    else:
        name = "fz_" + uuid.uuid4().hex[:12]
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        url = pg_url.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
    keys = sample.make_keys()
    app = create_app(url, keys=keys.ring, guard=Guard(GuardConfig(auth_failures=0, settle_rate=0)))
    with TestClient(app, raise_server_exceptions=False) as client:
        his = Platform(client, keys.keys["his1"])
        mdtrt_id = his.visit("P000000001", n_items=3)
        setl_id = his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})["setlinfo"]["setl_id"]
        open_visit = his.visit("P000000001", n_items=2)
        yield client, his, {"mdtrt_id": mdtrt_id, "setl_id": setl_id, "open": open_visit}
    app.state.desk.engine.dispose()
    engine.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)"))
        admin.dispose()


def envelopes(ids: dict) -> list[tuple[str, dict]]:
    line = dict(sample.items(1, start=900)[0], mdtrt_id=ids["open"], psn_no="P000000001")
    return [
        ("1101", {"data": {"certno": sample.certno(1)}}),
        ("1101", {"data": {"psn_no": "P000000001"}}),
        ("2201", {"data": {"psn_no": "P000000001", "insutype": "390", "begntime": "2024-03-05 09:00:00"}}),
        ("2401", {"mdtrtinfo": {"psn_no": "P000000001", "insutype": "390", "begntime": "2024-03-05 09:00:00"},
                  "diseinfo": [{"diag_code": "I25.100", "maindiag_flag": "1"}]}),
        ("2204", {"feedetail": [line]}),
        ("2206", {"data": {"psn_no": "P000000001", "mdtrt_id": ids["open"]}}),
        ("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": ids["open"], "medfee_sumamt": "50.00"}}),
        ("2208", {"data": {"psn_no": "P000000001", "mdtrt_id": ids["mdtrt_id"], "setl_id": ids["setl_id"]}}),
        ("3201", {"data": {"stmt_begndate": "2024-01-01", "stmt_enddate": "2024-12-31", "medfee_sumamt": "0",
                           "fund_pay_sumamt": "0", "acct_pay": "0", "fixmedins_setl_cnt": 0}}),
    ]


@st.composite
def mutated(draw, base: list[tuple[str, dict]], his: Platform) -> str:
    infno, inp = draw(st.sampled_from(base))
    env = his.envelope(infno, copy.deepcopy(inp), msgid=draw(st.sampled_from(["M1", "M2", "M3"])))
    # where: a top-level field, a field of the transaction's object, or a new key anywhere
    holder = env
    if draw(st.booleans()):
        holder = env["input"]
        inner = next(iter(holder.values()))
        if isinstance(inner, list) and inner:
            inner = inner[0]
        if isinstance(inner, dict) and draw(st.booleans()):
            holder = inner
    key = draw(st.sampled_from(sorted(holder)) | hostile_strings)
    holder[key] = draw(hostile_values)
    return dump(env)


raw_bodies = st.one_of(
    st.sampled_from(["", "{", "[]", "null", "1", '"x"', "{" * 100_000, "[" * 100_000 + "]" * 100_000,
                     '{"infno": "2207"' + ', "a": [' * 5000]),
    st.binary(max_size=50).map(lambda b: b"\xff\xfe" + b),
)


def check(response) -> None:
    assert response.status_code in (200, 429), (response.status_code, response.text[:300])
    answer = response.json()
    assert answer["infcode"] in (0, -1) and "inf_refmsgid" in answer


@settings(max_examples=150, suppress_health_check=list(HealthCheck), deadline=None)
@given(data=st.data())
def test_mutated_envelopes_never_get_a_server_error(target, data):
    client, his, ids = target
    body = data.draw(mutated(envelopes(ids), his))
    check(client.post(PATH, content=body.encode("utf-8", "surrogatepass"),
                      headers={"Authorization": f"Bearer {his.key}", "content-type": "application/json"}))


@settings(max_examples=20, suppress_health_check=list(HealthCheck), deadline=None)
@given(body=raw_bodies)
def test_mangled_bodies_never_get_a_server_error(target, body):
    client, his, _ = target
    content = body if isinstance(body, bytes) else body.encode("utf-8")
    check(client.post(PATH, content=content, headers={"Authorization": f"Bearer {his.key}"}))
