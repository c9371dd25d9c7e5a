"""Tamper evidence and gc-safe writes: sealed versions, a hash-chained audit log, object claims.

- ``task_version.row_digest``: the seal of what decides what is served (task, version,
  backbone fingerprint, branch, class names, weights sha256, data md5, config).
- ``audit_event.prev_hash`` / ``event_hash``: each event seals its fields and the previous
  event's hash; ``prev_hash`` is unique, so the chain cannot fork.
- ``object_claim``: objects a write in flight is about to reference (gc leaves them alone).
- ``task_version`` becomes insert-only like ``audit_event`` (triggers, both backends).

Existing rows are sealed and chained here, in id order, with ``FORKPOINT_AUDIT_KEY`` if it
is set when the upgrade runs (HMAC-SHA256), else plain SHA-256. The append-only triggers
are lifted for that one backfill, inside the migration's transaction. The seal is written
out here rather than imported: a revision must keep meaning what it meant when it shipped
(registry/digest.py computes the same bytes today; the migration tests check they agree).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SEAL = sa.String(80)
GENESIS = "genesis"

_SQLITE_AUDIT = {
    "audit_event_no_update": "BEFORE UPDATE ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END",
    "audit_event_no_delete": "BEFORE DELETE ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END",
}
_SQLITE_VERSION = {
    "task_version_no_update": "BEFORE UPDATE ON task_version BEGIN SELECT RAISE(ABORT, 'task_version is insert-only: UPDATE refused'); END",
    "task_version_no_delete": "BEFORE DELETE ON task_version BEGIN SELECT RAISE(ABORT, 'task_version is insert-only: DELETE refused'); END",
}
_PG_VERSION = """
CREATE FUNCTION task_version_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'task_version is insert-only: % refused', TG_OP;
END $$;
CREATE TRIGGER task_version_no_update BEFORE UPDATE OR DELETE ON task_version
  FOR EACH ROW EXECUTE FUNCTION task_version_insert_only();
CREATE TRIGGER task_version_no_truncate BEFORE TRUNCATE ON task_version
  FOR EACH STATEMENT EXECUTE FUNCTION task_version_insert_only();
"""


def _seal(payload: Any) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    key = os.environ.get("FORKPOINT_AUDIT_KEY")
    if key:
        return f"hmac-sha256:{hmac.new(key.encode(), body, hashlib.sha256).hexdigest()}"
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def _utc(dt: datetime) -> str:
    return (dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)).isoformat()


def _sqlite_triggers(create: bool, triggers: dict[str, str]) -> None:
    for name, body in triggers.items():
        op.execute(f"CREATE TRIGGER {name} {body}" if create else f"DROP TRIGGER IF EXISTS {name}")


def _seal_versions(conn: sa.Connection) -> None:
    v = sa.table("task_version", *(sa.column(n, t) for n, t in (
        ("id", sa.Integer()), ("task_id", sa.Integer()), ("version", sa.Integer()), ("branch", sa.JSON()),
        ("class_names", sa.JSON()), ("weights_sha256", sa.String()), ("data_md5", sa.String()),
        ("config", sa.JSON()), ("row_digest", SEAL))))
    t = sa.table("task", sa.column("id", sa.Integer()), sa.column("name", sa.String()), sa.column("backbone_id", sa.Integer()))
    b = sa.table("backbone", sa.column("id", sa.Integer()), sa.column("fingerprint", sa.String()))
    rows = conn.execute(sa.select(v.c.id, v.c.version, v.c.branch, v.c.class_names, v.c.weights_sha256, v.c.data_md5,
                                  v.c.config, t.c.name, b.c.fingerprint)
                        .select_from(v.join(t, t.c.id == v.c.task_id).join(b, b.c.id == t.c.backbone_id))).all()
    for r in rows:
        payload = {"task": r.name, "version": int(r.version), "backbone": r.fingerprint, "branch": dict(r.branch),
                   "class_names": list(r.class_names), "weights_sha256": r.weights_sha256, "data_md5": r.data_md5,
                   "config": dict(r.config)}
        conn.execute(v.update().where(v.c.id == r.id).values(row_digest=_seal(payload)))


def _chain_events(conn: sa.Connection) -> None:
    e = sa.table("audit_event", *(sa.column(n, t) for n, t in (
        ("id", sa.Integer()), ("at", sa.DateTime(timezone=True)), ("actor", sa.String()), ("action", sa.String()),
        ("target", sa.String()), ("task", sa.String()), ("version", sa.Integer()), ("details", sa.JSON()),
        ("prev_hash", SEAL), ("event_hash", SEAL))))
    prev = GENESIS
    for r in conn.execute(sa.select(e.c.id, e.c.at, e.c.actor, e.c.action, e.c.target, e.c.task, e.c.version,
                                    e.c.details).order_by(e.c.id)).all():
        payload = {"prev": prev, "at": _utc(r.at), "actor": r.actor, "action": r.action, "target": r.target,
                   "task": r.task, "version": r.version, "details": r.details}
        sealed = _seal(payload)
        conn.execute(e.update().where(e.c.id == r.id).values(prev_hash=prev, event_hash=sealed))
        prev = sealed


def upgrade() -> None:
    conn = op.get_bind()
    pg = conn.dialect.name == "postgresql"
    op.create_table(
        "object_claim",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
    )
    op.create_index("ix_object_claim_sha256", "object_claim", ["sha256"])
    if pg:
        op.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update")
    else:
        _sqlite_triggers(False, _SQLITE_AUDIT)
    op.add_column("task_version", sa.Column("row_digest", SEAL, nullable=True))
    op.add_column("audit_event", sa.Column("prev_hash", SEAL, nullable=True))
    op.add_column("audit_event", sa.Column("event_hash", SEAL, nullable=True))
    _seal_versions(conn)
    _chain_events(conn)
    with op.batch_alter_table("task_version") as batch:
        batch.alter_column("row_digest", existing_type=SEAL, nullable=False)
    with op.batch_alter_table("audit_event") as batch:  # SQLite: recreates the table (its triggers go with it)
        batch.alter_column("prev_hash", existing_type=SEAL, nullable=False)
        batch.alter_column("event_hash", existing_type=SEAL, nullable=False)
        batch.create_unique_constraint("uq_audit_event_prev_hash", ["prev_hash"])
    if pg:
        op.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update")
        op.execute(_PG_VERSION)
    else:
        _sqlite_triggers(True, {**_SQLITE_AUDIT, **_SQLITE_VERSION})


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("DROP TRIGGER IF EXISTS task_version_no_update ON task_version")
        op.execute("DROP TRIGGER IF EXISTS task_version_no_truncate ON task_version")
        op.execute("DROP FUNCTION IF EXISTS task_version_insert_only()")
    else:
        _sqlite_triggers(False, {**_SQLITE_AUDIT, **_SQLITE_VERSION})
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_constraint("uq_audit_event_prev_hash", type_="unique")
        batch.drop_column("event_hash")
        batch.drop_column("prev_hash")
    with op.batch_alter_table("task_version") as batch:
        batch.drop_column("row_digest")
    op.drop_index("ix_object_claim_sha256", table_name="object_claim")
    op.drop_table("object_claim")
    if not pg:
        _sqlite_triggers(True, _SQLITE_AUDIT)
