"""Storing the task-agnostic head: per-task statistics objects and the head versions made of them.

The registry holds no math: a head version is a list of members (task, version, the
sha256 of that version's statistics object) plus the config the caller chose (ridge
strength, validation curve). Statistics are safetensors in the same content-addressed,
sha256-checked store as the weights, written the same way (claim, put, then one
transaction that inserts the rows, releases the claim and appends the audit event).
Rows are never updated (triggers, 0007): a head moves forward by new versions only.

A new head version names the version it was built from (``parent``); if another writer
added one meanwhile, :class:`HeadMovedError` asks the caller to rebuild from the newer
one instead of silently dropping that writer's task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from forkpoint.registry import chain, claims, validate
from forkpoint.registry.codec import decode, encode
from forkpoint.registry.errors import ConcurrencyError, UnknownBackboneError, UnknownVersionError
from forkpoint.registry.models import AgnosticHead, Backbone, HeadStats, Task, TaskVersion
from forkpoint.registry.provenance import default_actor

if TYPE_CHECKING:
    import torch

    from forkpoint.registry.core import Registry

ACTION = "agnostic_head"  # the audit event of a new head version


class HeadMovedError(ConcurrencyError):
    """Another writer added a head version after this one was built from its parent: rebuild and retry."""


@dataclass(frozen=True)
class HeadMember:
    task: str
    version: int
    stats_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "version": self.version, "stats_sha256": self.stats_sha256}


@dataclass(frozen=True)
class HeadRecord:
    """One stored head version of a backbone."""

    version: int
    method: str
    parent_version: int | None
    members: tuple[HeadMember, ...]
    config: dict[str, Any]
    actor: str
    created_at: datetime

    @property
    def tasks(self) -> dict[str, int]:
        return {m.task: m.version for m in self.members}

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "method": self.method, "parent_version": self.parent_version,
                "members": [m.to_dict() for m in self.members], "config": self.config, "actor": self.actor,
                "created_at": self.created_at.isoformat()}

    @classmethod
    def of(cls, row: AgnosticHead) -> "HeadRecord":
        members = tuple(HeadMember(m["task"], int(m["version"]), m["stats_sha256"]) for m in row.members)
        return cls(row.version, row.method, row.parent_version, members, dict(row.config), row.actor, row.created_at)


def _backbone_id(s: Session, fingerprint: str) -> int:
    row = s.exec(select(Backbone.id).where(Backbone.fingerprint == validate.fingerprint(fingerprint))).first()
    if row is None:
        raise UnknownBackboneError(f"unknown backbone {fingerprint[:12]}…: register the backbone first")
    return row


def _latest(s: Session, backbone_id: int, method: str) -> AgnosticHead | None:
    q = select(AgnosticHead).where(AgnosticHead.backbone_id == backbone_id, AgnosticHead.method == method)
    return s.exec(q.order_by(AgnosticHead.version.desc()).limit(1)).first()  # type: ignore[attr-defined]


def latest_head(reg: Registry, fingerprint: str, method: str) -> HeadRecord | None:
    """The newest head version of ``fingerprint``'s trunk for ``method``, or None if none was built."""
    with reg._read() as s:
        row = _latest(s, _backbone_id(s, fingerprint), method)
        return HeadRecord.of(row) if row is not None else None


def head_versions(reg: Registry, fingerprint: str, method: str) -> list[HeadRecord]:
    """Every head version, oldest first: one per task added (the stages of class-incremental evaluation)."""
    with reg._read() as s:
        q = select(AgnosticHead).where(AgnosticHead.backbone_id == _backbone_id(s, fingerprint), AgnosticHead.method == method)
        return [HeadRecord.of(r) for r in s.exec(q.order_by(AgnosticHead.version)).all()]  # type: ignore[arg-type]


def load_stats(reg: Registry, member: HeadMember) -> dict[str, torch.Tensor]:
    """A member's statistics tensors; the store refuses a missing file or one whose sha256 differs."""
    return decode(reg.store.get(member.stats_sha256, used_by=f"agnostic head statistics of {member.task}@{member.version}"))


def _version_row(s: Session, backbone_id: int, task: str, version: int) -> TaskVersion:
    row = s.exec(select(TaskVersion).join(Task, Task.id == TaskVersion.task_id).where(
        Task.name == task, Task.backbone_id == backbone_id, TaskVersion.version == version)).first()
    if row is None:
        raise UnknownVersionError(f"task {task!r} has no version {version} on this trunk: add the task before its head statistics")
    return row


def _stats_sha(s: Session, version_id: int, method: str) -> str | None:
    return s.exec(select(HeadStats.stats_sha256).where(HeadStats.task_version_id == version_id,
                                                       HeadStats.method == method)).first()


def record_head(reg: Registry, fingerprint: str, method: str, *, task: str, version: int,
                tensors: Mapping[str, torch.Tensor], stats_config: Mapping[str, Any],
                members: Sequence[tuple[str, int]], parent: int | None, config: Mapping[str, Any],
                actor: str | None = None) -> HeadRecord:
    """Store ``task@version``'s statistics and a new head version over ``members`` (task, version), built from ``parent``.

    One transaction: the statistics row, the head row and an ``agnostic_head`` audit event.
    Every member other than ``task@version`` must already have statistics stored."""
    actor = actor or default_actor()
    stats_cfg = validate.jsonable("head statistics config", dict(stats_config))
    head_cfg = validate.jsonable("head config", dict(config))
    data = encode(tensors)
    digest, claim_id = reg._put_claimed(data, actor)
    try:
        with reg._write() as s:
            claims.release(s, claim_id)
            chain.lock(s)
            bb = _backbone_id(s, fingerprint)
            latest = _latest(s, bb, method)
            if (latest.version if latest is not None else None) != parent:
                raise HeadMovedError(f"the agnostic head moved to v{latest.version if latest else 0} while this one was built "
                                     f"from v{parent or 0}: rebuild it from the newer version")
            row = _version_row(s, bb, task, version)
            if _stats_sha(s, row.id, method) is None:
                s.add(HeadStats(task_version_id=row.id, method=method, config=stats_cfg, stats_sha256=digest,
                                stats_bytes=len(data), actor=actor, created_at=datetime.now(timezone.utc)))
            stored = []
            for name, number in members:
                sha = digest if (name, number) == (task, version) else _stats_sha(s, _version_row(s, bb, name, number).id, method)
                if sha is None:
                    raise UnknownVersionError(f"{name}@{number} has no stored head statistics: add it to the head first")
                stored.append(HeadMember(name, number, sha).to_dict())
            head = AgnosticHead(backbone_id=bb, method=method, version=(parent or 0) + 1, parent_version=parent,
                                members=stored, config=head_cfg, actor=actor, created_at=datetime.now(timezone.utc))
            s.add(head)
            reg._log(s, actor, ACTION, f"head:{method}@{head.version}", task, version, {
                "head_version": head.version, "parent_version": parent, "stats_sha256": digest, "stats_bytes": len(data),
                "members": [f"{m['task']}@{m['version']}" for m in stored], "lambda": head_cfg.get("lambda")})
            s.flush()
            record = HeadRecord.of(head)
            s.commit()
            claim_id = None
            return record
    except IntegrityError:
        raise HeadMovedError("another writer added the same head version first: rebuild it from the newer version") from None
    finally:
        if claim_id is not None:
            reg._release_claim(claim_id)


def referenced(s: Session) -> set[str]:
    """Every statistics object a row points at (gc keeps them, verify checks them)."""
    return set(s.exec(select(HeadStats.stats_sha256)).all())


def check_objects(reg: Registry) -> tuple[list[str], set[str]]:
    """Problems with stored statistics (missing or corrupt objects) and the digests checked."""
    with reg._read() as s:
        rows = s.exec(select(HeadStats.stats_sha256, TaskVersion.version, Task.name)
                      .join(TaskVersion, TaskVersion.id == HeadStats.task_version_id)
                      .join(Task, Task.id == TaskVersion.task_id)).all()
    problems, digests = [], set()
    for sha, number, name in rows:
        digests.add(sha)
        if reason := reg.store.check(sha):
            problems.append(f"{reg.store.rel(sha)} {reason}; used by the agnostic head statistics of {name}@{number}")
    return problems, digests
