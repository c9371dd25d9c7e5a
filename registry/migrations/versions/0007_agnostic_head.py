"""The task-agnostic head (issue 28): per-task statistics and the head versions built from them.

- ``head_stats``: one row per task version that contributed to a head: that version's
  sums over its own training images (RanPAC's Gram and cross matrices on random features,
  split into fit and validation parts, and NCM's per-class feature sums), stored as one
  content-addressed safetensors object (``stats_sha256``: sha256-checked on every load,
  kept by gc like weights). ``config`` names the method, projection size and seed.
- ``agnostic_head``: one row per head version of a backbone and method: its ``members``
  (task, version, stats_sha256 of each task it answers over, in the order they joined),
  the ridge strength chosen on validation statistics and the validation curve. Adding a
  task writes a new head version whose members are the previous ones plus the new task:
  nothing an earlier task contributed is recomputed.

Both tables are insert-only (triggers on both backends), like ``task_version``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("head_stats", "agnostic_head")


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


def upgrade() -> None:
    op.create_table(
        "head_stats",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_version_id", sa.Integer(), sa.ForeignKey("task_version.id"), nullable=False),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("stats_sha256", sa.String(64), nullable=False),
        sa.Column("stats_bytes", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("task_version_id", "method", name="uq_head_stats_task_version_id_method"),
    )
    op.create_index("ix_head_stats_stats_sha256", "head_stats", ["stats_sha256"])
    op.create_table(
        "agnostic_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("backbone_id", sa.Integer(), sa.ForeignKey("backbone.id"), nullable=False),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("backbone_id", "method", "version", name="uq_agnostic_head_backbone_id_method_version"),
    )
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
    op.drop_table("agnostic_head")
    op.drop_index("ix_head_stats_stats_sha256", table_name="head_stats")
    op.drop_table("head_stats")
