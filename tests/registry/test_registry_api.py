"""The registry's operations, end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest
import sqlalchemy as sa
import torch

from forkpoint.registry import BackboneMismatchError, InvalidInputError, Registry, UnknownVersionError


def test_register_backbone_is_idempotent_and_stores_the_trunk(reg, sample):
    first = sample.backbone(trunk=False)
    assert first.num_blocks == 16 and first.block_names[9] == "blocks.4.1" and first.trunk_sha256 is None
    assert sample.backbone() == first  # same call again: same record, nothing new logged
    trunk = {"conv_stem.weight": torch.randn(32, 3, 3, 3), "bn1.running_var": torch.rand(32)}
    attached = reg.register_backbone("tf_efficientnet_lite0", "embedded:test", sample.fingerprint, sample.blocks,
                                     224, [0.5] * 3, [0.5] * 3, trunk_tensors=trunk)
    assert attached.trunk_sha256 and attached.trunk_bytes == reg.store.path(attached.trunk_sha256).stat().st_size
    loaded = reg.load_trunk(sample.fingerprint)
    assert loaded is not None and all(torch.equal(loaded[k], trunk[k]) for k in trunk)
    assert [e.action for e in reg.audit_events()] == ["register_backbone", "attach_trunk"]
    with pytest.raises(BackboneMismatchError, match="different settings"):
        reg.register_backbone("tf_efficientnet_lite0", "x", sample.fingerprint, sample.blocks, 260, [0.5] * 3, [0.5] * 3)
    with pytest.raises(BackboneMismatchError, match="different tensors"):
        reg.register_backbone("tf_efficientnet_lite0", "x", sample.fingerprint, sample.blocks, 224, [0.5] * 3,
                              [0.5] * 3, trunk_tensors={"other": torch.ones(2)})
    assert [b.fingerprint for b in reg.backbones()] == [sample.fingerprint]


def test_add_version_records_everything_and_loads_back(reg, ready):
    tensors = ready.tensors(7)
    v1 = ready.add("pets", tensors=tensors, run_id="run-2024-01")
    assert (v1.task, v1.version, v1.live, v1.status, v1.parent_version) == ("pets", 1, True, "promoted", None)
    assert (v1.branch_start, v1.branch_stop, v1.block_names) == (9, 12, ("blocks.4.1", "blocks.4.2", "blocks.5.0"))
    assert v1.spec == ready.spec() and v1.units.human() == "9:11"
    assert v1.branch == {"start": 9, "stop": 12, "num_classes": 3, "feature_dim": 16, "siamese": False,
                         "block_names": ["blocks.4.1", "blocks.4.2", "blocks.5.0"], "head_shape": [3, 16]}
    assert v1.head_shape == (3, 16) and v1.siamese is False and v1.class_names == ("cat", "dog", "fox")
    assert v1.data_md5.endswith(".dir") and v1.split_sizes == {"train": 80, "val": 10, "test": 10}
    assert v1.metrics["per_class"]["dog"] == 0.85 and v1.profile[1]["start"] == 12 and v1.config["lr"] == 0.01
    assert set(v1.lib_versions) >= {"torch", "timm", "forkpoint"} and v1.lib_versions["torch"].startswith("2.")
    assert "@" in v1.actor and v1.run_id == "run-2024-01" and v1.created_at.tzinfo is not None
    assert v1.weights_path == f"objects/{v1.weights_sha256[:2]}/{v1.weights_sha256}.safetensors"
    assert (reg.home / v1.weights_path).stat().st_size == v1.weights_bytes

    back = reg.load_tensors("pets")
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
    assert back["blocks.0.bn.num_batches_tracked"].dtype == torch.int64

    v2 = ready.add("pets", seed=8, promote=False)
    v3 = ready.add("pets", seed=9)
    assert (v2.version, v2.live, v2.status, v2.parent_version) == (2, False, "staged", 1)
    assert (v3.version, v3.parent_version) == (3, 1)  # parent = the live version when it was added
    assert reg.show("pets").version == 3 and reg.show("pets", 2).to_dict() == {**v2.to_dict()}
    task = reg.get_task("pets")
    assert (task.live_version, task.latest_version, task.num_versions) == (3, 3, 3)
    json.dumps([v.to_dict() for v in reg.versions("pets")] + [task.to_dict()])  # --json must work


def test_promote_and_rollback_move_only_the_live_pointer(reg, ready):
    for seed in range(4):
        ready.add("pets", seed=seed, promote=seed != 2)  # v3 is staged, never live
    before = [v.to_dict() for v in reg.versions("pets")]
    assert reg.get_task("pets").live_version == 4

    assert reg.rollback("pets").version == 2  # skips staged v3
    assert reg.rollback("pets").version == 1
    with pytest.raises(UnknownVersionError, match="older than live v1"):
        reg.rollback("pets")
    with pytest.raises(InvalidInputError, match="use promote"):
        reg.rollback("pets", to=3)
    assert reg.promote("pets", 3).live is True
    assert reg.rollback("pets", to=1).version == 1
    assert torch.equal(reg.load_tensors("pets")["head.weight"], ready.tensors(0)["head.weight"])

    after = [{**v.to_dict(), "live": False} for v in reg.versions("pets")]
    assert after == [{**v, "live": False} for v in before]  # versions themselves untouched
    moves = [(e.action, e.details["live_before"], e.details["live_after"]) for e in reg.audit_events(task="pets")
             if e.action != "add_version"]
    assert moves == [("rollback", 4, 2), ("rollback", 2, 1), ("promote", 1, 3), ("rollback", 3, 1)]


def test_history_diff_and_audit_trail(reg, ready):
    ready.add("pets", seed=0)
    ready.add("pets", seed=1, spec=ready.spec(12, 15), data_md5="ffffffffffffffffffffffffffffffff.dir",
              metrics={"val_acc": 0.93, "test_acc": 0.9, "per_class": {"cat": 0.95, "dog": 0.85, "fox": 0.89}},
              config={"lr": 0.003, "epochs": 3, "seed": 1})
    reg.promote("pets", 1, actor="alice@lab")
    hist = reg.history("pets")
    assert [v.version for v in hist.versions] == [1, 2] and hist.task.live_version == 1
    assert [(e.action, e.version) for e in hist.events] == [("add_version", 1), ("add_version", 2), ("promote", 1)]
    assert hist.events[-1].actor == "alice@lab" and hist.events[0].details["weights_sha256"] == hist.versions[0].weights_sha256
    json.dumps(hist.to_dict())

    d = reg.diff("pets", 1, 2)
    assert d.changes["branch.start"] == (9, 12) and d.changes["branch.stop"] == (12, 15)
    assert d.changes["branch.block_names"][1] == ["blocks.5.1", "blocks.5.2", "blocks.5.3"]
    assert "branch.num_classes" not in d.changes and "branch.head_shape" not in d.changes
    assert d.changes["metrics.val_acc"] == (0.9, 0.93) and d.changes["metrics.per_class.cat"] == (0.9, 0.95)
    assert "metrics.per_class.dog" not in d.changes
    assert d.changes["config.lr"] == (0.01, 0.003) and d.changes["data_md5"][1].startswith("ffff")
    assert "data_path" not in d.changes and reg.diff("pets", 2, 2).same
    assert [e.action for e in reg.audit_events()] == ["register_backbone", "add_version", "add_version", "promote"]
    assert [e.action for e in reg.audit_events(limit=2)] == ["add_version", "promote"]
    assert [e.version for e in reg.audit_events(action="add_version")] == [1, 2]
    second = reg.audit_events()[2]
    later = [e.id for e in reg.audit_events(since=second.at.astimezone(timezone(timedelta(hours=-5))))]
    assert later == [second.id, second.id + 1]  # any zone works: times are compared in UTC


def test_live_returns_what_rebuilds_the_multitask_model(reg, ready):
    ready.add("pets", seed=1)
    ready.add("pets", seed=2)
    reg.promote("pets", 1)
    ready.add("birds", seed=3, class_names=["owl", "tit", "jay", "emu"], spec=ready.spec(3, 6, n_classes=4),
              tensors=ready.tensors(3, n_classes=4))
    ready.add("staged-only", seed=4, promote=False)
    ready.backbone(fingerprint=ready.other_fingerprint)
    ready.add("elsewhere", seed=5, backbone_fingerprint=ready.other_fingerprint)

    live = reg.live(backbone_fingerprint=ready.fingerprint)
    assert [(r.task, r.version) for r, _ in live] == [("pets", 1), ("birds", 1)]
    assert torch.equal(live[0][1]["head.weight"], ready.tensors(1)["head.weight"])
    assert live[1][1]["head.weight"].shape == (4, 16) and live[1][0].branch["start"] == 3
    assert [r.task for r, _ in reg.live()] == ["pets", "birds", "elsewhere"]
    assert [(t.name, t.live_version, t.num_versions) for t in reg.list_tasks()] == [
        ("birds", 1, 1), ("elsewhere", 1, 1), ("pets", 1, 2), ("staged-only", None, 1)]


def test_each_weights_file_names_its_version(reg, ready):
    """Identical tensors under two versions are two files: each names its task, version, branch and classes."""
    from forkpoint.registry.branchfile import read_names

    a = ready.add("pets", seed=5)
    b = ready.add("pets-copy", seed=5)
    assert a.weights_sha256 != b.weights_sha256 and len(reg.store.files()) == 2
    assert torch.equal(reg.load_tensors("pets")["head.weight"], reg.load_tensors("pets-copy")["head.weight"])
    names = read_names((reg.home / b.weights_path).read_bytes())
    assert names == {"task": "pets-copy", "version": 1, "branch": b.branch, "class_names": list(b.class_names)}
    assert b.weights_sha256 == ready.file_digest("pets-copy", 1, 5)  # the same bytes every time


def test_audit_log_refuses_update_and_delete(reg, ready):
    ready.add("pets")
    for sql in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with reg.engine.begin() as c:
                c.execute(sa.text(sql))
    assert {e.actor for e in reg.audit_events()} != {"mallory"} and len(reg.audit_events()) == 2


def test_reopening_keeps_everything(home, db_url, reg, ready):
    v = ready.add("pets")
    reg.close()
    with Registry.open(home, db_url) as again:
        assert again.show("pets") == v
        assert (home / "registry.db").exists() == (db_url is None)


def test_weights_live_wherever_the_store_says(home, db_url, sample, tmp_path):
    """The registry writes and reads weights only through its WeightStore."""
    from forkpoint.registry.store import LocalObjectStore, WeightStore

    elsewhere = LocalObjectStore(tmp_path / "shared-weights" / "objects")
    with Registry.open(home, db_url, store=elsewhere) as reg:
        assert isinstance(reg.store, WeightStore) and reg.store is elsewhere
        sample = type(sample)(reg)
        sample.backbone()
        v = sample.add("pets", seed=3)
        assert elsewhere.exists(v.weights_sha256) and not (home / "objects").exists()
        assert list(elsewhere.keys()) == [v.weights_path] and elsewhere.digest_of(v.weights_path) == v.weights_sha256
        assert torch.equal(reg.load_tensors("pets")["head.weight"], sample.tensors(3)["head.weight"])
        assert reg.verify().ok
