"""A keyed registry cannot be downgraded, and a trigger rewritten to never fire is found.

The downgrade is what someone with database write access but without the key can do:
lift the triggers, re-seal every version row and re-chain every audit event with plain
SHA-256 (the public algorithm), put the triggers back. Before the registry recorded that
it was keyed (registry/keying.py) that passed ``verify``; now it is a finding whether or
not the checking process has the key, and nothing of it is served.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from forkpoint.registry import TamperedError, chain, digest
from forkpoint.registry.errors import AuditKeyError
from forkpoint.registry.models import AuditEvent, Task, TaskVersion

from .test_registry_tamper import behind_the_registry

SECRET = "the operators' secret"


def _downgrade(reg) -> None:
    """Re-seal every row and every event with plain SHA-256, exactly as the code would without a key."""
    fps = {t.name: reg.backbone(t.backbone_fingerprint).fingerprint for t in reg.list_tasks()}
    with behind_the_registry(reg) as s:
        names = {t.id: t.name for t in s.exec(select(Task)).all()}
        seals = {}
        for row in s.exec(select(TaskVersion)).all():
            name = names[row.task_id]
            row.row_digest = digest.seal(digest.version_payload(name, row.version, fps[name], row.branch, row.class_names,
                                                                row.weights_sha256, row.data_md5, row.config), b"")
            seals[(name, row.version)] = row.row_digest
            s.add(row)
        s.flush()
        prev = chain.GENESIS
        for e in s.exec(select(AuditEvent).order_by(AuditEvent.id)).all():
            if e.action == "add_version":
                e.details = {**e.details, "row_digest": seals[(e.task, e.version)]}
            e.prev_hash = prev
            e.event_hash = prev = digest.seal(chain.payload(e), b"")
            s.add(e)
            s.flush()


def _keyed_registry(ready, monkeypatch) -> None:
    ready.add("pets", seed=1)  # before the key: plain seals, anchored by the first keyed event
    monkeypatch.setenv(digest.KEY_ENV, SECRET)
    ready.add("birds", seed=2)
    ready.add("pets", seed=3)
    assert ready.reg.verify().ok


@pytest.mark.parametrize("checker_has_key", [True, False], ids=["with-key", "without-key"])
def test_resealing_everything_without_the_key_is_caught(reg, ready, monkeypatch, checker_has_key):
    _keyed_registry(ready, monkeypatch)
    _downgrade(reg)
    with Session(reg.engine) as s:  # the downgrade is complete: not one keyed seal left
        assert not any(digest.is_keyed(h) for h in s.exec(select(AuditEvent.event_hash)).all())
        assert not any(digest.is_keyed(h) for h in s.exec(select(TaskVersion.row_digest)).all())
    if not checker_has_key:
        monkeypatch.delenv(digest.KEY_ENV)
    report = reg.verify()
    assert not report.ok
    assert any("is not sealed with the audit key although the registry is keyed from event" in p
               and "a downgrade" in p for p in report.problems)
    assert any("birds@1: version row is not sealed with the audit key" in p for p in report.problems)
    assert "pets@1" not in report.bad_versions  # added before the key: its plain seal is legitimate
    with pytest.raises(TamperedError, match="not sealed with the audit key"):
        reg.load_tensors("birds")


def test_a_keyed_registry_refuses_writes_without_its_key(reg, ready, monkeypatch):
    _keyed_registry(ready, monkeypatch)
    monkeypatch.delenv(digest.KEY_ENV)
    with pytest.raises(AuditKeyError, match="set FORKPOINT_AUDIT_KEY") as e:
        ready.add("pets", seed=4)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    monkeypatch.setenv(digest.KEY_ENV, "another key")
    with pytest.raises(AuditKeyError, match="sealed with key id"):
        reg.promote("pets", 1)
    assert any("is sealed with key id" in p for p in reg.verify().problems)  # the wrong key, said as such
    monkeypatch.setenv(digest.KEY_ENV, SECRET)
    assert reg.verify().ok and [v.version for v in reg.versions("pets")] == [1, 2]


def test_deleting_the_key_record_is_caught(reg, ready, monkeypatch):
    _keyed_registry(ready, monkeypatch)
    with behind_the_registry(reg) as s:
        s.exec(sa.text("DELETE FROM registry_setting WHERE name = 'audit_key'"))  # type: ignore[call-overload]
    assert any("audit key record is missing" in p for p in reg.verify().problems)


def _rewrite_trigger_to_never_fire(reg, how: str) -> None:
    with reg.engine.begin() as c:
        if c.dialect.name == "postgresql":
            if how == "body":
                c.execute(sa.text("CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                                  "BEGIN IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$"))
            else:  # fires only when the session is a replica: never, in practice
                c.execute(sa.text("ALTER TABLE audit_event ENABLE REPLICA TRIGGER audit_event_no_update"))
        else:
            c.execute(sa.text("DROP TRIGGER audit_event_no_update"))
            cond = "WHEN 0" if how == "body" else ""
            cols = "OF actor" if how != "body" else ""
            c.execute(sa.text(f"CREATE TRIGGER audit_event_no_update BEFORE UPDATE {cols} ON audit_event {cond} "
                              "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END"))


@pytest.mark.parametrize("how", ["body", "scope"])
def test_a_trigger_rewritten_to_never_fire_is_caught(reg, ready, how):
    ready.add("pets", seed=1)
    _rewrite_trigger_to_never_fire(reg, how)
    with reg.engine.begin() as c:  # the rewrite works: the log can now be edited in place
        c.execute(sa.text("UPDATE audit_event SET target = 'rewritten' WHERE id = 1"))
    report = reg.verify()
    assert any("insert-only trigger audit_event_no_update is missing or disabled, or was rewritten" in p
               for p in report.problems)
    with pytest.raises(TamperedError, match="audit_event_no_update"):
        reg.load_tensors("pets")


def test_every_trigger_is_checked_on_a_fresh_registry(reg, ready):
    from forkpoint.registry import triggers

    ready.add("pets", seed=1)
    with Session(reg.engine) as s:
        assert triggers.broken(s) == []
    expected = triggers.pg_expected() if reg.engine.dialect.name == "postgresql" else triggers.sqlite_expected()
    assert {n.rsplit("_no_", 1)[0] for n in expected} >= {"audit_event", "task_version", "reference_output", "registry_setting"}


def test_the_keying_record_names_the_key_and_its_first_event(reg, ready, monkeypatch):
    from forkpoint.registry import keying

    assert reg.audit_keying() is None
    _keyed_registry(ready, monkeypatch)
    rec = reg.audit_keying()
    first_keyed = min(e.id for e in reg.audit_events() if e.action == "add_version" and e.task == "birds")
    assert rec == keying.Keying(keying.key_id(SECRET.encode()), first_keyed) and SECRET not in rec.value()
