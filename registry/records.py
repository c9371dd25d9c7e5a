"""Plain, frozen, JSON-ready views of registry rows.

Callers never hold ORM objects: a record is detached from any session, cannot be
mutated by accident, and ``to_dict()`` gives exactly what ``--json`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from forkpoint.contract.branch import BranchSpec, UnitRange
from forkpoint.registry.models import AuditEvent, Backbone, Task, TaskVersion


def utc(dt: datetime) -> datetime:
    """SQLite drops the zone on the way back; every stored time is UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (times as ISO-8601 UTC strings)."""
        return _plain(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class BackboneRecord(_Record):
    fingerprint: str
    arch: str
    weights_source: str
    num_blocks: int
    block_names: tuple[str, ...]
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    trunk_sha256: str | None
    trunk_bytes: int | None
    actor: str
    created_at: datetime

    @classmethod
    def of(cls, row: Backbone) -> "BackboneRecord":
        return cls(
            fingerprint=row.fingerprint, arch=row.arch, weights_source=row.weights_source,
            num_blocks=row.num_blocks, block_names=tuple(row.block_names), resolution=row.resolution,
            mean=tuple(row.mean), std=tuple(row.std), trunk_sha256=row.trunk_sha256,
            trunk_bytes=row.trunk_bytes, actor=row.actor, created_at=utc(row.created_at),
        )


@dataclass(frozen=True)
class TaskRecord(_Record):
    name: str
    description: str
    class_names: tuple[str, ...]
    backbone_fingerprint: str
    live_version: int | None
    latest_version: int | None
    num_versions: int
    actor: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Task, fingerprint: str, latest: int | None, count: int) -> "TaskRecord":
        return cls(
            name=row.name, description=row.description, class_names=tuple(row.class_names),
            backbone_fingerprint=fingerprint, live_version=row.live_version, latest_version=latest,
            num_versions=count, actor=row.actor, created_at=utc(row.created_at), updated_at=utc(row.updated_at),
        )


@dataclass(frozen=True)
class VersionRecord(_Record):
    """One task version. ``status`` is how it was registered ("promoted" or "staged");
    ``live`` says whether the task's live pointer is on it now.

    ``branch`` is the one stored form of the branch (the contract's half-open
    ``start``/``stop``, see :meth:`BranchSpec.to_dict`); the properties below are views of
    it, so every reader sees the same numbers.
    """

    task: str
    version: int
    live: bool
    status: str
    parent_version: int | None
    description: str
    class_names: tuple[str, ...]
    backbone_fingerprint: str
    branch: dict[str, Any]
    trainable_params: int
    total_params: int
    extra_cost_pct: float
    weights_sha256: str
    weights_bytes: int
    weights_path: str
    data_md5: str | None
    data_path: str | None
    split_seed: int
    split_sizes: dict[str, Any]
    metrics: dict[str, Any]
    profile: list[dict[str, Any]]
    config: dict[str, Any]
    lib_versions: dict[str, str]
    run_id: str | None
    actor: str
    created_at: datetime

    @property
    def ref(self) -> str:
        """``task@version``, the way messages name a version."""
        return f"{self.task}@{self.version}"

    @property
    def spec(self) -> BranchSpec:
        """Where the branch forks and its head, as the learner rebuilds it."""
        return BranchSpec.from_dict(self.branch)

    @property
    def units(self) -> UnitRange:
        return self.spec.units

    @property
    def branch_start(self) -> int:
        return self.spec.start

    @property
    def branch_stop(self) -> int:
        """First unit after the branch (half-open); equals ``branch_start`` for a head-only branch."""
        return self.spec.stop

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(self.branch.get("block_names", ()))

    @property
    def siamese(self) -> bool:
        return self.spec.siamese

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    @property
    def head_shape(self) -> tuple[int, ...]:
        """The head matrix the weights hold, as recorded (the spec's shape unless stored otherwise)."""
        stored = self.branch.get("head_shape")
        return tuple(stored) if stored is not None else self.spec.head_shape

    @classmethod
    def of(cls, row: TaskVersion, task: Task, fingerprint: str, weights_path: str) -> "VersionRecord":
        return cls(
            task=task.name, version=row.version, live=task.live_version == row.version, status=row.status,
            parent_version=row.parent_version, description=row.description, class_names=tuple(row.class_names),
            backbone_fingerprint=fingerprint, branch=dict(row.branch),
            trainable_params=row.trainable_params, total_params=row.total_params,
            extra_cost_pct=row.extra_cost_pct, weights_sha256=row.weights_sha256, weights_bytes=row.weights_bytes,
            weights_path=weights_path, data_md5=row.data_md5, data_path=row.data_path, split_seed=row.split_seed,
            split_sizes=dict(row.split_sizes), metrics=dict(row.metrics), profile=list(row.profile),
            config=dict(row.config), lib_versions=dict(row.lib_versions), run_id=row.run_id, actor=row.actor,
            created_at=utc(row.created_at),
        )


@dataclass(frozen=True)
class AuditRecord(_Record):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    task: str | None
    version: int | None
    details: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> "AuditRecord":
        return cls(
            id=row.id or 0, at=utc(row.at), actor=row.actor, action=row.action, target=row.target,
            task=row.task, version=row.version, details=dict(row.details),
        )


@dataclass(frozen=True)
class TaskHistory(_Record):
    """Every version of a task (oldest first) and every audit event that touched it."""

    task: TaskRecord
    versions: tuple[VersionRecord, ...]
    events: tuple[AuditRecord, ...]


@dataclass(frozen=True)
class VersionDiff(_Record):
    """What changed between two versions: ``changes[field] = (old, new)`` for differing fields only."""

    task: str
    v1: int
    v2: int
    changes: dict[str, tuple[Any, Any]]

    @property
    def same(self) -> bool:
        return not self.changes


@dataclass(frozen=True)
class VerifyReport(_Record):
    """``ok`` is False iff there are problems; orphans (unreferenced store keys) are not problems: gc removes them.
    ``chain_head`` is the newest audit event's hash: recorded elsewhere, it shows a later cut of the log's tail."""

    problems: tuple[str, ...]
    orphans: tuple[str, ...]
    checked_objects: int
    checked_versions: int
    checked_data: int = 0
    checked_backbones: int = 0
    bad_versions: tuple[str, ...] = field(default_factory=tuple)
    chain_head: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["ok"] = self.ok
        return d
