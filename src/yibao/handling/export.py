"""经办 facts out of the store for batch settlement: the 认定 and 备案 a region's batch must read as the
service reads them online (门诊慢特病 certifications, 异地就医备案), one Parquet file in the claims directory.

``yibao handling facts-export --out 理赔目录/handling_facts.parquet``; ``yibao batch settle`` then settles
each 门诊慢特病 visit by the certification valid on its settlement day and derives each visit's 异地就医
status from the filings valid on its start day, with the same definitions as online
(:mod:`yibao.handling.effects`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.handling.effects import FACTS_SCHEMA, KINDS
from yibao.handling.models import HdFact
from yibao.service.auth import Principal


def export_facts(session: Session, who: Principal, path: str | Path) -> int:
    """Write every settlement-relevant fact to ``path`` (written whole, then moved in place); returns rows."""
    who.require("handling.clearing")  # bureau staff: it spans every insured person
    rows = session.execute(select(HdFact.psn_no, HdFact.kind, HdFact.code, HdFact.valid_from, HdFact.valid_to,
                                  HdFact.detail).where(HdFact.kind.in_(KINDS)).order_by(HdFact.id)).all()
    table = pa.table({
        "psn_no": [r[0] for r in rows], "kind": [r[1] for r in rows], "code": [r[2] for r in rows],
        "valid_from": [r[3] for r in rows], "valid_to": [r[4] for r in rows],
        "mdtrt_admdvs": [(r[5] or {}).get("mdtrt_admdvs") for r in rows],
    }, schema=FACTS_SCHEMA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)  # nothing half-written
    return table.num_rows
