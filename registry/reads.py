"""Reading the registry: tasks, versions, histories, diffs, audit events. A mixin of
:class:`forkpoint.registry.core.Registry`; every method returns frozen records, never ORM rows.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import select

from forkpoint.registry import keying, validate
from forkpoint.registry.diff import diff_versions
from forkpoint.registry.models import AuditEvent, Backbone, Task, TaskVersion
from forkpoint.registry.records import AuditRecord, TaskHistory, TaskRecord, VersionDiff, VersionRecord, utc
from forkpoint.registry.parts import RegistryParts, now


class ReadsMixin(RegistryParts):
    """``list_tasks``, ``get_task``, ``show``, ``versions``, ``ever_live``, ``history``, ``diff``, ``audit_events``."""

    def list_tasks(self) -> list[TaskRecord]:
        with self._read() as s:
            stats = {
                tid: (latest, n)
                for tid, latest, n in s.exec(
                    select(TaskVersion.task_id, sa.func.max(TaskVersion.version), sa.func.count())
                    .group_by(TaskVersion.task_id)
                ).all()
            }
            fps = {b.id: b.fingerprint for b in s.exec(select(Backbone)).all()}
            return [
                TaskRecord.of(t, fps[t.backbone_id], *stats.get(t.id, (None, 0)))
                for t in s.exec(select(Task).order_by(Task.name)).all()
            ]

    def get_task(self, task: str) -> TaskRecord:
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            latest, n = s.exec(
                select(sa.func.max(TaskVersion.version), sa.func.count()).where(TaskVersion.task_id == t.id)
            ).one()
            return TaskRecord.of(t, self._fingerprint(s, t), latest, n)

    def show(self, task: str, version: int | None = None) -> VersionRecord:
        """One version; None means the live one."""
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            row = self._version_row(s, t, self._resolve(t, version))
            return VersionRecord.of(row, t, self._fingerprint(s, t), self.store.rel(row.weights_sha256))

    def versions(self, task: str) -> list[VersionRecord]:
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            fp = self._fingerprint(s, t)
            rows = s.exec(select(TaskVersion).where(TaskVersion.task_id == t.id).order_by(TaskVersion.version)).all()
            return [VersionRecord.of(r, t, fp, self.store.rel(r.weights_sha256)) for r in rows]

    def ever_live(self, task: str) -> set[int]:
        """Versions the live pointer was ever on (from the audit log): what "previously live" means."""
        with self._read() as s:
            return self._ever_live(s, self._task_row(s, validate.task_name(task)))

    def history(self, task: str) -> TaskHistory:
        """All versions (oldest first) and every audit event naming the task."""
        name = validate.task_name(task)
        return TaskHistory(task=self.get_task(name), versions=tuple(self.versions(name)),
                           events=tuple(self.audit_events(task=name)))

    def diff(self, task: str, v1: int, v2: int) -> VersionDiff:
        return diff_versions(self.show(task, v1), self.show(task, v2))

    def audit_events(
        self,
        task: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Audit events oldest first (with ``limit``: the newest ``limit`` of them)."""
        with self._read() as s:
            q = select(AuditEvent)
            if task is not None:
                q = q.where(AuditEvent.task == task)
            if action is not None:
                q = q.where(AuditEvent.action == action)
            if since is not None:
                q = q.where(AuditEvent.at >= utc(since))  # stored as UTC; SQLite compares the text
            q = q.order_by(AuditEvent.id.desc())  # type: ignore[union-attr]
            if limit is not None:
                q = q.limit(limit)
            return [AuditRecord.of(e) for e in reversed(s.exec(q).all())]

    def audit_keying(self) -> keying.Keying | None:
        """The ``audit_key`` record (registry/keying.py): which key seals this registry, and from which event; None if unkeyed."""
        with self._read() as s:
            rec = keying.read(s)
        return rec if isinstance(rec, keying.Keying) else None

