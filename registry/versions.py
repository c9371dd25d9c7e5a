"""Adding a version: validate, claim and write its file, then one transaction.

A mixin of :class:`forkpoint.registry.core.Registry` (which provides the sessions, the
row helpers, ``_put_claimed`` and ``_log``). The weights file names its task and version
(registry/branchfile.py), so the version number is read before the file is written; if
a concurrent writer takes that number first, the file is written again for the next one.
"""

from __future__ import annotations

import dataclasses
import random
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from types import EllipsisType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from forkpoint.contract.draft import VersionDraft
from forkpoint.registry import branchfile, chain, claims, evidence, references, validate
from forkpoint.registry.crashpoints import crash_point
from forkpoint.registry.errors import ConcurrencyError, UnknownVersionError
from forkpoint.registry.models import AuditEvent, Backbone, Task, TaskVersion
from forkpoint.registry.provenance import default_actor, lib_versions
from forkpoint.registry.records import VersionRecord
from forkpoint.registry.store import WeightStore

MAX_ATTEMPTS = 8


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.02 * 2 ** min(attempt, 5)))


@dataclass(frozen=True)
class _Plan:
    """A validated draft, ready to become rows (everything but its number and file)."""

    name: str
    fields: dict[str, Any]
    backbone: Backbone
    branch: dict[str, Any]
    parent_version: int | None
    promote: bool
    expect_live: int | None | EllipsisType
    actor: str
    libs: dict[str, str]
    reference: tuple[str, int, int, dict, dict] | None = None  # probe sha256, bytes, claim, outputs, libs

    def file(self, draft: VersionDraft, number: int) -> bytes:
        return branchfile.encode_branch(draft.tensors, self.name, number, self.branch, self.fields["class_names"])


class VersionsMixin:
    """``add_version``."""

    store: WeightStore

    if TYPE_CHECKING:  # provided by Registry
        def _read(self) -> AbstractContextManager[Session]: ...
        def _write(self) -> AbstractContextManager[Session]: ...
        def _put_claimed(self, data: bytes, actor: str) -> tuple[str, int]: ...
        def _release_claim(self, claim_id: int) -> None: ...
        def _check_task_fits(self, s: Session, t: Task, bb: Backbone, classes: list[str]) -> None: ...
        @staticmethod
        def _backbone_row(s: Session, fingerprint: str) -> Backbone: ...
        @staticmethod
        def _version_row(s: Session, t: Task, version: int) -> TaskVersion: ...
        @staticmethod
        def _log(s: Session, actor: str, action: str, target: str, task: str | None = None, version: int | None = None,
                 details: dict[str, Any] | None = None) -> AuditEvent: ...

    def add_version(self, task: str, draft: VersionDraft, *, promote: bool = True, actor: str | None = None,
                    expect_live: int | None | EllipsisType = ...,
                    reference: references.ReferenceDraft | None = None) -> VersionRecord:
        """Store ``draft`` as the next version of ``task`` (created on first use) and, if ``promote``, make it live.

        Atomic: the version row, its weights file and its audit event all exist, or
        none does (a crash may leave an unreferenced file for gc). Version numbers
        are 1, 2, … per task, never reused; concurrent writers retry on the unique
        (task, version) constraint. ``draft.parent_version`` defaults to ``expect_live``
        if given, else the live version at commit.

        ``expect_live`` is the live version the caller started from (None: no live
        version). The pointer moves by compare-and-set: if it moved meanwhile (a
        rollback or promote while this version trained), the version is registered
        staged, not live, its audit event says why (``promote_refused``), and the
        returned record has ``live`` False. Omitted (``...``): promote unconditionally.

        ``reference``: the version's outputs on its probe set (registry/references.py), stored
        in the same transaction; its probe images are claimed and written first, like the weights.
        """
        name = validate.task_name(task)
        fields = validate.version_fields(draft)
        fp = validate.fingerprint(draft.backbone_fingerprint)
        with self._read() as s:
            bb = self._backbone_row(s, fp)
            number = self._next_number(s, name, bb, fields["class_names"], draft.parent_version)
        branch = validate.branch(draft.spec, draft.block_names, bb.block_names, len(fields["class_names"]))
        who = actor or default_actor()
        plan = _Plan(name, fields, bb, branch, draft.parent_version, promote, expect_live, who, lib_versions())
        data = plan.file(draft, number)
        validate.head_present(draft.tensors, branch["head_shape"])
        ref_plan = None
        if reference is not None:
            outputs, libs = references.check_outputs(reference)
            probe_data = references.encode_probes(reference.probes)
        crash_point("before_write")
        if reference is not None:
            probe_sha, probe_claim = self._put_claimed(probe_data, who)
            ref_plan = (probe_sha, len(probe_data), probe_claim, outputs, libs)
            plan = dataclasses.replace(plan, reference=ref_plan)
        try:
            return self._add_attempts(plan, draft, number, data)
        except BaseException:  # committed versions released their claims in their transaction
            if ref_plan is not None:
                self._release_claim(ref_plan[2])
            raise

    def _add_attempts(self, plan: _Plan, draft: VersionDraft, number: int, data: bytes) -> VersionRecord:
        name, bb, fields = plan.name, plan.backbone, plan.fields
        for attempt in range(MAX_ATTEMPTS):
            digest, claim_id = self._put_claimed(data, plan.actor)
            outcome: VersionRecord | int | None = None
            try:
                with self._write() as s:
                    outcome = self._commit_version(s, plan, number, digest, len(data), claim_id, attempt)
            except IntegrityError:
                backoff(attempt)
                with self._read() as s:
                    outcome = self._next_number(s, name, bb, fields["class_names"], None)
            finally:
                if not isinstance(outcome, VersionRecord):
                    self._release_claim(claim_id)
            if isinstance(outcome, VersionRecord):
                return outcome
            if outcome != number:  # another writer took the number: the file must name the next one
                number = outcome
                data = plan.file(draft, number)
        raise ConcurrencyError(f"could not add a version of {name!r} after {MAX_ATTEMPTS} attempts under concurrent writes: retry")

    def _next_number(self, s: Session, name: str, bb: Backbone, classes: list[str], parent_version: int | None) -> int:
        """The number the next version of ``name`` would get, after checking it fits the task."""
        existing = s.exec(select(Task).where(Task.name == name)).first()
        if existing is None:
            if parent_version is not None:
                raise UnknownVersionError(f"task {name!r} has no versions yet, so parent_version {parent_version} does not exist: omit it")
            return 1
        self._check_task_fits(s, existing, bb, classes)
        if parent_version is not None:
            self._version_row(s, existing, parent_version)
        latest = s.exec(select(sa.func.max(TaskVersion.version)).where(TaskVersion.task_id == existing.id)).one()
        return (latest or 0) + 1

    def _commit_version(self, s: Session, plan: _Plan, number: int, digest: str, size: int, claim_id: int,
                        attempt: int) -> VersionRecord | int:
        """Insert version ``number`` and commit; or, if that number is taken, the one to use instead."""
        claims.release(s, claim_id)  # locks in one order for every writer: store, chain, then rows
        if plan.reference is not None:
            claims.release(s, plan.reference[2])
        chain.lock(s)
        now = datetime.now(timezone.utc)
        t = s.exec(select(Task).where(Task.name == plan.name)).first()
        if t is None:
            t = Task(name=plan.name, description=plan.fields["description"], class_names=plan.fields["class_names"],
                     backbone_id=plan.backbone.id, live_version=None, actor=plan.actor, created_at=now, updated_at=now)
            s.add(t)
            s.flush()
        else:
            self._check_task_fits(s, t, plan.backbone, plan.fields["class_names"])
        latest = s.exec(select(sa.func.max(TaskVersion.version)).where(TaskVersion.task_id == t.id)).one()
        if (latest or 0) + 1 != number:
            return (latest or 0) + 1
        live_before = t.live_version
        moved = plan.expect_live is not ... and plan.expect_live != live_before
        promoted = plan.promote and not moved
        started_from = live_before if plan.expect_live is ... else plan.expect_live
        row = TaskVersion(
            **plan.fields, task_id=t.id, version=number, status="promoted" if promoted else "staged",
            parent_version=plan.parent_version if plan.parent_version is not None else started_from,
            branch=plan.branch, weights_sha256=digest, weights_bytes=size, lib_versions=plan.libs,
            actor=plan.actor, created_at=now,
        )
        row.row_digest = evidence.seal_version(row, plan.name, plan.backbone.fingerprint)
        s.add(row)
        ref_row = None
        if plan.reference is not None:
            s.flush()  # the row's id
            sha, size_, _, outputs, libs = plan.reference
            ref_row = references.new_row(row, plan.name, sha, size_, outputs, libs, now)
            s.add(ref_row)
        if promoted:
            t.live_version, t.updated_at = number, now
            s.add(t)
        details: dict[str, Any] = {
            "weights_sha256": digest, "weights_bytes": size, "promoted": promoted, "live_before": live_before,
            "live_after": t.live_version, "attempt": attempt + 1, "data_md5": plan.fields["data_md5"],
            "run_id": plan.fields["run_id"], "row_digest": row.row_digest,
        }
        if ref_row is not None:
            details["reference_digest"] = ref_row.row_digest
        if plan.promote and moved:
            details["promote_refused"] = f"live moved from v{plan.expect_live} to v{live_before} after this version was started"
        self._log(s, plan.actor, "add_version", f"task:{plan.name}@{number}", plan.name, number, details)
        crash_point("mid_transaction")
        s.commit()
        return VersionRecord.of(row, t, plan.backbone.fingerprint, self.store.rel(digest))
