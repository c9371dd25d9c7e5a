"""Tampering, verify (hashes, trunk fingerprint, DVC data md5, orphans) and gc."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from forkpoint.registry import ArtifactCorruptError, ArtifactMissingError
from forkpoint.registry.claims import FLOOR_S


def _flip_one_byte(p: Path, offset: int = -5) -> None:
    os.chmod(p, 0o644)
    data = bytearray(p.read_bytes())
    data[offset] ^= 0x01
    p.write_bytes(bytes(data))


def test_flipped_byte_is_refused_on_load_and_reported_by_verify(reg, ready):
    damaged = ready.add("pets", seed=1)
    other = ready.add("birds", seed=2)
    assert reg.verify().ok
    path = reg.home / damaged.weights_path
    good = path.read_bytes()
    _flip_one_byte(path)

    with pytest.raises(ArtifactCorruptError, match=re.escape(damaged.weights_path)) as e:
        reg.load_tensors("pets")
    assert "refusing to load" in str(e.value) and "pets@1" in str(e.value)
    with pytest.raises(ArtifactCorruptError):
        reg.live()
    assert torch.equal(reg.load_tensors("birds")["head.weight"], ready.tensors(2)["head.weight"])

    report = reg.verify()
    assert not report.ok and len(report.problems) == 1
    assert damaged.weights_path in report.problems[0] and "sha256 mismatch" in report.problems[0]
    assert "pets@1" in report.problems[0]
    assert report.bad_versions == ("pets@1",) and report.orphans == ()
    assert other.weights_path not in " ".join(report.problems)
    event = reg.audit_events(action="verify")[-1]
    assert event.details["ok"] is False and event.details["problems"] == list(report.problems)

    # putting the same bytes again repairs the damaged object in place
    assert reg.store.put(good) == damaged.weights_sha256
    assert reg.verify().ok and torch.equal(reg.load_tensors("pets", 1)["head.weight"], ready.tensors(1)["head.weight"])


def test_missing_file_and_corrupt_trunk(reg, sample):
    sample.backbone(trunk=True)
    v = sample.add("pets")
    (reg.home / v.weights_path).unlink()
    trunk = reg.backbone(sample.fingerprint).trunk_sha256
    _flip_one_byte(reg.store.path(trunk), offset=100)
    with pytest.raises(ArtifactMissingError, match="pets@1"):
        reg.load_tensors("pets")
    with pytest.raises(ArtifactCorruptError, match="trunk of backbone"):
        reg.load_trunk(sample.fingerprint)
    problems = reg.verify().problems
    assert any("missing" in p and "pets@1" in p for p in problems)
    assert any("sha256 mismatch" in p and "trunk of backbone" in p for p in problems)


def test_verify_checks_the_trunk_fingerprint(reg, ready):
    ready.add("pets")
    assert reg.verify(trunk_fingerprint_fn=lambda b: b.fingerprint).ok
    report = reg.verify(trunk_fingerprint_fn=lambda b: "0" * 64)
    assert not report.ok and "trunk fingerprint is now 000000000000" in report.problems[0]

    def broken(_b):
        raise FileNotFoundError("weights file gone")

    assert "cannot recompute fingerprint: weights file gone" in reg.verify(trunk_fingerprint_fn=broken).problems[0]


def test_verify_checks_data_md5_against_dvc(reg, ready, tmp_path):
    from dvc.repo import Repo

    from forkpoint.imagedata import dvc_add, dvc_md5

    repo = tmp_path / "repo"
    data = repo / "data" / "pets"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "1.png").write_bytes(b"\x89PNG fake cat")
    (data / "dog.png").write_bytes(b"\x89PNG fake dog")
    Repo.init(str(repo), no_scm=True).close()
    recorded = dvc_add(data)  # real `dvc add`: writes data/pets.dvc
    assert re.search(r"md5: (\S+)", (repo / "data" / "pets.dvc").read_text()).group(1) == recorded
    assert dvc_md5(data) == recorded  # the data layer's probe agrees with DVC's record

    ready.add("pets", data_md5=recorded, data_path=str(data))
    ready.add("birds", data_md5=None, data_path=None)
    report = reg.verify(dvc_md5_fn=dvc_md5)
    assert report.ok and report.checked_data == 1

    (data / "dog.png").write_bytes(b"\x89PNG a different dog")
    report = reg.verify(dvc_md5_fn=dvc_md5)
    assert not report.ok and report.bad_versions == ("pets@1",)
    assert f"trained on {recorded}" in report.problems[0] and str(data) in report.problems[0]

    import shutil

    shutil.rmtree(data)
    problems = reg.verify(dvc_md5_fn=dvc_md5).problems
    assert len(problems) == 1 and "pets@1: cannot read DVC md5" in problems[0] and "does not exist" in problems[0]


def test_orphans_are_reported_not_problems_and_gc_removes_only_them(reg, ready):
    kept = ready.add("pets")
    orphan_sha = reg.store.put(b"not referenced by any row")
    orphan, orphan_path = reg.store.rel(orphan_sha), reg.store.path(orphan_sha)
    stray_path = orphan_path.parent / ".tmp-crashed-write.safetensors"
    stray_path.write_bytes(b"half a file")
    stray = reg.store.key_of(stray_path)
    report = reg.verify()
    assert report.ok and set(report.orphans) == {orphan, stray}
    assert stray == f"objects/{orphan_sha[:2]}/.tmp-crashed-write.safetensors"

    assert reg.gc() == []  # young files may belong to a write in flight
    old = orphan_path.stat().st_mtime - 3600
    os.utime(orphan_path, (old, old))
    assert reg.gc() == [orphan] and stray_path.exists() and not orphan_path.exists()
    assert reg.gc(min_age_s=0) == []  # the hard floor: never younger than claims.FLOOR_S, whatever min_age says
    old = stray_path.stat().st_mtime - 2 * FLOOR_S
    os.utime(stray_path, (old, old))
    assert reg.gc(min_age_s=0) == [stray]
    assert reg.verify().orphans == () and reg.verify().ok
    assert torch.equal(reg.load_tensors("pets")["head.weight"], ready.tensors(0)["head.weight"])
    assert (reg.home / kept.weights_path).exists()
    gcs = reg.audit_events(action="gc")
    assert [len(e.details["deleted"]) for e in gcs] == [0, 1, 0, 1]
    assert [e.details["dry_run"] for e in gcs] == [False, False, False, False]
    assert {e.details["floor_s"] for e in gcs} == {FLOOR_S}


def test_gc_dry_run_lists_what_it_would_delete_and_deletes_nothing(reg, ready):
    kept = ready.add("pets")
    orphan_sha = reg.store.put(b"not referenced by any row")
    orphan = reg.store.rel(orphan_sha)
    assert reg.gc(min_age_s=0, dry_run=True) == []  # younger than the floor
    ready.age_store(2 * FLOOR_S)
    before = ready.snapshot()

    assert reg.gc(min_age_s=0, dry_run=True) == [orphan]
    assert reg.store.exists(orphan_sha) and reg.store.files() == list(before[1])
    assert reg.verify().orphans == (orphan,)
    event = reg.audit_events(action="gc")[-1]
    assert event.details["dry_run"] is True and event.details["would_delete"] == [orphan]
    assert event.details["deleted"] == [] and event.details["bytes_freed"] == 0

    assert reg.gc(min_age_s=0) == [orphan] and not reg.store.exists(orphan_sha)  # the real run deletes exactly that
    assert reg.gc(min_age_s=0, dry_run=True) == [] and reg.store.exists(kept.weights_sha256)
