"""The registry: one entry point over the database and the object store.

Every write follows one pattern: validate everything first (bad input writes
nothing), claim the weights object (registry/claims.py) and put it into the
content-addressed store (atomic rename), then change rows, release the claim and
append the audit event (registry/chain.py) in a single database transaction. A crash at
any point therefore leaves either the full version or, at worst, an unreferenced file
that ``gc`` removes once its claim is stale. Versions are never updated or deleted; only
a task's live pointer moves.

Trunks live in registry/backbones.py, live-pointer moves in registry/pointers.py, reads in
registry/reads.py, adding versions in registry/versions.py, loading what is served in
registry/serving.py, verify and gc in registry/maintenance.py, the store URL setting in
registry/settings.py; all are methods of :class:`Registry`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session, select

from forkpoint.registry import chain, claims, validate
from forkpoint.registry.backbones import BackbonesMixin
from forkpoint.registry.codec import sha256
from forkpoint.registry.crashpoints import crash_point
from forkpoint.registry.db import WRITE, db_errors as _db_errors, default_url, first_line as _first_line, make_engine, shown
from forkpoint.registry.errors import (
    BackboneMismatchError,
    ClassNamesMismatchError,
    DatabaseUnavailableError,
    RegistryError,
    UnknownBackboneError,
    UnknownTaskError,
    UnknownVersionError,
)
from forkpoint.registry.evidence import LIVE_ACTIONS
from forkpoint.registry.maintenance import GC_GRACE_S, MaintenanceMixin  # noqa: F401 - GC_GRACE_S re-exported
from forkpoint.registry.migrate import upgrade
from forkpoint.registry.models import AuditEvent, Backbone, Task, TaskVersion
from forkpoint.registry.objectstore import check_url, open_store, probe
from forkpoint.registry.pointers import PointersMixin
from forkpoint.registry.reads import ReadsMixin
from forkpoint.registry.serving import ServingMixin
from forkpoint.registry.settings import recorded_store_url as _recorded_store_url
from forkpoint.registry.parts import now
from forkpoint.registry.store import LocalObjectStore, WeightStore

from forkpoint.registry.versions import VersionsMixin



def require_existing(url: str) -> None:
    """Refuse (exit 2) to open a SQLite registry whose file does not exist: the read-only open path.

    Opening creates and migrates a database, so a mistyped ``--db sqlite:///new.db`` on a read
    would leave an empty registry behind and report "no tasks". Readers call this first; ``init``
    and the writing commands do not. PostgreSQL URLs (a server, not a file) are left to connect."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # make_engine names the malformed URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database).expanduser().is_file():
        raise DatabaseUnavailableError(f"no registry at {shown(url)}: run `forkpoint init` or check --db")


class Registry(BackbonesMixin, PointersMixin, ReadsMixin, VersionsMixin, ServingMixin, MaintenanceMixin):
    """Versioned tasks of one or more frozen backbones. Open with :meth:`open`.

    Each job is a mixin in its own module: trunks in :mod:`~forkpoint.registry.backbones`, live-pointer
    moves in :mod:`~forkpoint.registry.pointers`, reads in :mod:`~forkpoint.registry.reads`,
    ``add_version`` in :mod:`~forkpoint.registry.versions`, ``load_tensors``/``live``/``reference`` in
    :mod:`~forkpoint.registry.serving`, ``verify``/``gc`` in :mod:`~forkpoint.registry.maintenance`; this
    module holds opening, sessions and the row helpers they share."""

    def __init__(self, home: Path, engine: sa.Engine, url: str, store: WeightStore | None = None) -> None:
        self.home = home
        self.url = url
        self.engine = engine
        self._writer = engine.execution_options(**WRITE)
        self.store: WeightStore = store if store is not None else LocalObjectStore(home / "objects")
        self.store_url: str | None = None  # the database's store_url setting (None: home/objects)

    # ---- lifecycle -------------------------------------------------------------

    @classmethod
    def open(cls, home: Path | str, db_url: str | None = None, store: WeightStore | None = None, *,
             store_url: str | None = None, create: bool = True) -> "Registry":
        """Open (creating and migrating as needed) the registry at ``home``.

        ``db_url`` None means SQLite at ``home/registry.db``; otherwise any
        ``sqlite:///…`` or ``postgresql+psycopg://…`` URL. Weights live where the database
        says (its ``store_url`` setting, so every machine sharing it finds the same store),
        else in ``home/objects``. ``store_url`` (``s3://bucket/prefix``, ``file:///path``, any
        fsspec URL) records that setting on a registry that has none and holds no weights yet;
        a different recorded URL is refused. ``store`` overrides both (tests, tools).
        Nothing is created under ``home`` unless the database is reachable. ``create=False`` (readers)
        refuses a SQLite file that does not exist yet instead of creating it (:func:`require_existing`).
        """
        home = Path(home).expanduser().resolve()
        if not create:
            require_existing(db_url if db_url is not None else default_url(home))
        if store_url is not None:  # a bad or unreachable store fails before anything is created or migrated
            store_url = check_url(store_url)
            if store is None:
                store = open_store(store_url)
                probe(store)
        if db_url is None:
            home.mkdir(parents=True, exist_ok=True)
            db_url = default_url(home)
        engine = make_engine(db_url)
        try:
            upgrade(engine)
        except (SQLAlchemyError, CommandError) as e:
            engine.dispose()
            raise DatabaseUnavailableError(
                f"cannot migrate {shown(db_url)} to the current schema ({_first_line(e)}): check the URL points at a forkpoint registry database"
            ) from None
        try:
            recorded = _recorded_store_url(engine, db_url, store_url)
            if store is None and recorded is not None:
                store = open_store(recorded)
        except BaseException:
            engine.dispose()
            raise
        home.mkdir(parents=True, exist_ok=True)
        reg = cls(home, engine, db_url, store)
        reg.store_url = recorded
        return reg

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with _db_errors(self.url), Session(self.engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A transaction that will write (SQLite: BEGIN IMMEDIATE). Commit explicitly."""
        with _db_errors(self.url), Session(self._writer, expire_on_commit=False) as s:
            yield s

    # ---- helpers -------------------------------------------------------------------

    @staticmethod
    def _log(s: Session, actor: str, action: str, target: str, task: str | None = None, version: int | None = None,
             details: dict[str, Any] | None = None) -> AuditEvent:
        """Append an event to the audit chain inside the write transaction ``s``."""
        return chain.append(s, AuditEvent(at=now(), actor=actor, action=action, target=target, task=task,
                                          version=version, details=validate.jsonable("audit details", details or {})))

    def _put_claimed(self, data: bytes, actor: str) -> tuple[str, int]:
        """Claim the object, then write it (registry/claims.py): gc cannot delete it before the row using
        it commits. Returns its sha256 and the claim, which that row's transaction releases."""
        digest = sha256(data)
        with self._write() as s:
            claim_id = claims.claim(s, digest, actor)
            s.commit()
        crash_point("after_claim")
        try:
            self.store.put(data)
        except BaseException:
            self._release_claim(claim_id)
            raise
        crash_point("after_rename")
        return digest, claim_id

    def _release_claim(self, claim_id: int) -> None:
        """Best effort after a failed write: a claim left behind expires after claims.STALE_S."""
        try:
            with self._write() as s:
                claims.release(s, claim_id)
                s.commit()
        except (RegistryError, SQLAlchemyError):
            pass

    @staticmethod
    def _task_row(s: Session, name: str) -> Task:
        t = s.exec(select(Task).where(Task.name == name)).first()
        if t is None:
            raise UnknownTaskError(f"unknown task {name!r}: `forkpoint tasks` lists the registered names")
        return t

    @staticmethod
    def _version_row(s: Session, t: Task, version: int) -> TaskVersion:
        row = s.exec(select(TaskVersion).where(TaskVersion.task_id == t.id, TaskVersion.version == version)).first()
        if row is None:
            latest = s.exec(select(sa.func.max(TaskVersion.version)).where(TaskVersion.task_id == t.id)).one()
            raise UnknownVersionError(f"task {t.name!r} has no version {version!r}: versions are 1..{latest or 0}")
        return row

    @staticmethod
    def _resolve(t: Task, version: int | None) -> int:
        if version is not None:
            return version
        if t.live_version is None:
            raise UnknownVersionError(f"task {t.name!r} has no live version: promote one or name a version")
        return t.live_version

    @staticmethod
    def _backbone_row(s: Session, fingerprint: str) -> Backbone:
        row = s.exec(select(Backbone).where(Backbone.fingerprint == fingerprint)).first()
        if row is None:
            raise UnknownBackboneError(f"unknown backbone {str(fingerprint)[:12]}…: register the backbone before adding tasks to it")
        return row

    @staticmethod
    def _fingerprint(s: Session, t: Task) -> str:
        return s.exec(select(Backbone.fingerprint).where(Backbone.id == t.backbone_id)).one()

    def _check_task_fits(self, s: Session, t: Task, bb: Backbone, classes: list[str]) -> None:
        if t.backbone_id != bb.id:
            raise BackboneMismatchError(
                f"task {t.name!r} belongs to backbone {self._fingerprint(s, t)[:12]}…, not {bb.fingerprint[:12]}…: use a new task name for another backbone"
            )
        if list(t.class_names) != classes:
            raise ClassNamesMismatchError(
                f"task {t.name!r} has classes {list(t.class_names)}, not {classes}: a different class set is a new task, use a new name"
            )

    @staticmethod
    def _ever_live(s: Session, t: Task) -> set[int]:
        events = s.exec(select(AuditEvent).where(AuditEvent.task == t.name,
                                                 AuditEvent.action.in_(LIVE_ACTIONS))).all()  # type: ignore[attr-defined]
        return {e.details["live_after"] for e in events if e.details.get("live_after") is not None}
