"""Edits made behind the registry's back that change what is served: verify reports each, loading refuses.

Each case is what someone with database write access could do: lift the insert-only
triggers, change a row (re-sealing it with the public algorithm where that helps them),
and put the triggers back. Without ``FORKPOINT_AUDIT_KEY`` a complete rewrite (row, its
add event, the chain after it) is not detectable; with the key it is.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from forkpoint.registry import TamperedError, chain, digest
from forkpoint.registry.evidence import seal_version
from forkpoint.registry.models import AuditEvent, Task, TaskVersion


@contextmanager
def behind_the_registry(reg, restore: bool = True) -> Iterator[Session]:
    """A session with the insert-only triggers lifted (put back on exit unless ``restore`` is False)."""
    with reg.engine.begin() as c:
        pg = c.dialect.name == "postgresql"
        if pg:
            for table in ("task_version", "audit_event", "registry_setting", "reference_output", "head_stats", "agnostic_head"):
                c.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            saved = c.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
            for name, _ in saved:
                c.execute(sa.text(f"DROP TRIGGER {name}"))
        with Session(bind=c) as s:
            yield s
            s.flush()
        if restore:
            if pg:
                for table in ("task_version", "audit_event", "registry_setting", "reference_output", "head_stats", "agnostic_head"):
                    c.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            else:
                for _, sql in saved:
                    c.execute(sa.text(sql))


def _row(s: Session, task: str, version: int) -> tuple[TaskVersion, Task]:
    t = s.exec(select(Task).where(Task.name == task)).one()
    return s.exec(select(TaskVersion).where(TaskVersion.task_id == t.id, TaskVersion.version == version)).one(), t


def _edit(reg, task: str, version: int, reseal: bool, **changes: Any) -> None:
    """Change a version row; with ``reseal`` recompute its seal the way the code does (no key)."""
    fp = reg.backbone(reg.get_task(task).backbone_fingerprint).fingerprint
    with behind_the_registry(reg) as s:
        row, _ = _row(s, task, version)
        for k, v in changes.items():
            setattr(row, k, v)
        if reseal:
            row.row_digest = digest.seal(digest.version_payload(task, row.version, fp, row.branch, row.class_names,
                                                                row.weights_sha256, row.data_md5, row.config), b"")
        s.add(row)


def _rewrite_history(reg, task: str, version: int, **changes: Any) -> None:
    """The complete forgery: edit and re-seal the row, re-record its add event, re-chain every later event."""
    _edit(reg, task, version, reseal=True, **changes)
    with behind_the_registry(reg) as s:
        row, _ = _row(s, task, version)
        events = s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
        start = next(i for i, e in enumerate(events) if e.action == "add_version" and (e.task, e.version) == (task, version))
        events[start].details = {**events[start].details, "weights_sha256": row.weights_sha256, "row_digest": row.row_digest}
        prev = events[start - 1].event_hash if start else chain.GENESIS
        for e in events[start:]:
            e.prev_hash = prev
            e.event_hash = prev = digest.seal(chain.payload(e), b"")
            s.add(e)
            s.flush()


def _two_versions_and_a_twin(ready) -> None:
    ready.add("pets", seed=1)
    ready.add("pets", seed=2)  # live: v2
    ready.add("birds", seed=3)  # same shapes, other task


def _refused(reg, task: str = "pets", match: str = "refusing") -> str:
    with pytest.raises(TamperedError, match=match) as e:
        reg.live()
    with pytest.raises(TamperedError):
        reg.load_tensors(task)
    assert "\n" not in str(e.value) and e.value.exit_code == 1
    return str(e.value)


def test_a_version_pointed_at_its_own_older_weights(reg, ready):
    _two_versions_and_a_twin(ready)
    old = reg.show("pets", 1).weights_sha256
    _edit(reg, "pets", 2, reseal=False, weights_sha256=old)
    report = reg.verify()
    assert not report.ok and "pets@2" in report.bad_versions
    assert any("pets@2: version row does not match its seal" in p for p in report.problems)
    assert "pets@2" in _refused(reg)

    _edit(reg, "pets", 2, reseal=True, weights_sha256=old)  # re-sealed: the add event and the file's names still disagree
    problems = reg.verify().problems
    assert any("pets@2: points at weights" in p for p in problems)
    assert any("written for pets@1 and differs in version" in p for p in problems)
    _refused(reg)


def test_a_version_pointed_at_another_tasks_same_shape_weights(reg, ready):
    _two_versions_and_a_twin(ready)
    _rewrite_history(reg, "pets", 2, weights_sha256=reg.show("birds").weights_sha256)  # even the log agrees
    report = reg.verify()
    assert not report.ok and report.bad_versions == ("pets@2",)
    assert report.problems == (
        "pets@2: its weights file was written for birds@1 and differs in task, version",)
    assert "written for birds@1" in _refused(reg)


def test_a_branch_moved_consistently_to_other_blocks(reg, ready):
    _two_versions_and_a_twin(ready)
    branch = dict(reg.show("pets").branch)
    moved = {**branch, "start": branch["start"] + 1, "stop": branch["stop"] + 1,
             "block_names": ready.blocks[branch["start"] + 1:branch["stop"] + 1]}
    _edit(reg, "pets", 2, reseal=False, branch=moved)
    assert any("pets@2: version row does not match its seal" in p for p in reg.verify().problems)
    _refused(reg)
    _rewrite_history(reg, "pets", 2, branch=moved)
    assert reg.verify().problems == ("pets@2: its weights file was written for pets@2 and differs in branch",)
    assert "differs in branch" in _refused(reg)


def test_class_names_swapped(reg, ready):
    _two_versions_and_a_twin(ready)
    swapped = ["dog", "cat", "fox"]
    with behind_the_registry(reg) as s:
        _, t = _row(s, "pets", 2)
        t.class_names = swapped
        s.add(t)
    _edit(reg, "pets", 2, reseal=False, class_names=swapped)
    assert any("pets@2: version row does not match its seal" in p for p in reg.verify().problems)
    _refused(reg)
    _rewrite_history(reg, "pets", 2, class_names=swapped)
    problems = reg.verify().problems
    assert any("differs in class_names" in p for p in problems)
    assert any("pets@1: task 'pets' has classes ['dog', 'cat', 'fox']" in p for p in problems)
    assert "differs in class_names" in _refused(reg)


def test_triggers_dropped_and_audit_events_deleted(reg, ready):
    _two_versions_and_a_twin(ready)
    with behind_the_registry(reg, restore=False) as s:
        for e in s.exec(select(AuditEvent).where(AuditEvent.task == "pets", AuditEvent.version == 2)).all():
            s.delete(e)
    problems = reg.verify().problems
    assert any("insert-only trigger" in p and "missing or disabled" in p for p in problems)
    assert any("does not follow the event before it" in p for p in problems)
    assert any("pets@2: has no add_version audit event" in p for p in problems)
    assert "triggers" in _refused(reg) and "restore them" in _refused(reg)


def test_the_live_pointer_moved_outside_the_registry(reg, ready):
    _two_versions_and_a_twin(ready)
    with reg.engine.begin() as c:
        c.execute(sa.text("UPDATE task SET live_version = 1 WHERE name = 'pets'"))
    assert reg.verify().problems == (
        "task 'pets': live version is v1, but the audit log last moved it to v2: the pointer was moved outside the registry",)


def test_without_a_key_a_complete_rewrite_passes_with_a_key_it_is_caught(reg, ready, monkeypatch):
    """What the key adds: data_md5 and config are not in the file's names; only the seals protect them."""
    ready.add("pets", seed=1)
    _edit(reg, "pets", 1, reseal=True, data_md5="e" * 32 + ".dir")  # re-sealed, but the add event recorded the seal
    assert any("pets@1: version row differs from the one its add_version event recorded" in p for p in reg.verify().problems)
    _refused(reg)
    _rewrite_history(reg, "pets", 1, data_md5="f" * 32 + ".dir")
    assert reg.verify().ok  # documented limitation: public algorithm, no secret

    monkeypatch.setenv(digest.KEY_ENV, "the operators' secret")
    ready.add("birds", seed=2)  # sealed with the key
    ready.add("pets", seed=3)
    assert reg.verify().ok  # unkeyed history before the first keyed event is anchored by it
    _rewrite_history(reg, "pets", 2, config={"lr": 10.0})
    problems = reg.verify().problems
    assert any("pets@2: version row is not sealed with the audit key" in p for p in problems)
    assert any("is not sealed with the audit key although the registry is keyed from event" in p for p in problems)
    assert "not sealed with the audit key" in _refused(reg)

    monkeypatch.delenv(digest.KEY_ENV)
    assert any("sealed with an audit key, which is not set" in p for p in reg.verify().problems)
    with pytest.raises(TamperedError, match="FORKPOINT_AUDIT_KEY"):
        reg.load_tensors("birds")


def test_seals_cover_what_is_served_and_nothing_else(reg, ready):
    """Editing an unsealed field (metrics) is not a tamper finding; the stored seal is the code's."""
    rec = ready.add("pets", seed=1)
    with reg.engine.connect() as c:
        stored = c.execute(sa.text("SELECT row_digest FROM task_version")).scalar_one()
    with Session(reg.engine) as s:
        row, _ = _row(s, "pets", 1)
        assert stored == seal_version(row, "pets", rec.backbone_fingerprint) and stored.startswith("sha256:")
    with behind_the_registry(reg) as s:
        row, _ = _row(s, "pets", 1)
        row.metrics = {"val_acc": 1.0}
        s.add(row)
    assert reg.verify().ok and reg.load_tensors("pets")
