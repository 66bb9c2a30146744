"""A small sample region for tests and for trying the API: institutions, persons, keys.

Persons carry real-format ID numbers (GB 11643 check digit from :mod:`yibao.synth.ids`) and are
enrolled for 2024 in Shandong (370102, pack ``shandong-2024``). Keys are made up per call and
returned, never stored anywhere but in the returned :class:`~yibao.service.auth.KeyRing` (hashed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
from sqlalchemy.orm import Session

from yibao.service import registry
from yibao.service.auth import KeyRing, Principal, key_hash, new_key
from yibao.synth.ids import certnos

ADMDVS = "370102"
YEAR = 2024
HOSPITAL = "H37010200001"  # 一级/基层
OTHER_HOSPITAL = "H37010200002"  # 三级


def certno(seq: int, birth: str = "1960-05-17") -> str:
    """A valid ID number, distinct for each ``seq`` (every thousand moves the birth date a day)."""
    day = np.datetime64(birth, "D") + seq // 1000
    return certnos(np.array([370102]), np.array([day]), np.array([seq % 1000])).to_pylist()[0]


@dataclass
class SampleKeys:
    ring: KeyRing
    keys: dict[str, str]  # principal name → key


def make_keys() -> SampleKeys:
    specs = [("his1", "institution", HOSPITAL), ("his2", "institution", OTHER_HOSPITAL), ("clerk", "clerk", None),
             ("reviewer", "reviewer", None), ("rechecker", "rechecker", None), ("auditor", "auditor", None),
             ("analyst", "analyst", None), ("admin", "admin", None)]
    keys = {name: new_key() for name, _, _ in specs}
    ring = KeyRing([(key_hash(keys[name]), Principal(name, role, code)) for name, role, code in specs])
    return SampleKeys(ring, keys)


def seed(session: Session, persons: int = 20) -> list[str]:
    """Institutions and ``persons`` residents/employees; returns their psn_no."""
    start, end = date(YEAR, 1, 1), date(YEAR, 12, 31)
    registry.add_institution(session, code=HOSPITAL, name="示例社区卫生服务中心", level="1", admdvs=ADMDVS,
                             designated_from=start, designated_to=end)
    registry.add_institution(session, code=OTHER_HOSPITAL, name="示例市立医院", level="3", admdvs=ADMDVS,
                             designated_from=start, designated_to=end)
    out = []
    for i in range(persons):
        psn_no = f"P{i + 1:09d}"
        employee = i % 2 == 1
        cats = {"dibao": "民政"} if i % 5 == 0 else {}
        registry.add_person(session, psn_no=psn_no, certno=certno(i + 1), psn_name=f"测试{'甲乙丙丁戊己庚辛'[i % 8]}{i}",
                            insutype="310" if employee else "390", admdvs=ADMDVS, valid_from=start, valid_to=end,
                            gend="1" if i % 2 else "2", categories=cats,
                            acct_balc=Decimal("2000.00") if employee else Decimal(0))
        out.append(psn_no)
    return out


def items(n: int = 30, start: int = 1, price: str = "12.50") -> list[dict]:
    """Fee lines (platform field names) alternating 甲/乙/丙 classes."""
    levels = ["01", "02", "03"]
    return [{"feedetl_sn": f"F{start + k:06d}", "med_list_codg": f"X{k:05d}", "chrgitm_lv": levels[k % 3],
             "pric": price, "cnt": "2", "det_item_fee_sumamt": str(Decimal(price) * 2)} for k in range(n)]
