"""Personal data: logs never carry a 证件号 or a name (also on database errors); SQLite store, WAL and
key files are private (0600); the 证件号 is encrypted at rest, found by blind index, and its key
rotates in one transaction; existing rows are encrypted by the migration."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from test_service_flow import Platform, world  # noqa: F401  (fixture)
from yibao import privacy
from yibao.cli import app
from yibao.service import registry, sample
from yibao.service.app import create_app
from yibao.service.errors import NotFound
from yibao.store import keys
from yibao.store.database import make_engine
from yibao.store.keys import StoreKeyError
from yibao.store.migrate import upgrade
from yibao.store.models import Person

CERTNOS = [sample.certno(i + 1) for i in range(6)]  # the sample region's persons (sample.seed)


def _names(engine) -> list[str]:
    with Session(engine) as s:
        return list(s.scalars(select(Person.psn_name)))


def test_logs_of_representative_flows_and_a_database_error_carry_no_certno_or_name(world, caplog):  # noqa: F811
    client, sample_keys, engine = world
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # statements and (hidden) parameters logged
    try:
        his = Platform(client, sample_keys.keys["his1"])
        for certno in CERTNOS[:3]:
            assert his.ok("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno}})["baseinfo"]["certno"] == certno
        missing = sample.certno(999)
        assert his("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": missing}})["infcode"] == -1
        clerk = {"Authorization": f"Bearer {sample_keys.keys['clerk']}"}
        assert client.post("/api/v1/persons/lookup", json={"certno": CERTNOS[3]}, headers=clerk).status_code == 200
        mdtrt_id = his.visit("P000000001")
        his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})
        # a database error carrying a name and a certno in its statement's parameters
        with pytest.raises(IntegrityError) as caught:
            with Session(engine) as s, s.begin():
                registry.add_person(s, psn_no="P000000001", certno=CERTNOS[4], psn_name="欧阳娜娜", insutype="390",
                                    admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31))
        logging.getLogger("yibao.service").exception("store error")
        assert "欧阳娜娜" not in str(caught.value)
        # an unexpected error whose text names a certno and a name reaches the service's 500 handler
        app = create_app(engine.url.render_as_string(hide_password=False), keys=sample_keys.ring)
        app.state.desk.read = lambda fn: (_ for _ in ()).throw(RuntimeError(f"boom {CERTNOS[5]} psn_name='张三丰'"))
        with TestClient(app, raise_server_exceptions=False) as c2:
            assert c2.get("/api/v1/persons/P000000001", headers=clerk).status_code == 500
        app.state.desk.engine.dispose()
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    text_of_logs = "\n".join(logging.Formatter("%(message)s").format(r) for r in caplog.records)
    assert "boom 370102" in text_of_logs and "SQL parameters hidden" in text_of_logs  # the logs did run
    for secret in CERTNOS + [missing] + _names(engine) + ["欧阳娜娜", "张三丰"]:
        assert secret not in text_of_logs, secret


def test_scrub_masks_id_numbers_and_name_values():
    assert privacy.scrub("id=37010219600517001X, old 370102600517001") == "id=370102********001X, old 370102*****7001"
    assert privacy.scrub('{"psn_name": "王小二", "msgid": "H370102000012024030500000123"}') == \
        '{"psn_name": "王**", "msgid": "H370102000012024030500000123"}'


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_store_wal_and_key_files_are_private(tmp_path, monkeypatch):
    monkeypatch.setenv("YIBAO_STORE_KEYS_FILE", str(tmp_path / "keys" / "store-keys.json"))
    db = tmp_path / "data" / "yibao.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    with engine.connect() as conn:  # WAL and shared-memory files exist while a connection is open
        conn.execute(text("SELECT count(*) FROM persons"))
        files = [db, db.with_name("yibao.db-wal"), db.with_name("yibao.db-shm")]
        assert all(f.exists() for f in files)
        assert [_mode(f) for f in files] == [0o600] * 3
    engine.dispose()
    assert _mode(db.parent) == 0o700 and _mode(tmp_path / "keys" / "store-keys.json") == 0o600
    # an older store left readable by others is tightened when opened
    os.chmod(db, 0o644)
    make_engine(url).dispose()
    assert _mode(db) == 0o600


def test_api_keys_file_is_private(tmp_path):
    from yibao.service.auth import add_key

    path = tmp_path / "api-keys.json"
    add_key(path, "his1", "institution", "H1")
    assert _mode(path) == 0o600


def test_certno_is_encrypted_at_rest_and_found_by_blind_index(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
    with Session(engine) as s:
        p = registry.person_by_certno(s, CERTNOS[1])
        assert (p.psn_no, p.certno) == ("P000000002", CERTNOS[1])
        assert p.certno_enc.startswith("k1:") and CERTNOS[1] not in p.certno_enc + p.certno_bidx
        with pytest.raises(NotFound, match="REG011|不存在"):
            registry.person_by_certno(s, sample.certno(77))
        with pytest.raises(AttributeError, match="person_by_certno"):
            select(Person).where(Person.certno == CERTNOS[1])
    if store_url.startswith("sqlite"):  # nowhere in the file: not in a table, an index or the WAL
        path = store_url.split("///", 1)[1]
        raw = b"".join(open(f, "rb").read() for f in (path, path + "-wal") if os.path.exists(f))
        assert raw and not any(c.encode() in raw for c in CERTNOS[:3])
    with Session(engine) as s, s.begin():  # a ciphertext moved to another person does not decrypt
        other = s.scalar(select(Person.certno_enc).where(Person.psn_no == "P000000001"))
        s.execute(update(Person).where(Person.psn_no == "P000000002").values(certno_enc=other))
    with Session(engine) as s:
        with pytest.raises(StoreKeyError, match="KEY004|无法解密"):
            _ = s.get(Person, "P000000002").certno
    engine.dispose()


def test_rotate_key_reencrypts_and_reindexes_everyone(store_url, tmp_path, monkeypatch):
    from test_store_chain import populate, problems

    monkeypatch.setenv("YIBAO_STORE_KEYS_FILE", str(tmp_path / "store-keys.json"))
    keys.write(keys.StoreKeys(os.urandom(32), {"k1": os.urandom(32)}, "k1", "test"))  # this test's own keys
    populate(store_url, persons=2)  # chained rows too: rotation must leave the chains whole
    result = CliRunner().invoke(app, ["db", "rotate-key", "--url", store_url])
    assert result.exit_code == 0 and "k2" in result.output, result.output
    ring = json.loads((tmp_path / "store-keys.json").read_text())
    assert ring["certno_active"] == "k2" and set(ring["certno"]) == {"k1", "k2"}
    engine = make_engine(store_url)
    with Session(engine) as s:
        assert {t.split(":")[0] for t in s.scalars(select(Person.certno_enc))} == {"k2"}
        assert registry.person_by_certno(s, CERTNOS[0]).psn_no == "P000000001"
        assert s.get(Person, "P000000002").certno == CERTNOS[1]
    engine.dispose()
    assert problems(store_url) == []
    again = CliRunner().invoke(app, ["db", "rotate-key", "--url", store_url, "--forget-old"])
    assert again.exit_code == 0, again.output
    assert set(json.loads((tmp_path / "store-keys.json").read_text())["certno"]) == {"k3"}
    engine = make_engine(store_url)
    with Session(engine) as s:
        assert registry.person_by_certno(s, CERTNOS[1]).psn_no == "P000000002"
    engine.dispose()


def test_missing_keys_are_a_coded_error_never_a_new_key(tmp_path, monkeypatch):
    monkeypatch.setenv("YIBAO_STORE_KEYS_FILE", str(tmp_path / "nowhere.json"))
    with pytest.raises(StoreKeyError, match="KEY001"):
        privacy.certno_index(CERTNOS[0])
    assert not (tmp_path / "nowhere.json").exists()


def test_the_migration_encrypts_existing_plaintext_rows(store_url):
    from alembic import command

    from yibao.store.migrate import alembic_config

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
    engine.dispose()
    command.downgrade(alembic_config(store_url), "trust_0001")  # back to a plaintext certno column
    plain = create_engine(store_url)
    with plain.connect() as conn:
        assert sorted(conn.execute(text("SELECT certno FROM persons")).scalars()) == sorted(CERTNOS[:3])
    plain.dispose()
    upgrade(store_url)
    engine = make_engine(store_url)
    with Session(engine) as s:
        assert [registry.person_by_certno(s, c).psn_no for c in CERTNOS[:3]] == ["P000000001", "P000000002", "P000000003"]
        with pytest.raises(Exception):
            s.execute(text("SELECT certno FROM persons")).all()
    engine.dispose()


def test_api_keys_from_the_environment_only_by_hash(monkeypatch):
    from yibao.service.auth import KeyRing, key_hash
    from yibao.service.errors import ServiceError

    monkeypatch.delenv("YIBAO_API_KEYS_FILE", raising=False)
    monkeypatch.setenv("YIBAO_API_KEYS", f"his1:institution:{sample.HOSPITAL}=yb_plaintext_key")
    with pytest.raises(ServiceError, match="AUT018") as caught:
        KeyRing.from_env()
    assert "yb_plaintext_key" not in str(caught.value)
    monkeypatch.setenv("YIBAO_API_KEYS", f"his1:institution:{sample.HOSPITAL}=sha256:{key_hash('yb_secret')};"
                                         f"boss:admin=sha256:{key_hash('yb_other').upper()}")
    ring = KeyRing.from_env()
    assert ring.authenticate("yb_secret").fixmedins_code == sample.HOSPITAL
    assert ring.authenticate("yb_other").role == "admin"


def test_scrub_leaves_names_of_things_alone():
    assert privacy.scrub("rule_name=重复收费 fixmedins_name=示例医院") == "rule_name=重复收费 fixmedins_name=示例医院"
