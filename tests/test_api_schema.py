"""Schemathesis over the OpenAPI spec, in process: generated requests never get a 5xx.

Runs as the admin (so requests reach the service layer rather than stopping at 401) against a
store with a few settled visits, so generated ids sometimes hit and usually miss.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy.orm import Session

from yibao.service import sample
from yibao.service.app import create_app
from yibao.store.database import make_engine
from yibao.store.migrate import upgrade

_dir = Path(tempfile.mkdtemp(prefix="yibao-schema-"))
atexit.register(shutil.rmtree, _dir, ignore_errors=True)  # built at import, for the parametrised schema
URL = f"sqlite:///{_dir / 'yibao.db'}"
upgrade(URL)
with Session(make_engine(URL)) as _s, _s.begin():
    sample.seed(_s, 3)
KEYS = sample.make_keys()
APP = create_app(URL, keys=KEYS.ring)
with TestClient(APP) as _c:
    _h = {"X-API-Key": KEYS.keys["his1"]}
    _v = _c.post("/api/v1/visits", headers=_h, json={"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001",
                                                     "insutype": "390", "begntime": "2024-04-01T09:00:00"}).json()
    _c.post(f"/api/v1/visits/{_v['mdtrt_id']}/fee-items", headers=_h, json={"items": sample.items(3), "at": "2024-04-01T10:00:00"})
    _c.post(f"/api/v1/visits/{_v['mdtrt_id']}/settle", headers=_h, json={"setl_time": "2024-04-01T10:00:00"})

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# make test-fast (hypothesis profile "fast"): 3 random requests per operation; CI sends 25, and before them every
# operation's boundary cases (schemathesis' coverage phase)
FAST = os.environ.get("HYPOTHESIS_PROFILE") == "fast"
if FAST:
    schema.config.phases.coverage.enabled = False


@schema.parametrize()
@settings(max_examples=3 if FAST else 25, suppress_health_check=list(HealthCheck), deadline=None)
def test_no_server_errors(case):
    response = case.call(headers={"X-API-Key": KEYS.keys["admin"]})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if case.path.startswith("/fsi/") and case.method.upper() == "POST":
        assert response.status_code == 200 and "infcode" in response.json()
