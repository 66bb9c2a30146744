"""The store: migrations to every head match the models, the registry validates ID numbers, the
synthetic region loads, and the service picks the pack by region and date."""

from __future__ import annotations

from datetime import date

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.errors import PolicyError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.service import registry, sample
from yibao.service.errors import NotFound, ServiceError
from yibao.service.packs import PackSet, region_prefix
from yibao.store import models
from yibao.store.base import Base
from yibao.store.database import make_engine
from yibao.store.migrate import alembic_config, current_heads

OURS = {t.name for t in models.Base.metadata.sorted_tables if t.name in {
    m.__tablename__ for m in (models.Person, models.Enrollment, models.PersonCategory, models.SubsidisedEnrollment,
                              models.Institution, models.Visit, models.FeeItem, models.Settlement,
                              models.SettlementDetail, models.AccumulatorBalance, models.AccumulatorLedger,
                              models.IdempotencyRecord, models.AuditLog)}}


def test_upgrade_reaches_every_head_and_matches_the_models(store_url):
    script = ScriptDirectory.from_config(alembic_config(store_url))
    heads = set(script.get_heads())
    # a head another branch depends on (trust_0001 depends on svc0001) is reached without being stored as a head
    reached = {r.revision for r in script.iterate_revisions(tuple(current_heads(store_url)), "base")}
    assert "svc0002" in heads and heads <= reached
    engine = make_engine(store_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    ours = [d for d in diffs if _table_of(d) in OURS]
    assert ours == []
    engine.dispose()


def _table_of(diff) -> str | None:
    """The table an autogenerate diff concerns: ("add_table", Table), ("add_column", schema, table, col) ..."""
    first = diff[0] if isinstance(diff, list) else diff
    for obj in first[1:]:
        if isinstance(obj, str):
            return obj
        table = getattr(obj, "table", None)
        if table is not None:
            return table.name
        if getattr(obj, "name", None):
            return obj.name
    return None


def test_registry_refuses_a_wrong_check_digit(store_url):
    good = sample.certno(7)
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    registry.check_certno(good)
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        with pytest.raises(ServiceError, match="校验位"):
            registry.add_person(s, psn_no="PX", certno=bad, psn_name="王五", insutype="390", admdvs="370102",
                                valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31))
    engine.dispose()


def test_synthetic_region_loads_with_categories_and_subsidies(tmp_path):
    from yibao.store.migrate import upgrade
    from yibao.synth import generate

    url = f"sqlite:///{tmp_path / 'y.db'}"
    upgrade(url)
    tables = generate(resolve_pack("shandong-2024"), persons=300, seed=3)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        counts = registry.load_region(s, tables, 2024)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(models.Person)) == 300 == counts["persons"]
        cats = s.scalars(select(models.PersonCategory)).all()
        assert len(cats) == counts["person_categories"] > 0
        assert all(c.issuing_dept == ("乡村振兴" if c.category in ("fanpin", "monitor") else "民政") for c in cats)
        subsidised = s.scalars(select(models.SubsidisedEnrollment)).all()
        assert len(subsidised) == counts["subsidised_enrollments"]
        person = s.get(models.Person, tables["persons"]["psn_no"][0].as_py())
        assert registry.birth_date(person.certno) == person.brdy
    engine.dispose()


def test_pack_is_picked_by_region_and_date():
    packs = PackSet.load(["shandong-2024", "jishou-2022"])
    assert packs.pick("370102", date(2024, 5, 1)).id == "shandong-2024"
    assert packs.pick("433101", date(2022, 5, 1)).id == "jishou-2022"
    with pytest.raises(NotFound, match="没有生效的政策包"):
        packs.pick("370102", date(2025, 1, 1))
    with pytest.raises(PolicyError, match="有效期重叠"):
        PackSet([CompiledPack(resolve_pack("shandong-2024")), CompiledPack(resolve_pack("shandong-2024-baseline"))])
    assert (region_prefix("370000"), region_prefix("433100"), region_prefix("433101")) == ("37", "4331", "433101")
