"""The head in a real home: two orders give the same head, adding a task moves no branch, files are checked."""

from __future__ import annotations

import torch

from forkpoint.registry import ArtifactCorruptError
from forkpoint.registry.heads import head_versions
from forkpoint.learner.agnostic import METHOD
from forkpoint.workflows import load_live_model
from forkpoint.workflows.agnostic import load_head, predict_any
from forkpoint.workflows.samples import write_samples

import pytest


def _by_class(loaded) -> dict[tuple[str, str], torch.Tensor]:
    return {(t, loaded.label(t, j)): loaded.head.weights[:, i] for i, (t, j) in enumerate(loaded.head.classes)}


def test_two_orders_give_the_same_head(homes):
    a, b = load_head(homes.ab), load_head(homes.ba)
    assert [m.task for m in a.record.members] == ["digits", "mnist"] and [m.task for m in b.record.members] == ["mnist", "digits"]
    assert a.record.config["lambda"] == b.record.config["lambda"]
    wa, wb = _by_class(a), _by_class(b)
    assert wa.keys() == wb.keys() and len(wa) == 20
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-9, atol=1e-12)
    # the same statistics objects (content-addressed): each task's contribution came from its own images only
    assert {m.task: m.stats_sha256 for m in a.record.members} == {m.task: m.stats_sha256 for m in b.record.members}


def test_adding_a_task_leaves_every_branch_bit_identical(homes, test_inputs):
    after = homes.ab.registry.load_tensors("digits")
    assert after.keys() == homes.digits_before.keys()
    assert all(torch.equal(after[k], homes.digits_before[k]) for k in after)
    x = test_inputs(homes.ab, homes.data["digits"])
    logits = load_live_model(homes.ab).model(x, tasks=["digits"])["digits"]
    assert torch.equal(logits, homes.logits_before)
    versions = head_versions(homes.ab.registry, homes.ab.fingerprint, METHOD)  # v1 is kept as it was: digits only
    assert [v.version for v in versions] == [1, 2] and versions[0].tasks == {"digits": 1}
    assert versions[1].members[0] == versions[0].members[0]  # digits' statistics reused, not recomputed


def test_predict_any_answers_task_and_label(homes, data_root, tmp_path):
    paths = [*write_samples("digits", tmp_path / "d", data_root=data_root, per_class=1),
             *write_samples("mnist", tmp_path / "m", data_root=data_root, per_class=1)]
    answers = predict_any(homes.ab, paths)
    assert len(answers) == 20 and {a.task for a in answers} <= {"digits", "mnist"}
    names = {"digits": homes.data["digits"].class_names, "mnist": homes.data["mnist"].class_names}
    assert all(a.label in names[a.task] and a.ncm["label"] in names[a.ncm["task"]] for a in answers)
    right_task = sum(a.task == ("digits" if "/d/" in a.path else "mnist") for a in answers)
    assert right_task >= 14  # the two domains look nothing alike to the trunk (5 images per class fitted)


def test_gc_keeps_and_verify_checks_the_statistics(homes):
    reg = homes.ab.registry
    assert reg.gc(min_age_s=0, dry_run=True) == []
    report = reg.verify()
    assert report.ok and report.orphans == ()
    member = load_head(homes.ab).record.members[1]
    path = reg.store.path(member.stats_sha256) if hasattr(reg.store, "path") else None
    assert path is not None and path.is_file()
    saved = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(saved[:-8] + b"\0" * 8)  # a planted corruption: the head refuses to load
    try:
        with pytest.raises(ArtifactCorruptError):
            load_head(homes.ab)
        assert any("agnostic head statistics of mnist@1" in p for p in reg.verify().problems)
    finally:
        path.write_bytes(saved)
    assert reg.verify().ok
