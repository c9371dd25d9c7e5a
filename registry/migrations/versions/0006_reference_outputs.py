"""Reference outputs stored at add time, and the settings made insert-only.

- ``reference_output``: one row per task version, what its served logits were when it
  was added, so ``forkpoint audit --deep`` can prove that an old task still answers the
  same way after a change to trunk code, preprocessing or a library upgrade. The probe
  images (up to 64 held-out images and a seeded synthetic batch, uint8, before any
  preprocessing) are a content-addressed store object (``probe_sha256``: never a missing
  or corrupt file, like the weights); ``outputs`` holds, per probe, the logits' shape,
  the sha256 of their float32 bytes and their values; ``lib_versions`` the python,
  torch, timm and numpy versions (and torch threads, device) that computed them.
  ``row_digest`` seals the row (registry/digest.py), and the version's add event records it.
- ``reference_output`` and ``registry_setting`` become insert-only like ``task_version``
  (triggers on both backends): a setting is chosen once (``store_url``; ``audit_key``,
  the key id a keyed registry was first sealed with, registry/keying.py).

Versions added before 0006 have no reference row: ``audit --deep`` says so, per version.
A registry whose log already holds keyed seals gets its ``audit_key`` record here (the
first keyed event; the key id if ``FORKPOINT_AUDIT_KEY`` is set now, else "unrecorded").

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("reference_output", "registry_setting")


def _sqlite(table: str) -> dict[str, str]:
    return {
        f"{table}_no_update": f"BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{table} is insert-only: UPDATE refused'); END",
        f"{table}_no_delete": f"BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{table} is insert-only: DELETE refused'); END",
    }


def _pg(table: str) -> str:
    return f"""
CREATE FUNCTION {table}_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '{table} is insert-only: % refused', TG_OP;
END $$;
CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION {table}_insert_only();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION {table}_insert_only();
"""


def _record_keying(conn: sa.Connection) -> None:
    first = conn.execute(sa.text("SELECT min(id) FROM audit_event WHERE event_hash LIKE 'hmac-sha256:%'")).scalar()
    if first is None:
        return
    key = os.environ.get("FORKPOINT_AUDIT_KEY")
    kid = hmac.new(key.encode(), b"forkpoint audit key id v1", hashlib.sha256).hexdigest()[:16] if key else "unrecorded"
    setting = sa.table("registry_setting", sa.column("name", sa.String()), sa.column("value", sa.Text()),
                       sa.column("actor", sa.String()), sa.column("set_at", sa.DateTime(timezone=True)))
    conn.execute(setting.insert().values(name="audit_key", value=json.dumps({"first_event": int(first), "key_id": kid}, sort_keys=True),
                                         actor="migration 0006", set_at=datetime.now(timezone.utc)))


def upgrade() -> None:
    _record_keying(op.get_bind())
    op.create_table(
        "reference_output",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_version_id", sa.Integer(), sa.ForeignKey("task_version.id"), nullable=False),
        sa.Column("probe_sha256", sa.String(64), nullable=False),
        sa.Column("probe_bytes", sa.BigInteger(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("lib_versions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row_digest", sa.String(80), nullable=False),
        sa.UniqueConstraint("task_version_id", name="uq_reference_output_task_version_id"),
    )
    op.create_index("ix_reference_output_probe_sha256", "reference_output", ["probe_sha256"])
    pg = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if pg:
            op.execute(_pg(table))
        else:
            for name, body in _sqlite(table).items():
                op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if pg:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_insert_only()")
        else:
            for name in _sqlite(table):
                op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_reference_output_probe_sha256", table_name="reference_output")
    op.drop_table("reference_output")
