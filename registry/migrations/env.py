"""Alembic environment for the registry.

Normally run in-process by :func:`registry.migrate.upgrade`, which passes an open
connection in ``config.attributes["connection"]``. For developers, the ``alembic``
command also works: ``alembic -c registry/migrations/alembic.ini -x url=sqlite:///x.db upgrade head``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from forkpoint.registry.models import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("pass the database with: alembic -x url=postgresql+psycopg://… upgrade head")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)
