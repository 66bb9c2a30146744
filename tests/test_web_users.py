"""Web users without a browser: `yibao user add`, argon2 hashes, lock-out and its end, session expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from yibao.cli import app
from yibao.service import sample
from yibao.store.database import make_engine
from yibao.store.migrate import upgrade
from yibao.web.users import (LOCK_MINUTES, MAX_FAILURES, SESSION_IDLE_MINUTES, WebUser, check_password,
                             close_session, open_session, principal_of)

T0 = datetime(2024, 6, 3, 9, 0)


def store(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'yibao.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    engine.dispose()
    return url


def test_user_add_keeps_only_an_argon2_hash_and_refuses_bad_input(tmp_path):
    url = store(tmp_path)
    run = CliRunner().invoke
    ok = run(app, ["user", "add", "clerk1", "--role", "clerk", "--url", url], env={"YIBAO_NEW_PASSWORD": "long-enough-1"})
    assert ok.exit_code == 0, ok.output
    assert "已开通网页用户 clerk1" in ok.output
    mine = run(app, ["user", "add", "zhang", "--role", "insured", "--psn-no", "P000000001", "--url", url],
               env={"YIBAO_NEW_PASSWORD": "long-enough-2"})
    assert mine.exit_code == 0, mine.output
    short = run(app, ["user", "add", "c2", "--role", "clerk", "--url", url], env={"YIBAO_NEW_PASSWORD": "short"})
    assert short.exit_code != 0 and "WEB005" in short.output
    again = run(app, ["user", "add", "clerk1", "--role", "clerk", "--url", url], env={"YIBAO_NEW_PASSWORD": "long-enough-1"})
    assert again.exit_code != 0 and "WEB006" in again.output
    role = run(app, ["user", "add", "c3", "--role", "boss", "--url", url], env={"YIBAO_NEW_PASSWORD": "long-enough-1"})
    assert role.exit_code != 0 and "WEB002" in role.output
    unbound = run(app, ["user", "add", "c4", "--role", "insured", "--url", url], env={"YIBAO_NEW_PASSWORD": "long-enough-1"})
    assert unbound.exit_code != 0 and "WEB004" in unbound.output
    engine = make_engine(url)
    with Session(engine) as s:
        users = {u.username: u for u in s.query(WebUser)}
    engine.dispose()
    assert set(users) == {"clerk1", "zhang"}  # nothing written by the refused ones
    assert users["clerk1"].password_hash.startswith("$argon2id$") and "long-enough-1" not in users["clerk1"].password_hash
    assert users["zhang"].psn_no == "P000000001" and users["zhang"].role == "insured"


def test_lock_out_after_repeated_failures_ends_after_the_lock_period(tmp_path):
    url = store(tmp_path)
    engine = make_engine(url)
    run = CliRunner().invoke
    assert run(app, ["user", "add", "u1", "--role", "analyst", "--url", url],
               env={"YIBAO_NEW_PASSWORD": "long-enough-1"}).exit_code == 0
    outcomes = []
    for k in range(MAX_FAILURES):
        with Session(engine) as s, s.begin():
            outcomes.append(check_password(s, "u1", "wrong-one", T0 + timedelta(seconds=k)).outcome)
    assert outcomes == ["bad"] * (MAX_FAILURES - 1) + ["just_locked"]
    with Session(engine) as s, s.begin():
        locked = check_password(s, "u1", "long-enough-1", T0 + timedelta(minutes=LOCK_MINUTES - 1))
    assert locked.outcome == "locked"  # the right password does not open it early
    with Session(engine) as s, s.begin():
        assert check_password(s, "u1", "long-enough-1", T0 + timedelta(minutes=LOCK_MINUTES, seconds=5)).outcome == "ok"
    with Session(engine) as s, s.begin():
        assert check_password(s, "nobody", "long-enough-1", T0).outcome == "bad"
    engine.dispose()


def test_sessions_end_on_logout_and_when_idle(tmp_path):
    url = store(tmp_path)
    engine = make_engine(url)
    CliRunner().invoke(app, ["user", "add", "u1", "--role", "clerk", "--url", url],
                       env={"YIBAO_NEW_PASSWORD": "long-enough-1"})
    with Session(engine) as s, s.begin():
        token, csrf = open_session(s, "u1", T0)
    with Session(engine) as s, s.begin():
        who = principal_of(s, token, T0 + timedelta(minutes=5))
        assert who.name == "u1" and who.role == "clerk" and who.csrf == csrf
        assert principal_of(s, token + "x", T0) is None
    with Session(engine) as s, s.begin():
        assert principal_of(s, token, T0 + timedelta(minutes=5 + SESSION_IDLE_MINUTES + 1)) is None
    with Session(engine) as s, s.begin():
        token2, _ = open_session(s, "u1", T0)
        close_session(s, token2)
    with Session(engine) as s, s.begin():
        assert principal_of(s, token2, T0 + timedelta(minutes=1)) is None
    engine.dispose()


def test_bench_web_prints_each_page_beside_the_api():
    done = CliRunner().invoke(app, ["bench", "web", "--persons", "20", "--visits", "3", "--repeat", "2"])
    assert done.exit_code == 0, done.output
    for page in ("结算台 /web/desk", "对照 API /api/v1/settlements/{id}", "我的医保 /web/me"):
        assert page in done.output
