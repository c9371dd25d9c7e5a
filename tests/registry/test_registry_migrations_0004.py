"""0004 on a populated 0003 registry: every row sealed, the log chained, versions insert-only, all still served."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import torch

from forkpoint.registry import Registry, TamperedError, digest
from forkpoint.registry.codec import encode
from forkpoint.registry.db import default_url, make_engine
from forkpoint.registry.migrate import current_revision, head_revision, upgrade
from forkpoint.registry.store import LocalObjectStore

BLOCKS = [f"blocks.{s}.{i}" for s, n in enumerate([1, 2, 2, 3, 3, 4, 1]) for i in range(n)]
FINGERPRINT = hashlib.sha256(b"lite0-trunk").hexdigest()
CLASSES = ["cat", "dog", "fox"]
BRANCH = {"start": 9, "stop": 12, "num_classes": 3, "feature_dim": 16, "siamese": False,
          "block_names": BLOCKS[9:12], "head_shape": [3, 16]}


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"blocks.0.conv.weight": torch.randn(8, 4, 3, 3, generator=g), "head.weight": torch.randn(3, 16, generator=g)}


def _populate_0003(engine: sa.Engine, home) -> None:
    """What a 0003 release wrote: pets v1, v2 then rolled back to v1; birds v1; a verify. Files without names."""
    store = LocalObjectStore(home / "objects")
    md = sa.MetaData()
    md.reflect(engine)
    t = md.tables
    start = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    clock = iter(start + timedelta(seconds=i) for i in range(100))
    with engine.begin() as c:
        def event(action: str, target: str, task: str | None = None, version: int | None = None, **details) -> None:
            c.execute(t["audit_event"].insert().values(at=next(clock), actor="old@host", action=action, target=target,
                                                       task=task, version=version, details=details))

        bid = c.execute(t["backbone"].insert().values(
            fingerprint=FINGERPRINT, arch="tf_efficientnet_lite0", weights_source="embedded:test", num_blocks=16,
            block_names=BLOCKS, resolution=224, mean=[0.5] * 3, std=[0.5] * 3, actor="old@host",
            created_at=next(clock))).inserted_primary_key[0]
        event("register_backbone", f"backbone:{FINGERPRINT}", arch="tf_efficientnet_lite0", trunk_sha256=None)
        for name, versions, live in (("pets", (1, 2), 1), ("birds", (1,), 1)):
            tid = c.execute(t["task"].insert().values(
                name=name, description="", class_names=CLASSES, backbone_id=bid, live_version=live, actor="old@host",
                created_at=next(clock), updated_at=next(clock))).inserted_primary_key[0]
            for v in versions:
                data = encode(_tensors(10 * len(name) + v))
                sha = store.put(data)
                c.execute(t["task_version"].insert().values(
                    task_id=tid, version=v, status="promoted", parent_version=v - 1 or None, description="",
                    class_names=CLASSES, branch=BRANCH, trainable_params=1, total_params=2, extra_cost_pct=1.0,
                    weights_sha256=sha, weights_bytes=len(data), data_md5="abc.dir", data_path=None, split_seed=0,
                    split_sizes={}, metrics={"val_acc": 0.8}, profile=[], config={"lr": 0.01}, lib_versions={},
                    run_id=None, actor="old@host", created_at=next(clock)))
                event("add_version", f"task:{name}@{v}", name, v, weights_sha256=sha, live_before=v - 1 or None, live_after=v)
            if name == "pets":
                event("rollback", "task:pets@1", "pets", 1, live_before=2, live_after=1)
        event("verify", "registry", ok=True, problems=[], ratio=0.1)


@pytest.mark.parametrize("key", [None, "operators-secret"])
def test_0003_registry_upgrades_to_sealed_and_chained(home, db_url, key, monkeypatch):
    if key:
        monkeypatch.setenv(digest.KEY_ENV, key)
    home.mkdir(parents=True)
    engine = make_engine(db_url or default_url(home))
    upgrade(engine, "0003")
    _populate_0003(engine, home)

    with Registry.open(home, db_url) as reg:
        assert current_revision(engine) == head_revision()
        report = reg.verify()
        assert report.ok, report.problems
        assert report.chain_head.startswith("hmac-sha256:" if key else "sha256:")
        with engine.connect() as c:
            seals = c.execute(sa.text("SELECT row_digest FROM task_version")).scalars().all()
            chained = c.execute(sa.text("SELECT prev_hash, event_hash FROM audit_event ORDER BY id")).all()
        assert len(seals) == 3 and all(s.startswith("hmac-sha256:" if key else "sha256:") for s in seals)
        assert chained[0].prev_hash == "genesis" and all(b.prev_hash == a.event_hash for a, b in zip(chained, chained[1:]))

        # still served: legacy files carry no names and are accepted as they are
        assert [(r.task, r.version) for r, _ in reg.live()] == [("pets", 1), ("birds", 1)]
        assert torch.equal(reg.load_tensors("pets", 2)["head.weight"], _tensors(42)["head.weight"])
        from forkpoint.workflows.render import task_summary  # what `forkpoint tasks` shows comes from the branch JSON

        pets = task_summary(reg.get_task("pets"), reg.show("pets"))
        assert pets["branch"] == {"start": 9, "stop": 12, "block_names": BLOCKS[9:12]}

        # versions are insert-only now, and a migrated row is as tamper-evident as a new one
        with pytest.raises(sa.exc.DBAPIError, match="insert-only"):
            with engine.begin() as c:
                c.execute(sa.text("UPDATE task_version SET data_md5 = 'x'"))
        new = reg.add_version("pets", _draft(), expect_live=1)
        assert (new.version, new.live) == (3, True) and reg.verify().ok
        if key:
            monkeypatch.delenv(digest.KEY_ENV)
            assert any("sealed with an audit key, which is not set" in p for p in reg.verify().problems)
            with pytest.raises(TamperedError, match=digest.KEY_ENV):
                reg.load_tensors("birds")
    engine.dispose()


def _draft():
    from forkpoint.contract import BranchSpec, VersionDraft

    return VersionDraft(backbone_fingerprint=FINGERPRINT, class_names=tuple(CLASSES), spec=BranchSpec(9, 12, 3, 16),
                        block_names=tuple(BLOCKS), tensors=_tensors(99), trainable_params=1, total_params=2)


def test_0004_downgrades_and_upgrades_again(home, db_url):
    from alembic import command

    from forkpoint.registry.migrate import alembic_config

    home.mkdir(parents=True)
    engine = make_engine(db_url or default_url(home))
    upgrade(engine, "0003")
    _populate_0003(engine, home)
    upgrade(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    insp = sa.inspect(engine)
    assert "object_claim" not in insp.get_table_names()
    assert "row_digest" not in {c["name"] for c in insp.get_columns("task_version")}
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):  # 0003's log is still append-only
        with engine.begin() as c:
            c.execute(sa.text("DELETE FROM audit_event"))
    upgrade(engine)
    with Registry.open(home, db_url) as reg:
        assert reg.verify().ok and len(reg.live()) == 2
    engine.dispose()
