"""Loading what is served: a version's weights, or every task's live version.

A mixin of :class:`forkpoint.registry.core.Registry`. Nothing is served that fails a
check: the file's sha256 (store), the row's seal, its add event and the insert-only
triggers (registry/evidence.py), the names in the file's header, and a live pointer
that names an existing version (LivePointerError, never a silently missing task).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import sqlalchemy as sa
from sqlmodel import select

from forkpoint.registry import evidence, references, validate
from forkpoint.registry.codec import decode
from forkpoint.registry.errors import LivePointerError
from forkpoint.registry.models import Backbone, Task, TaskVersion
from forkpoint.registry.records import VersionRecord
from forkpoint.registry.parts import RegistryParts

if TYPE_CHECKING:
    import numpy as np
    import torch


def dangling(t: Task) -> str:
    return (f"task {t.name!r} has live version v{t.live_version}, which does not exist: promote or roll back to an "
            "existing version, then verify the registry (`forkpoint audit`)")


class ServingMixin(RegistryParts):
    """``load_tensors`` and ``live``."""

    def load_tensors(self, task: str, version: int | None = None) -> dict[str, torch.Tensor]:
        """A version's branch weights (None: the live one), refused unless every check passes."""
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            number = self._resolve(t, version)
            row = s.exec(select(TaskVersion).where(TaskVersion.task_id == t.id, TaskVersion.version == number)).first()
            if row is None and version is None:
                raise LivePointerError(dangling(t))
            row = row or self._version_row(s, t, number)
            fp = self._fingerprint(s, t)
            evidence.check_served(s, [(row, t.name, fp)])
            rec = VersionRecord.of(row, t, fp, self.store.rel(row.weights_sha256))
        return self._tensors(rec, row)

    def live(self, backbone_fingerprint: str | None = None, *, tasks: Iterable[str] | None = None,
             exclude: Iterable[str] = ()) -> list[tuple[VersionRecord, dict[str, torch.Tensor]]]:
        """Every task's live version with its weights (only ``tasks`` if given, never ``exclude``), in task
        creation order: what rebuilding the multi-task model needs (plus :meth:`backbone` / :meth:`load_trunk`).
        A live pointer naming a missing version raises LivePointerError: a task is never silently left out."""
        return [(rec, self._tensors(rec, row)) for rec, row in self._live_rows(backbone_fingerprint, tasks, exclude)]

    def live_records(self, backbone_fingerprint: str | None = None, *, tasks: Iterable[str] | None = None,
                     exclude: Iterable[str] = ()) -> list[VersionRecord]:
        """:meth:`live` without reading any weights file (the rows' checks still run): a server loads each
        task's weights when it is first asked for (:meth:`load_tensors`)."""
        return [rec for rec, _ in self._live_rows(backbone_fingerprint, tasks, exclude)]

    def live_versions(self) -> dict[str, VersionRecord]:
        """Every task's live version by task name, in three statements (listings: ``tasks``, ``GET /v1/tasks``)."""
        with self._read() as s:
            tasks = s.exec(select(Task).where(Task.live_version.is_not(None))).all()  # type: ignore[union-attr]
            if not tasks:
                return {}
            fps = {b.id: b.fingerprint for b in s.exec(select(Backbone)).all()}
            rows = {r.task_id: r for r in s.exec(select(TaskVersion).where(
                sa.tuple_(TaskVersion.task_id, TaskVersion.version).in_([(t.id, t.live_version) for t in tasks]))).all()}
            return {t.name: VersionRecord.of(rows[t.id], t, fps[t.backbone_id], self.store.rel(rows[t.id].weights_sha256))
                    for t in tasks if t.id in rows}

    def _live_rows(self, backbone_fingerprint: str | None, tasks: Iterable[str] | None,
                   exclude: Iterable[str]) -> list[tuple[VersionRecord, TaskVersion]]:
        with self._read() as s:
            q = select(Task).where(Task.live_version.is_not(None)).order_by(Task.id)  # type: ignore[union-attr]
            if backbone_fingerprint is not None:
                q = q.where(Task.backbone_id == self._backbone_row(s, backbone_fingerprint).id)
            if tasks is not None:
                q = q.where(Task.name.in_(list(tasks)))  # type: ignore[attr-defined]
            if skip := list(exclude):
                q = q.where(Task.name.not_in(skip))  # type: ignore[attr-defined]
            tasks = s.exec(q).all()
            if not tasks:
                return []
            fps = {b.id: b.fingerprint for b in s.exec(select(Backbone)).all()}
            rows = s.exec(select(TaskVersion).where(
                sa.tuple_(TaskVersion.task_id, TaskVersion.version).in_([(t.id, t.live_version) for t in tasks])
            )).all()
            by_task = {r.task_id: r for r in rows}
            for t in tasks:
                if t.id not in by_task:
                    raise LivePointerError(dangling(t))
            evidence.check_served(s, [(by_task[t.id], t.name, fps[t.backbone_id]) for t in tasks])
            return [(VersionRecord.of(by_task[t.id], t, fps[t.backbone_id], self.store.rel(by_task[t.id].weights_sha256)),
                     by_task[t.id]) for t in tasks]

    def reference(self, task: str, version: int | None = None
                  ) -> "tuple[references.ReferenceRecord, dict[str, np.ndarray]] | None":
        """A version's reference outputs and probe images (None: the live one), or None if it was added
        without them (before 0006); TamperedError when the row fails its seal or its add event's record."""
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            row = self._version_row(s, t, self._resolve(t, version))
            return references.load(s, self.store, t.name, row.version, row, evidence.first_keyed_id(s))

    def _tensors(self, rec: VersionRecord, row: TaskVersion) -> dict[str, torch.Tensor]:
        data = self.store.get(rec.weights_sha256, used_by=rec.ref)
        evidence.check_file(data, rec.task, row)
        return decode(data)
