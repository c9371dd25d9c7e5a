"""Bring a database to the newest schema, in-process, on every open.

A fresh home just works, and an old one is upgraded before use. Concurrent openers
serialise: SQLite via ``BEGIN IMMEDIATE`` (the database write lock), PostgreSQL via a
transaction-scoped advisory lock; the loser then finds the schema at head and does
nothing. Everything runs in one transaction, so a failed upgrade leaves the old schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from forkpoint.registry.db import WRITE

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x666F726B  # "fork"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> None:
    """Upgrade to ``target`` (a revision id or "head"); a no-op when already there."""
    if target == "head" and current_revision(engine) == head_revision():
        return
    cfg = alembic_config()
    with engine.execution_options(**WRITE).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
