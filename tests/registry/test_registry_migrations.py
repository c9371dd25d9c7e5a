"""Alembic: the first revision's schema upgrades to head with data intact; head matches the models."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
import torch
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from forkpoint.registry import Registry
from forkpoint.registry.db import default_url, make_engine
from forkpoint.registry.migrate import current_revision, head_revision, upgrade
from forkpoint.registry.models import SQLModel


@pytest.fixture
def engine(home, db_url):
    home.mkdir(parents=True, exist_ok=True)
    e = make_engine(db_url or default_url(home))
    yield e
    e.dispose()


def test_first_schema_upgrades_to_head_keeping_rows(home, db_url, engine, sample_rows):
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    cols = {c["name"] for c in sa.inspect(engine).get_columns("task_version")}
    assert "run_id" not in cols
    sample_rows(engine)

    with Registry.open(home, db_url) as reg:  # opening upgrades to head
        assert current_revision(engine) == head_revision() == "0002"
        insp = sa.inspect(engine)
        assert "run_id" in {c["name"] for c in insp.get_columns("task_version")}
        assert "ix_audit_event_task" in {i["name"] for i in insp.get_indexes("audit_event")}
        old = reg.show("legacy", 1)
        assert (old.run_id, old.branch_start, old.metrics["val_acc"]) == (None, 9, 0.8)
        assert [e.action for e in reg.history("legacy").events] == ["add_version"]
        new = reg.add_version("legacy", tensors={"head.weight": torch.zeros(3, 16)},
                              **{**_kwargs(), "run_id": "r2"})
        assert (new.version, new.parent_version, new.run_id) == (2, 1, "r2")
        assert reg.verify().problems == ("objects/00/" + "0" * 64 + ".safetensors missing; used by legacy@1",)


def test_models_match_the_migrated_schema(engine):
    upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diffs == []


def test_downgrade_to_base_and_back(engine):
    upgrade(engine)
    from alembic import command

    from forkpoint.registry.migrate import alembic_config

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == "0002"


BLOCKS = [f"blocks.{s}.{i}" for s, n in enumerate([1, 2, 2, 3, 3, 4, 1]) for i in range(n)]


def _kwargs() -> dict:
    from hashlib import sha256

    return dict(
        backbone_fingerprint=sha256(b"lite0-trunk").hexdigest(), class_names=["cat", "dog", "fox"],
        branch={"start": 9, "end": 11, "block_names": BLOCKS[9:12], "siamese": False, "num_classes": 3,
                "feature_dim": 16, "head_shape": [3, 16]},
        metrics={"val_acc": 0.85}, profile=[], config={}, data_md5=None, data_path=None, split_seed=0,
        split_sizes={}, trainable_params=1, total_params=2, extra_cost_pct=1.0,
    )


@pytest.fixture
def sample_rows():
    """Insert one backbone, task, version and audit event with plain SQL against the 0001 schema."""

    def insert(engine: sa.Engine) -> None:
        kw = _kwargs()
        now = datetime.now(timezone.utc)
        md = sa.MetaData()
        md.reflect(engine)
        t = md.tables
        with engine.begin() as c:
            bid = c.execute(t["backbone"].insert().values(
                fingerprint=kw["backbone_fingerprint"], arch="tf_efficientnet_lite0", weights_source="embedded:test",
                num_blocks=16, block_names=BLOCKS, resolution=224, mean=[0.5] * 3, std=[0.5] * 3,
                actor="old@host", created_at=now)).inserted_primary_key[0]
            tid = c.execute(t["task"].insert().values(
                name="legacy", description="", class_names=kw["class_names"], backbone_id=bid, live_version=1,
                actor="old@host", created_at=now, updated_at=now)).inserted_primary_key[0]
            b = kw["branch"]
            c.execute(t["task_version"].insert().values(
                task_id=tid, version=1, status="promoted", parent_version=None, description="", class_names=kw["class_names"],
                branch_start=b["start"], branch_end=b["end"], block_names=b["block_names"], siamese=False,
                num_classes=3, feature_dim=16, head_shape=[3, 16], branch=b, trainable_params=1, total_params=2,
                extra_cost_pct=1.0, weights_sha256="0" * 64, weights_bytes=10, data_md5=None, data_path=None,
                split_seed=0, split_sizes={}, metrics={"val_acc": 0.8}, profile=[], config={}, lib_versions={},
                actor="old@host", created_at=now))
            c.execute(t["audit_event"].insert().values(
                at=now, actor="old@host", action="add_version", target="task:legacy@1", task="legacy", version=1,
                details={"live_after": 1}))

    return insert
