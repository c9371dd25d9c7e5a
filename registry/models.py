"""SQLModel tables: the registry's schema as Python classes.

The schema itself is created and evolved by the Alembic revisions in
``registry/migrations/versions``; ``tests/registry`` checks that those revisions and
these classes describe the same tables. Rows are immutable once written except
``Task.live_version`` / ``Task.updated_at`` (the live pointer) and a backbone's trunk
artifact, which may be attached once; ``task_version`` and ``audit_event`` are insert-only
by database triggers (0004), and ``object_claim`` rows live only while a write is in flight.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

SHA = sa.String(64)
SEAL = sa.String(80)  # "sha256:<hex>" or "hmac-sha256:<hex>" (registry/digest.py)


def _json(nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(sa.JSON(), nullable=nullable))


def _when() -> Any:
    return Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class Backbone(SQLModel, table=True):
    """A frozen pretrained trunk, identified by the sha256 fingerprint of its tensors."""

    __tablename__ = "backbone"

    id: Optional[int] = Field(default=None, primary_key=True)
    fingerprint: str = Field(sa_type=SHA, unique=True, nullable=False)
    arch: str = Field(sa_type=sa.String(200), nullable=False)
    weights_source: str = Field(sa_type=sa.Text(), nullable=False)
    num_blocks: int = Field(nullable=False)
    block_names: list = _json()
    resolution: int = Field(nullable=False)
    mean: list = _json()
    std: list = _json()
    trunk_sha256: Optional[str] = Field(default=None, sa_type=SHA, nullable=True)
    trunk_bytes: Optional[int] = Field(default=None, sa_type=sa.BigInteger(), nullable=True)
    actor: str = Field(sa_type=sa.String(200), nullable=False)
    created_at: datetime = _when()


class Task(SQLModel, table=True):
    """A named classification task bound to one backbone; ``live_version`` is the served one."""

    __tablename__ = "task"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(64), unique=True, nullable=False)
    description: str = Field(sa_type=sa.Text(), nullable=False, default="")
    class_names: list = _json()
    backbone_id: int = Field(foreign_key="backbone.id", nullable=False)
    live_version: Optional[int] = Field(default=None, nullable=True)
    actor: str = Field(sa_type=sa.String(200), nullable=False)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class TaskVersion(SQLModel, table=True):
    """One trained branch of a task. Never updated or deleted after insert."""

    __tablename__ = "task_version"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "version", name="uq_task_version_task_id_version"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", nullable=False)
    version: int = Field(nullable=False)
    status: str = Field(sa_type=sa.String(16), nullable=False)
    parent_version: Optional[int] = Field(default=None, nullable=True)
    description: str = Field(sa_type=sa.Text(), nullable=False, default="")
    class_names: list = _json()
    # branch point, stored once: the contract's half-open form (BranchSpec.to_dict)
    branch: dict = _json()
    # cost
    trainable_params: int = Field(sa_type=sa.BigInteger(), nullable=False)
    total_params: int = Field(sa_type=sa.BigInteger(), nullable=False)
    extra_cost_pct: float = Field(nullable=False)
    # weights artifact (content address in the object store)
    weights_sha256: str = Field(sa_type=SHA, nullable=False, index=True)
    weights_bytes: int = Field(sa_type=sa.BigInteger(), nullable=False)
    # data version
    data_md5: Optional[str] = Field(default=None, sa_type=sa.String(80), nullable=True)
    data_path: Optional[str] = Field(default=None, sa_type=sa.Text(), nullable=True)
    split_seed: int = Field(sa_type=sa.BigInteger(), nullable=False)
    split_sizes: dict = _json()
    # results and provenance
    metrics: dict = _json()
    profile: list = _json()
    config: dict = _json()
    lib_versions: dict = _json()
    run_id: Optional[str] = Field(default=None, sa_type=sa.String(200), nullable=True)
    actor: str = Field(sa_type=sa.String(200), nullable=False)
    created_at: datetime = _when()
    # seal over everything that decides what is served (registry/digest.py: version_payload)
    row_digest: str = Field(sa_type=SEAL, nullable=False)


class AuditEvent(SQLModel, table=True):
    """Append-only log of every action; database triggers refuse UPDATE and DELETE.

    A hash chain (registry/chain.py): each event seals its fields and ``prev_hash``, the
    previous event's ``event_hash``; the unique ``prev_hash`` keeps the chain from forking."""

    __tablename__ = "audit_event"
    __table_args__ = (sa.UniqueConstraint("prev_hash", name="uq_audit_event_prev_hash"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _when()
    actor: str = Field(sa_type=sa.String(200), nullable=False)
    action: str = Field(sa_type=sa.String(40), nullable=False)
    target: str = Field(sa_type=sa.Text(), nullable=False)
    task: Optional[str] = Field(default=None, sa_type=sa.String(64), nullable=True, index=True)
    version: Optional[int] = Field(default=None, nullable=True)
    details: dict = _json()
    prev_hash: str = Field(sa_type=SEAL, nullable=False)
    event_hash: str = Field(sa_type=SEAL, nullable=False)


class ObjectClaim(SQLModel, table=True):
    """A weights object a write is about to reference: committed before the file is written,
    deleted in the transaction that commits the row using it. gc never deletes a claimed object."""

    __tablename__ = "object_claim"

    id: Optional[int] = Field(default=None, primary_key=True)
    sha256: str = Field(sa_type=SHA, nullable=False, index=True)
    claimed_at: datetime = _when()
    actor: str = Field(sa_type=sa.String(200), nullable=False)


class RegistrySetting(SQLModel, table=True):
    """A registry-wide setting every machine sharing the database must agree on (0005):
    ``store_url``, where the weights live; ``audit_key``, the id of the key a keyed registry is
    sealed with (registry/keying.py). Written once, never changed: insert-only by triggers (0006)."""

    __tablename__ = "registry_setting"

    name: str = Field(sa_type=sa.String(64), primary_key=True)
    value: str = Field(sa_type=sa.Text(), nullable=False)
    actor: str = Field(sa_type=sa.String(200), nullable=False)
    set_at: datetime = _when()


class ReferenceOutput(SQLModel, table=True):
    """What a version's served logits were when it was added (0006): probe images in the store
    (``probe_sha256``), per probe the logits' shape, sha256 and values, and the library versions
    that computed them. Insert-only (triggers); sealed (``row_digest``); one per version."""

    __tablename__ = "reference_output"
    __table_args__ = (sa.UniqueConstraint("task_version_id", name="uq_reference_output_task_version_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    task_version_id: int = Field(foreign_key="task_version.id", nullable=False)
    probe_sha256: str = Field(sa_type=SHA, nullable=False, index=True)
    probe_bytes: int = Field(sa_type=sa.BigInteger(), nullable=False)
    outputs: dict = _json()
    lib_versions: dict = _json()
    created_at: datetime = _when()
    row_digest: str = Field(sa_type=SEAL, nullable=False)


class HeadStats(SQLModel, table=True):
    """One task version's statistics for the task-agnostic head (0007): sums over its own training
    images in a content-addressed safetensors object (``stats_sha256``). Insert-only (triggers)."""

    __tablename__ = "head_stats"
    __table_args__ = (sa.UniqueConstraint("task_version_id", "method", name="uq_head_stats_task_version_id_method"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    task_version_id: int = Field(foreign_key="task_version.id", nullable=False)
    method: str = Field(sa_type=sa.String(40), nullable=False)
    config: dict = _json()
    stats_sha256: str = Field(sa_type=SHA, nullable=False, index=True)
    stats_bytes: int = Field(sa_type=sa.BigInteger(), nullable=False)
    actor: str = Field(sa_type=sa.String(200), nullable=False)
    created_at: datetime = _when()


class AgnosticHead(SQLModel, table=True):
    """A version of a backbone's task-agnostic head (0007): the task versions it answers over
    (``members``, each with its statistics' sha256) and the ridge strength chosen on validation."""

    __tablename__ = "agnostic_head"
    __table_args__ = (sa.UniqueConstraint("backbone_id", "method", "version", name="uq_agnostic_head_backbone_id_method_version"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    backbone_id: int = Field(foreign_key="backbone.id", nullable=False)
    method: str = Field(sa_type=sa.String(40), nullable=False)
    version: int = Field(nullable=False)
    parent_version: Optional[int] = Field(default=None, nullable=True)
    members: list = _json()
    config: dict = _json()
    actor: str = Field(sa_type=sa.String(200), nullable=False)
    created_at: datetime = _when()
