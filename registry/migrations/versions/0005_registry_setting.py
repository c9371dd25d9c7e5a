"""Registry-wide settings, first of all where the weights live: ``registry_setting``.

A registry shared by several machines (one PostgreSQL database) must send all of them
to the same object store, so the store URL belongs in the database, not in each home:
``registry_setting(name, value, actor, set_at)`` holds ``store_url`` (e.g.
``s3://bucket/prefix``) once ``forkpoint init --store`` chose one. No row means the
home's own ``objects/`` directory, as before 0005, so existing registries are unchanged.
Credentials and endpoints never go here: they come from each machine's environment.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_setting",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("registry_setting")
