"""0005 on a populated 0004 registry: rows kept, weights still found in the home, a store chosen only at init."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import torch

from forkpoint.registry import Registry
from forkpoint.registry.db import default_url, make_engine
from forkpoint.registry.errors import InvalidInputError
from forkpoint.registry.migrate import alembic_config, current_revision, head_revision, upgrade
from forkpoint.registry.store import LocalObjectStore


def _populate_0004(home, db_url, sample_of) -> sa.Engine:
    """A registry as a 0004 release left it: the schema stops at 0004, rows written through the registry."""
    home.mkdir(parents=True)
    url = db_url or default_url(home)
    engine = make_engine(url)
    upgrade(engine, "0004")
    reg = Registry(home.resolve(), engine, url)  # no open(): that would upgrade first
    sample = sample_of(reg)
    sample.backbone(trunk=True)
    sample.add("pets", seed=1)
    sample.add("pets", seed=2)
    sample.add("birds", seed=3)
    reg.rollback("pets")
    assert current_revision(engine) == "0004" and "registry_setting" not in sa.inspect(engine).get_table_names()
    return engine


def test_a_populated_0004_registry_upgrades_and_keeps_its_weights_in_the_home(home, db_url, sample_of):
    engine = _populate_0004(home, db_url, sample_of)
    with Registry.open(home, db_url) as reg:
        assert current_revision(engine) == head_revision()
        assert reg.store_url is None and isinstance(reg.store, LocalObjectStore)
        assert reg.store.root == home.resolve() / "objects"
        assert reg.verify().ok
        assert [(r.task, r.version) for r, _ in reg.live()] == [("pets", 1), ("birds", 1)]
        assert torch.equal(reg.load_tensors("pets", 2)["head.weight"], sample_of.tensors(2)["head.weight"])
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM registry_setting")).scalar_one() == 0
    # its weights are in objects/: pointing it at another store now would strand them
    with pytest.raises(InvalidInputError, match=r"already holds 4 weights object\(s\).*a store is chosen at init"):
        Registry.open(home, db_url, store_url="memory://elsewhere/w")
    with Registry.open(home, db_url) as reg:
        assert reg.store_url is None and reg.verify().ok
    engine.dispose()


def test_0005_downgrades_and_upgrades_again(home, db_url, sample_of, tmp_path):
    from alembic import command

    home.mkdir(parents=True)
    store = tmp_path / "store"
    with Registry.open(home, db_url, store_url=f"file://{store}") as reg:
        assert reg.store_url == f"file://{store}" and isinstance(reg.store, LocalObjectStore)
        sample_of(reg).backbone()
        sample_of(reg).add("pets", seed=1)
        assert [p.parent.parent.name for p in reg.store.files()] == ["store"]
    engine = make_engine(db_url or default_url(home))
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    assert "registry_setting" not in sa.inspect(engine).get_table_names()
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()
