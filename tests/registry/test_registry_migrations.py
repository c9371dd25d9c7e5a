"""Alembic: older schemas upgrade to head in place with data intact (0003: one half-open branch); head matches the models."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
import torch
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from forkpoint.contract import BranchSpec, VersionDraft
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
        assert current_revision(engine) == head_revision()
        insp = sa.inspect(engine)
        assert "run_id" in {c["name"] for c in insp.get_columns("task_version")}
        assert "ix_audit_event_task" in {i["name"] for i in insp.get_indexes("audit_event")}
        old = reg.show("legacy", 1)
        assert (old.run_id, old.branch_start, old.branch_stop, old.metrics["val_acc"]) == (None, 9, 12, 0.8)
        assert [e.action for e in reg.history("legacy").events] == ["add_version"]
        new = reg.add_version("legacy", _draft(run_id="r2"))
        assert (new.version, new.parent_version, new.run_id) == (2, 1, "r2")
        assert reg.diff("legacy", 1, 2).changes.keys().isdisjoint({"branch.start", "branch.stop", "branch.block_names"})
        assert reg.verify().problems == ("objects/00/" + "0" * 64 + ".safetensors missing; used by legacy@1, probe@1, twin@1",)


def test_0002_rows_are_rewritten_to_one_half_open_branch(home, db_url, engine, sample_rows):
    """0003 in place on a populated 0002 database: the branch JSON becomes the contract's form, the columns go."""
    upgrade(engine, "0002")
    sample_rows(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    cols = {c["name"] for c in sa.inspect(engine).get_columns("task_version")}
    assert cols.isdisjoint(DUPLICATED) and "branch" in cols
    with engine.connect() as c:  # the stored JSON itself, not a view of it
        stored = {r.version: r.branch for r in c.execute(sa.text(
            "SELECT v.version, v.branch FROM task_version v JOIN task t ON t.id = v.task_id ORDER BY t.name"))}

    with Registry.open(home, db_url) as reg:
        legacy, probe, twin = reg.show("legacy", 1), reg.show("probe", 1), reg.show("twin", 1)
        assert legacy.spec == BranchSpec(9, 12, 3, 16) and legacy.block_names == tuple(BLOCKS[9:12])
        assert legacy.branch == {"start": 9, "stop": 12, "num_classes": 3, "feature_dim": 16, "siamese": False,
                                 "block_names": BLOCKS[9:12], "head_shape": [3, 16]}
        assert probe.spec == BranchSpec(16, 16, 3, 16) and probe.spec.is_probe  # was start=16, end=15
        assert (probe.branch_start, probe.branch_stop, probe.block_names) == (16, 16, ())
        assert twin.spec == BranchSpec(15, 16, 3, 16, siamese=True) and twin.head_shape == (3, 32)
        assert (legacy.run_id, probe.run_id) == ("run-a", None)
        assert all("end" not in json.loads(b) if isinstance(b, str) else "end" not in b for b in stored.values())
        # the rewritten rows are what the current code writes: a new version of the same branch diffs clean
        new = reg.add_version("probe", _draft(spec=BranchSpec(16, 16, 3, 16)))
        assert new.branch == probe.branch and not any(k.startswith("branch.") for k in reg.diff("probe", 1, 2).changes)

    _downgrade(engine, "0002")  # and back: the columns return with 0002's inclusive end
    with engine.connect() as c:
        rows = {r.name: r for r in c.execute(sa.text(
            "SELECT t.name, v.branch_start, v.branch_end, v.siamese, v.head_shape FROM task_version v "
            "JOIN task t ON t.id = v.task_id WHERE v.version = 1"))}
    assert (rows["legacy"].branch_start, rows["legacy"].branch_end) == (9, 11)
    assert (rows["probe"].branch_start, rows["probe"].branch_end) == (16, 15)
    assert (rows["twin"].branch_start, rows["twin"].branch_end, bool(rows["twin"].siamese)) == (15, 15, True)
    upgrade(engine)
    assert current_revision(engine) == head_revision()


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
    assert current_revision(engine) == head_revision()


def _downgrade(engine: sa.Engine, target: str) -> None:
    from alembic import command

    from forkpoint.registry.migrate import alembic_config

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)


BLOCKS = [f"blocks.{s}.{i}" for s, n in enumerate([1, 2, 2, 3, 3, 4, 1]) for i in range(n)]
FINGERPRINT = hashlib.sha256(b"lite0-trunk").hexdigest()
DUPLICATED = ("branch_start", "branch_end", "block_names", "siamese", "num_classes", "feature_dim", "head_shape")


def _draft(spec: BranchSpec = BranchSpec(9, 12, 3, 16), **over) -> VersionDraft:
    head = torch.zeros(*spec.head_shape)
    return VersionDraft(backbone_fingerprint=FINGERPRINT, class_names=("cat", "dog", "fox"), spec=spec,
                        block_names=tuple(BLOCKS), tensors={"head.weight": head}, metrics={"val_acc": 0.85},
                        trainable_params=1, total_params=2, extra_cost_pct=1.0, **over)


# Rows as releases before 0003 wrote them: inclusive ``end`` in the columns and in the JSON as sent,
# a head-only branch as start=n, end=n-1.
LEGACY_VERSIONS = {
    "legacy": dict(branch_start=9, branch_end=11, block_names=BLOCKS[9:12], siamese=False, head_shape=[3, 16],
                   branch={"start": 9, "end": 11, "block_names": BLOCKS[9:12], "siamese": False, "num_classes": 3,
                           "feature_dim": 16, "head_shape": [3, 16]}, run_id="run-a"),
    "probe": dict(branch_start=16, branch_end=15, block_names=[], siamese=False, head_shape=[3, 16],
                  branch={"start": 16, "stop": 16, "end": 15, "block_names": [], "siamese": False, "num_classes": 3,
                          "feature_dim": 16, "head_shape": [3, 16]}),
    "twin": dict(branch_start=15, branch_end=15, block_names=BLOCKS[15:], siamese=True, head_shape=[3, 32],
                 branch={"start": 15, "end": 15, "block_names": BLOCKS[15:], "siamese": True, "num_classes": 3,
                         "feature_dim": 16, "head_shape": [3, 32], "note": "extra keys were stored as given"}),
}


@pytest.fixture
def sample_rows():
    """Insert one backbone and, per LEGACY_VERSIONS entry, a task, its v1 and its audit event, with plain SQL
    against the current pre-0003 schema (0001 has no run_id column)."""

    def insert(engine: sa.Engine) -> None:
        now = datetime.now(timezone.utc)
        md = sa.MetaData()
        md.reflect(engine)
        t = md.tables
        with engine.begin() as c:
            bid = c.execute(t["backbone"].insert().values(
                fingerprint=FINGERPRINT, arch="tf_efficientnet_lite0", weights_source="embedded:test",
                num_blocks=16, block_names=BLOCKS, resolution=224, mean=[0.5] * 3, std=[0.5] * 3,
                actor="old@host", created_at=now)).inserted_primary_key[0]
            for name, version in LEGACY_VERSIONS.items():
                version = dict(version)
                run_id = version.pop("run_id", None)
                tid = c.execute(t["task"].insert().values(
                    name=name, description="", class_names=["cat", "dog", "fox"], backbone_id=bid, live_version=1,
                    actor="old@host", created_at=now, updated_at=now)).inserted_primary_key[0]
                c.execute(t["task_version"].insert().values(
                    task_id=tid, version=1, status="promoted", parent_version=None, description="",
                    class_names=["cat", "dog", "fox"], num_classes=3, feature_dim=16, **version,
                    trainable_params=1, total_params=2, extra_cost_pct=1.0, weights_sha256="0" * 64, weights_bytes=10,
                    data_md5=None, data_path=None, split_seed=0, split_sizes={}, metrics={"val_acc": 0.8}, profile=[],
                    config={}, lib_versions={}, actor="old@host", created_at=now,
                    **({"run_id": run_id} if "run_id" in t["task_version"].c else {})))
                c.execute(t["audit_event"].insert().values(
                    at=now, actor="old@host", action="add_version", target=f"task:{name}@1", task=name, version=1,
                    details={"live_after": 1}))

    return insert
