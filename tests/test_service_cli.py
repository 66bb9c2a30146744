"""``yibao serve`` takes its database URL without putting a password on the command line (``ps`` shows
every process's arguments to every local user): a password in ``--url`` is refused; ``--url-file``,
``YIBAO_DATABASE_URL`` and ``YIBAO_DATABASE_URL_FILE`` carry it instead."""

from __future__ import annotations

from typer.testing import CliRunner

from yibao.cli import app
from yibao.service.auth import key_hash

ADMIN_K = f"t:admin=sha256:{key_hash('k')}"  # the key "k" for principal t, by hash
SECRET = "s3cret-pw"
UNUSABLE = f"postgresql+nosuchdriver://yibao:{SECRET}@127.0.0.1/yibao"  # refused by make_engine: no server needed


def run(*args: str, **env: str):
    return CliRunner().invoke(app, ["serve", *args], env={"YIBAO_API_KEYS": ADMIN_K,
                                                         "YIBAO_DATABASE_URL": None, "YIBAO_DATABASE_URL_FILE": None,
                                                         **env})


def test_a_password_in_url_is_refused():
    done = run("--url", f"postgresql+psycopg://yibao:{SECRET}@db.example/yibao")
    assert done.exit_code == 2
    assert "SRV006" in done.output and "--url-file" in done.output and SECRET not in done.output


def test_the_url_may_come_from_a_file_or_the_environment(tmp_path):
    path = tmp_path / "db.url"
    path.write_text(UNUSABLE + "\n", encoding="utf-8")
    for done in (run("--url-file", str(path)), run(YIBAO_DATABASE_URL_FILE=str(path)), run(YIBAO_DATABASE_URL=UNUSABLE)):
        assert done.exit_code == 2
        # the URL was read and tried (DB002 names it without its password)
        assert "DB002" in done.output and "yibao:***@127.0.0.1" in done.output and SECRET not in done.output
    missing = run("--url-file", str(tmp_path / "nothere"))
    assert missing.exit_code == 2 and "SRV007" in missing.output
    assert run("--url", "sqlite:///x.db", "--settle-rate", "-1").exit_code == 2  # typer's own bound


def test_a_bad_limit_setting_is_refused_before_serving():
    done = run("--url", "nosuchdb://x", YIBAO_AUTH_WINDOW="soon")
    assert done.exit_code == 2 and "SRV005" in done.output and "YIBAO_AUTH_WINDOW" in done.output
