"""Engines for the two supported backends, with the settings concurrency needs.

SQLite: WAL (readers never block the writer), a busy timeout (writers queue instead of
failing), foreign keys on, ``synchronous=FULL`` (a commit survives power loss), and
write transactions opened with ``BEGIN IMMEDIATE`` so two writers serialise at BEGIN
rather than deadlocking when a reader upgrades to a writer.
PostgreSQL: psycopg 3, a connect timeout so a wrong URL fails fast.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from forkpoint.registry.errors import DatabaseUnavailableError

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
WRITE = {"registry_write": True}  # execution option: this transaction will write


def default_url(home: Path) -> str:
    return f"sqlite:///{home / 'registry.db'}"


def shown(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; raises DatabaseUnavailableError if it cannot connect."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailableError(
            f"cannot parse database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseUnavailableError(
            f"unsupported database {backend!r} in {shown(url)}: use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
        )
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parent = Path(parsed.database).expanduser().parent
        if not parent.is_dir():
            raise DatabaseUnavailableError(
                f"cannot open {shown(url)}: directory {parent} does not exist; create it or fix the URL"
            )
    try:
        if backend == "sqlite":
            engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
            _tune_sqlite(engine)
        else:
            if parsed.get_driver_name() != "psycopg":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = sa.create_engine(parsed, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, pool_pre_ping=True)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except NoSuchModuleError:
        raise DatabaseUnavailableError(f"no driver for {shown(url)}: use postgresql+psycopg://…") from None
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DatabaseUnavailableError(
            f"cannot connect to {shown(url)} ({reason}): check --db / FORKPOINT_DB and that the server is running"
        ) from None
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("registry_write") else "BEGIN")


def first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@contextmanager
def db_errors(url: str) -> Iterator[None]:
    """Turn driver failures (server gone, disk full, locked too long) into one-line errors.
    IntegrityError passes through: writers retry on it."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as e:
        raise DatabaseUnavailableError(f"database error on {shown(url)} ({first_line(e)}): check the server and retry") from None
