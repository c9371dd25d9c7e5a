"""Store a version's branch once, in the contract's half-open form.

Until 0002 a version kept its branch twice: seven columns (``branch_start``,
``branch_end`` *inclusive*, with a head-only branch as ``start = n, end = n - 1``,
``block_names``, ``siamese``, ``num_classes``, ``feature_dim``, ``head_shape``) plus the
``branch`` JSON as the caller sent it, while the learner speaks half-open
``[start, stop)``. This revision rewrites every row's ``branch`` JSON from the columns
(the values the registry validated) into ``{start, stop, num_classes, feature_dim,
siamese, block_names, head_shape}`` and drops the columns. ``stop = end + 1`` holds for
every row, the head-only one included (``n - 1 + 1 = n``).

Only ``audit_event`` carries triggers (0001: append-only); ``task_version`` has none, so
its rows can be rewritten in place and SQLite's batch mode (copy, drop, rename) may
recreate the table. The conversion is written out here rather than imported: a
revision must keep meaning what it meant when it shipped.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (
    sa.Column("branch_start", sa.Integer()),
    sa.Column("branch_end", sa.Integer()),
    sa.Column("block_names", sa.JSON()),
    sa.Column("siamese", sa.Boolean()),
    sa.Column("num_classes", sa.Integer()),
    sa.Column("feature_dim", sa.Integer()),
    sa.Column("head_shape", sa.JSON()),
)
DROPPED = tuple(c.name for c in _COLUMNS)


def _table(*names: str) -> sa.TableClause:
    typed = {c.name: c.type for c in _COLUMNS}
    typed.update(id=sa.Integer(), branch=sa.JSON())
    return sa.table("task_version", *(sa.column(n, typed[n]) for n in names))


def _half_open(row: Any) -> dict[str, Any]:
    return {
        "start": int(row.branch_start), "stop": int(row.branch_end) + 1, "num_classes": int(row.num_classes),
        "feature_dim": int(row.feature_dim), "siamese": bool(row.siamese), "block_names": list(row.block_names),
        "head_shape": list(row.head_shape),
    }


def _inclusive(branch: dict[str, Any]) -> dict[str, Any]:
    start = int(branch["start"])
    stop = int(branch["stop"]) if "stop" in branch else (start if int(branch["end"]) < start else int(branch["end"]) + 1)
    return {
        "branch_start": start, "branch_end": stop - 1, "block_names": list(branch["block_names"]),
        "siamese": bool(branch["siamese"]), "num_classes": int(branch["num_classes"]),
        "feature_dim": int(branch["feature_dim"]), "head_shape": list(branch["head_shape"]),
    }


def upgrade() -> None:
    conn = op.get_bind()
    t = _table("id", "branch", *DROPPED)
    for row in conn.execute(sa.select(t.c.id, *(t.c[n] for n in DROPPED))).all():
        conn.execute(t.update().where(t.c.id == row.id).values(branch=_half_open(row)))
    with op.batch_alter_table("task_version") as batch:
        for name in DROPPED:
            batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("task_version") as batch:
        for col in _COLUMNS:
            batch.add_column(sa.Column(col.name, col.type, nullable=True))
    conn = op.get_bind()
    t = _table("id", "branch", *DROPPED)
    for row in conn.execute(sa.select(t.c.id, t.c.branch)).all():
        old = _inclusive(row.branch)
        branch = {**row.branch, "end": old["branch_end"]}  # 0002's readers expect the inclusive end
        conn.execute(t.update().where(t.c.id == row.id).values(branch=branch, **old))
    with op.batch_alter_table("task_version") as batch:
        for col in _COLUMNS:
            batch.alter_column(col.name, existing_type=col.type, nullable=False)
