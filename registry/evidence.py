"""Tamper evidence: do the rows still say what the registry wrote?

Checked on every load of a served version (cheap: that version's seal, its add event,
its file's names, the triggers) and in full by ``verify`` (every seal, the whole chain,
every version's add event, the live pointers against the log, class names). What each
check catches, and what it cannot without ``FORKPOINT_AUDIT_KEY``, is in docs/registry.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import sqlalchemy as sa
from sqlmodel import Session, select

from forkpoint.registry import branchfile, chain, digest, keying, references, triggers
from forkpoint.registry.errors import ArtifactCorruptError, ArtifactMissingError, TamperedError
from forkpoint.registry.models import AuditEvent, Backbone, Task, TaskVersion
from forkpoint.registry.store import WeightStore

LIVE_ACTIONS = ("add_version", "promote", "rollback")


def missing_triggers(s: Session) -> list[str]:
    """Names of the insert-only triggers that are absent, disabled or rewritten so they no longer refuse everything."""
    return triggers.broken(s)


def seal_version(row: TaskVersion, task: str, fingerprint: str) -> str:
    return digest.seal(_payload(row, task, fingerprint))


def _payload(row: TaskVersion, task: str, fingerprint: str) -> dict:
    return digest.version_payload(task, row.version, fingerprint, row.branch, row.class_names,
                                  row.weights_sha256, row.data_md5, row.config)


def row_problem(row: TaskVersion, task: str, fingerprint: str, add: AuditEvent | None,
                first_keyed_id: int | None) -> str | None:
    """Why this version row cannot be trusted, or None. ``add`` is its add_version event."""
    ref = f"{task}@{row.version}"
    if reason := digest.check(row.row_digest, _payload(row, task, fingerprint)):
        return f"{ref}: version row {reason}"
    if add is None:
        return f"{ref}: has no add_version audit event (the log was cut)"
    if not digest.is_keyed(row.row_digest) and first_keyed_id is not None and add.id >= first_keyed_id:  # type: ignore[operator]
        return f"{ref}: version row is not sealed with the audit key although it was added after the key was in use (a downgrade)"
    recorded = add.details
    if recorded.get("weights_sha256", row.weights_sha256) != row.weights_sha256:
        return f"{ref}: points at weights {row.weights_sha256[:12]}… but was added with {str(recorded['weights_sha256'])[:12]}…"
    if recorded.get("row_digest", row.row_digest) != row.row_digest:
        return f"{ref}: version row differs from the one its add_version event recorded"
    return None


def first_keyed_id(s: Session) -> int | None:
    """From which event on seals must be keyed: the registry's record, else the first keyed event."""
    rec = keying.read(s)
    if isinstance(rec, keying.Keying):
        return rec.first_event
    return s.exec(select(sa.func.min(AuditEvent.id)).where(AuditEvent.event_hash.like(f"{digest.KEYED}:%"))).one()  # type: ignore[attr-defined]


def check_served(s: Session, rows: Sequence[tuple[TaskVersion, str, str]], *, triggers: bool = True) -> None:
    """Refuse (TamperedError) to serve any of ``rows`` (row, task name, backbone fingerprint) that fails a check.
    ``triggers=False`` checks the rows alone (a pointer move: the registry-wide triggers are not the version's)."""
    if not rows:
        return
    if triggers and (missing := missing_triggers(s)):
        raise TamperedError(
            f"insert-only triggers {', '.join(missing)} are missing or disabled (or rewritten), so versions and the audit log can be rewritten: "
            "refusing to serve; restore them (registry/migrations/versions/0004) and run `forkpoint audit`"
        )
    names = sorted({name for _, name, _ in rows})
    adds = {(e.task, e.version): e for e in s.exec(select(AuditEvent).where(
        AuditEvent.action == "add_version", AuditEvent.task.in_(names))).all()}  # type: ignore[union-attr]
    first = first_keyed_id(s)
    for row, name, fp in rows:
        add = adds.get((name, row.version))
        problem = row_problem(row, name, fp, add, first)
        if problem is None and add is not None and (reason := digest.check(add.event_hash, chain.payload(add))):
            problem = f"{name}@{row.version}: its add_version audit event {reason}"
        if problem:
            raise TamperedError(f"{problem}: refusing to serve it; restore the registry database from a backup and run `forkpoint audit`")


def check_file(data: bytes, rec_task: str, row: TaskVersion) -> None:
    """Refuse a weights file whose names disagree with the row that points at it."""
    if reason := branchfile.mismatch(data, rec_task, row.version, row.branch, row.class_names):
        raise TamperedError(f"{rec_task}@{row.version}: {reason}: refusing to load it; restore the registry database from a backup and run `forkpoint audit`")


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    bad_versions: set[str] = field(default_factory=set)
    chain_head: str = chain.GENESIS


def audit(s: Session, store: WeightStore) -> Findings:
    """Every check over the whole registry (read-only)."""
    out = Findings()
    out.problems += [f"insert-only trigger {t} is missing or disabled, or was rewritten so it does not always refuse: "
                     "versions and the audit log can be rewritten"
                     for t in missing_triggers(s)]
    events = s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
    walked = chain.walk(events, keying.read(s))
    out.problems += walked.problems
    out.chain_head = walked.head
    adds = {(e.task, e.version): e for e in events if e.action == "add_version"}
    tasks = {t.id: t for t in s.exec(select(Task)).all()}
    fps = {b.id: b.fingerprint for b in s.exec(select(Backbone)).all()}
    for row in s.exec(select(TaskVersion).order_by(TaskVersion.task_id, TaskVersion.version)).all():
        t = tasks[row.task_id]
        ref = f"{t.name}@{row.version}"
        found = [row_problem(row, t.name, fps[t.backbone_id], adds.get((t.name, row.version)), walked.first_keyed_id)]
        if list(t.class_names) != list(row.class_names):
            found.append(f"{ref}: task {t.name!r} has classes {list(t.class_names)}, the version {list(row.class_names)}")
        try:
            if reason := branchfile.mismatch(store.get(row.weights_sha256), t.name, row.version, row.branch, row.class_names):
                found.append(f"{ref}: {reason}")
        except (ArtifactMissingError, ArtifactCorruptError):
            pass  # the hash check reports it
        for problem in filter(None, found):
            out.problems.append(problem)
            out.bad_versions.add(ref)
    for ref, name, version in references.all_rows(s):
        if problem := references.problem(ref, name, version, adds.get((name, version)), walked.first_keyed_id):
            out.problems.append(problem)
            out.bad_versions.add(f"{name}@{version}")
    out.problems += _live_pointers(tasks.values(), events)
    return out


def _live_pointers(tasks, events: Sequence[AuditEvent]) -> list[str]:
    """Each live pointer must be where the last event that moved it left it."""
    last: dict[str, int | None] = {}
    for e in events:
        if e.action in LIVE_ACTIONS and e.task and "live_after" in e.details:
            last[e.task] = e.details["live_after"]
    return [
        f"task {t.name!r}: live version is v{t.live_version}, but the audit log last moved it to v{last.get(t.name)}: "
        "the pointer was moved outside the registry"
        for t in tasks if last.get(t.name) != t.live_version
    ]
