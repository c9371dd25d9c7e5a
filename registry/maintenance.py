"""The registry's integrity and maintenance operations: ``verify`` and ``gc``.

A mixin that :class:`forkpoint.registry.core.Registry` inherits, so the methods stay on
``Registry`` with their names and signatures; it relies on the registry's sessions
(``_read``/``_write``), its audit-log append (``_log``) and its weight ``store``.
Neither operation ever deletes or changes a version, task or event row: ``verify`` only
reads and logs, ``gc`` deletes unreferenced, unclaimed store entries (and stale claims)
and logs what it did.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from forkpoint.registry import claims, evidence, heads, references, validate
from forkpoint.registry.errors import AuditKeyError
from forkpoint.registry.models import AuditEvent, Backbone, ReferenceOutput, Task, TaskVersion
from forkpoint.registry.provenance import default_actor
from forkpoint.registry.records import BackboneRecord, VerifyReport, VersionRecord
from forkpoint.registry.store import WeightStore
from forkpoint.registry.verify import DvcMd5Fn, TrunkFingerprintFn
from forkpoint.registry.verify import verify as run_verify

GC_GRACE_S = 15 * 60  # gc's default: leave younger orphans alone (the hard floor is claims.FLOOR_S)


class MaintenanceMixin:
    """``verify``, ``record_reproduction`` and ``gc`` (plus ``_all_versions``, the snapshot verify and gc read)."""

    store: WeightStore

    if TYPE_CHECKING:  # provided by Registry
        def _read(self) -> AbstractContextManager[Session]: ...
        def _write(self) -> AbstractContextManager[Session]: ...
        @staticmethod
        def _log(s: Session, actor: str, action: str, target: str, task: str | None = None, version: int | None = None,
                 details: dict[str, Any] | None = None) -> AuditEvent: ...

    def _all_versions(self) -> tuple[list[BackboneRecord], list[VersionRecord], list[str]]:
        with self._read() as s:
            bbs = s.exec(select(Backbone).order_by(Backbone.id)).all()
            fps = {b.id: b.fingerprint for b in bbs}
            tasks = {t.id: t for t in s.exec(select(Task)).all()}
            rows = s.exec(select(TaskVersion).order_by(TaskVersion.task_id, TaskVersion.version)).all()
            versions = [VersionRecord.of(r, tasks[r.task_id], fps[tasks[r.task_id].backbone_id],
                                         self.store.rel(r.weights_sha256)) for r in rows]
            have = {(v.task, v.version) for v in versions}
            dangling = [f"task {t.name!r}: live version {t.live_version} does not exist"
                        for t in tasks.values() if t.live_version is not None and (t.name, t.live_version) not in have]
            probes = {ref.probe_sha256: f"reference probes of {name}@{v}" for ref, name, v in references.all_rows(s)}
            return [BackboneRecord.of(b) for b in bbs], versions, dangling, probes

    def verify(
        self,
        trunk_fingerprint_fn: TrunkFingerprintFn | None = None,
        dvc_md5_fn: DvcMd5Fn | None = None,
        actor: str | None = None,
    ) -> VerifyReport:
        """Recompute every artifact hash; check every seal, the audit chain, the insert-only
        triggers, each version's add event and each live pointer against the log
        (registry/evidence.py); optionally re-fingerprint each trunk
        (``trunk_fingerprint_fn(backbone) -> sha256 hex``) and re-read each version's
        DVC md5 (``dvc_md5_fn(data_path) -> md5``); list orphan files. Logged."""
        bbs, versions, dangling, probes = self._all_versions()
        report = run_verify(self.store, bbs, versions, dangling, trunk_fingerprint_fn, dvc_md5_fn, probes)
        with self._read() as s:
            found = evidence.audit(s, self.store)
        head_problems, head_objects = heads.check_objects(self)  # the agnostic head's statistics (0007)
        report = dataclasses.replace(
            report, problems=report.problems + tuple(found.problems) + tuple(head_problems), chain_head=found.chain_head,
            bad_versions=tuple(sorted(set(report.bad_versions) | found.bad_versions)),
            orphans=tuple(k for k in report.orphans if self.store.digest_of(k) not in head_objects),
        )
        try:
            with self._write() as s:
                self._log(s, actor or default_actor(), "verify", "registry", details={
                    "ok": report.ok, "problems": list(report.problems), "orphans": len(report.orphans),
                    "checked_objects": report.checked_objects, "checked_data": report.checked_data,
                    "chain_head": found.chain_head,
                })
                s.commit()
        except AuditKeyError:
            pass  # a keyed registry checked without its key: the report says so; an unkeyed event would be a finding
        return report

    def record_reproduction(self, task: str, version: int, details: dict[str, Any], actor: str | None = None) -> None:
        """Append a ``reproduce`` event (the outcome of rebuilding ``task@version``): the one write a
        reproduction makes. ``details`` is the JSON outcome (verdict, diverging step, figures)."""
        name = validate.task_name(task)
        with self._write() as s:
            self._log(s, actor or default_actor(), "reproduce", f"task:{name}@{version}", name, version, details)
            s.commit()

    def gc(self, min_age_s: float = GC_GRACE_S, actor: str | None = None, *, dry_run: bool = False) -> list[str]:
        """Delete orphan store entries (never rows) older than ``min_age_s``; returns their keys.

        Safe against writes in flight (registry/claims.py): under the store lock, an entry is
        kept if a row references it, a live claim holds it (or the temp file it is being
        written through), or it is younger than ``claims.FLOOR_S``, whatever ``min_age_s``
        says. Claims older than ``claims.STALE_S`` (their writer died) are dropped.
        ``dry_run`` lists what would be deleted and deletes nothing (still logged, as such).
        """
        min_age = max(float(min_age_s), claims.FLOOR_S)
        chosen: list[str] = []
        freed = 0
        with self._write() as s:
            claims.lock_store(s, exclusive=True)
            held = claims.held(s, drop_stale=not dry_run)
            keep = held | _referenced(s)
            for key in self.store.keys():
                if (self.store.digest_of(key) in keep or self.store.pending_digest(key) in held
                        or self.store.age_s(key) < min_age):
                    continue
                if not dry_run:
                    size = self.store.delete(key)
                    if size is None:
                        continue
                    freed += size
                chosen.append(key)
            details: dict[str, Any] = {"dry_run": dry_run, "deleted": [] if dry_run else chosen, "bytes_freed": freed,
                                       "min_age_s": min_age_s, "floor_s": claims.FLOOR_S}
            if dry_run:
                details["would_delete"] = chosen
            self._log(s, actor or default_actor(), "gc", "registry", details=details)
            s.commit()
        return chosen


def _referenced(s: Session) -> set[str]:
    """Every digest a version or a trunk points at, read inside gc's transaction."""
    versions = set(s.exec(select(TaskVersion.weights_sha256)).all())
    trunks = {d for d in s.exec(select(Backbone.trunk_sha256)).all() if d}
    probes = set(s.exec(select(ReferenceOutput.probe_sha256)).all())
    return versions | trunks | probes | heads.referenced(s)
