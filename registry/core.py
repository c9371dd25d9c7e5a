"""The registry: one entry point over the database and the object store.

Every write follows one pattern: validate everything first (bad input writes
nothing), claim the weights object (registry/claims.py) and put it into the
content-addressed store (atomic rename), then change rows, release the claim and
append the audit event (registry/chain.py) in a single database transaction. A crash at
any point therefore leaves either the full version or, at worst, an unreferenced file
that ``gc`` removes once its claim is stale. Versions are never updated or deleted; only
a task's live pointer moves.

Adding versions lives in registry/versions.py, loading what is served in
registry/serving.py, verify and gc in registry/maintenance.py; all are methods of
:class:`Registry`.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from forkpoint.registry import chain, claims, validate
from forkpoint.registry.codec import decode, encode, sha256
from forkpoint.registry.crashpoints import crash_point
from forkpoint.registry.db import WRITE, default_url, make_engine, shown
from forkpoint.registry.diff import diff_versions
from forkpoint.registry.errors import (
    BackboneMismatchError,
    ClassNamesMismatchError,
    ConcurrencyError,
    DatabaseUnavailableError,
    InvalidInputError,
    RegistryError,
    UnknownBackboneError,
    UnknownTaskError,
    UnknownVersionError,
)
from forkpoint.registry.evidence import LIVE_ACTIONS
from forkpoint.registry.maintenance import GC_GRACE_S, MaintenanceMixin  # noqa: F401 - GC_GRACE_S re-exported
from forkpoint.registry.migrate import upgrade
from forkpoint.registry.models import AuditEvent, Backbone, RegistrySetting, Task, TaskVersion
from forkpoint.registry.objectstore import check_url, open_store, probe
from forkpoint.registry.provenance import default_actor
from forkpoint.registry.records import (
    AuditRecord,
    BackboneRecord,
    TaskHistory,
    TaskRecord,
    VersionDiff,
    VersionRecord,
    utc,
)
from forkpoint.registry.serving import ServingMixin
from forkpoint.registry.store import LocalObjectStore, WeightStore
from forkpoint.registry.versions import MAX_ATTEMPTS, VersionsMixin, backoff as _backoff

if TYPE_CHECKING:  # torch is imported only where tensors are (de)serialised: read commands stay torch-free
    import torch


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Registry(VersionsMixin, ServingMixin, MaintenanceMixin):
    """Versioned tasks of one or more frozen backbones. Open with :meth:`open`.

    ``add_version`` lives in :mod:`~forkpoint.registry.versions`, ``load_tensors``/``live`` in
    :mod:`~forkpoint.registry.serving`, ``verify``/``gc`` in :mod:`~forkpoint.registry.maintenance`."""

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
             store_url: str | None = None) -> "Registry":
        """Open (creating and migrating as needed) the registry at ``home``.

        ``db_url`` None means SQLite at ``home/registry.db``; otherwise any
        ``sqlite:///…`` or ``postgresql+psycopg://…`` URL. Weights live where the database
        says (its ``store_url`` setting, so every machine sharing it finds the same store),
        else in ``home/objects``. ``store_url`` (``s3://bucket/prefix``, ``file:///path``, any
        fsspec URL) records that setting on a registry that has none and holds no weights yet;
        a different recorded URL is refused. ``store`` overrides both (tests, tools).
        Nothing is created under ``home`` unless the database is reachable.
        """
        home = Path(home).expanduser().resolve()
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

    # ---- backbones ---------------------------------------------------------------

    def register_backbone(
        self,
        arch: str,
        weights_source: str,
        fingerprint: str,
        block_names: Sequence[str],
        resolution: int,
        mean: Sequence[float],
        std: Sequence[float],
        trunk_tensors: dict[str, torch.Tensor] | None = None,
        actor: str | None = None,
    ) -> BackboneRecord:
        """Record a frozen trunk. Idempotent for the same fingerprint and description;
        a second call may attach the trunk tensors if the first did not."""
        fp = validate.fingerprint(fingerprint)
        if not isinstance(arch, str) or not arch or not isinstance(weights_source, str):
            raise InvalidInputError(f"arch {arch!r} / weights_source {weights_source!r} is not usable: pass non-empty strings")
        blocks = list(block_names) if isinstance(block_names, (list, tuple)) else None
        if not blocks or not all(isinstance(b, str) and b for b in blocks) or len(set(blocks)) != len(blocks):
            raise InvalidInputError(f"block_names {block_names!r} is not usable: pass the backbone's unit names as a non-empty list of distinct strings")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
            raise InvalidInputError(f"resolution {resolution!r} is not usable: pass the input size in pixels as a positive integer")
        norm = {}
        for what, vals in (("mean", mean), ("std", std)):
            if not isinstance(vals, (list, tuple)) or len(vals) != 3:
                raise InvalidInputError(f"{what} {vals!r} is not usable: pass 3 numbers, one per RGB channel")
            norm[what] = [validate.finite_float(what, v) for v in vals]
        if any(v <= 0 for v in norm["std"]):
            raise InvalidInputError(f"std {list(std)!r} has a non-positive entry: pass the normalisation std (all > 0)")
        actor = actor or default_actor()

        trunk_sha = trunk_bytes = claim_id = None
        if trunk_tensors is not None:
            data = encode(trunk_tensors)
            (trunk_sha, claim_id), trunk_bytes = self._put_claimed(data, actor), len(data)
        try:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    with self._write() as s:
                        if claim_id is not None:
                            claims.release(s, claim_id)
                        chain.lock(s)  # before any row lock: one lock order for every writer
                        row = self._record_backbone(s, fp, arch, weights_source, blocks, resolution, norm,
                                                    trunk_sha, trunk_bytes, actor)
                        s.commit()
                        claim_id = None
                        return BackboneRecord.of(row)
                except IntegrityError:
                    _backoff(attempt)
        finally:
            if claim_id is not None:
                self._release_claim(claim_id)
        raise ConcurrencyError(f"could not register backbone {fp[:12]}… after {MAX_ATTEMPTS} attempts: retry")

    def _record_backbone(self, s: Session, fp: str, arch: str, weights_source: str, blocks: list[str], resolution: int,
                         norm: dict[str, list[float]], trunk_sha: str | None, trunk_bytes: int | None, actor: str) -> Backbone:
        row = s.exec(select(Backbone).where(Backbone.fingerprint == fp)).first()
        if row is None:
            row = Backbone(
                fingerprint=fp, arch=arch, weights_source=weights_source, num_blocks=len(blocks),
                block_names=blocks, resolution=resolution, mean=norm["mean"], std=norm["std"],
                trunk_sha256=trunk_sha, trunk_bytes=trunk_bytes, actor=actor, created_at=_now(),
            )
            s.add(row)
            self._log(s, actor, "register_backbone", f"backbone:{fp}", details={
                "arch": arch, "weights_source": weights_source, "num_blocks": len(blocks), "trunk_sha256": trunk_sha,
            })
            return row
        mine = (arch, blocks, resolution, norm["mean"], norm["std"])
        theirs = (row.arch, list(row.block_names), row.resolution, list(row.mean), list(row.std))
        if mine != theirs:
            raise BackboneMismatchError(
                f"fingerprint {fp[:12]}… is already registered as {row.arch} ({row.num_blocks} blocks, {row.resolution}px) with different settings: a fingerprint must identify one trunk"
            )
        if trunk_sha and row.trunk_sha256 and row.trunk_sha256 != trunk_sha:
            raise BackboneMismatchError(
                f"backbone {fp[:12]}… already stores trunk {row.trunk_sha256[:12]}…, not {trunk_sha[:12]}…: these are different tensors under one fingerprint"
            )
        if trunk_sha and not row.trunk_sha256:
            row.trunk_sha256, row.trunk_bytes = trunk_sha, trunk_bytes
            s.add(row)
            self._log(s, actor, "attach_trunk", f"backbone:{fp}", details={"trunk_sha256": trunk_sha})
        return row

    def retire_backbone(self, fingerprint: str, reason: str, actor: str | None = None) -> None:
        """Remove a trunk no task uses (e.g. a random-init one registered by mistake); logged.

        Its stored trunk object becomes unreferenced, so ``gc`` removes it later."""
        fp = validate.fingerprint(fingerprint)
        actor = actor or default_actor()
        with self._write() as s:
            chain.lock(s)
            row = self._backbone_row(s, fp)
            used = s.exec(select(Task.name).where(Task.backbone_id == row.id)).all()
            if used:
                raise InvalidInputError(f"backbone {fp[:12]}… serves task(s) {', '.join(used)}: a trunk with tasks cannot be retired")
            self._log(s, actor, "retire_backbone", f"backbone:{fp}", details={"arch": row.arch, "reason": reason,
                                                                             "weights_source": row.weights_source})
            s.delete(row)
            s.commit()

    def backbones(self) -> list[BackboneRecord]:
        with self._read() as s:
            return [BackboneRecord.of(b) for b in s.exec(select(Backbone).order_by(Backbone.id)).all()]

    def backbone(self, fingerprint: str) -> BackboneRecord:
        with self._read() as s:
            return BackboneRecord.of(self._backbone_row(s, fingerprint))

    def load_trunk(self, fingerprint: str) -> dict[str, torch.Tensor] | None:
        """The stored trunk tensors (sha256-checked), or None if none were stored."""
        b = self.backbone(fingerprint)
        if not b.trunk_sha256:
            return None
        return decode(self.store.get(b.trunk_sha256, used_by=f"trunk of backbone {b.fingerprint[:12]}…"))

    # ---- versions -----------------------------------------------------------------

    def promote(self, task: str, version: int, actor: str | None = None) -> VersionRecord:
        """Make ``version`` the live one (any existing version; a no-op move is still logged)."""
        return self._move_live("promote", task, lambda s, t: version, actor)

    def rollback(self, task: str, to: int | None = None, actor: str | None = None) -> VersionRecord:
        """Move the live pointer back to ``to``, by default the newest earlier version that was ever live."""

        def target(s: Session, t: Task) -> int:
            current = t.live_version
            if current is None:
                raise UnknownVersionError(f"task {t.name!r} has no live version to roll back from: promote one first")
            if to is None:
                earlier = [v for v in self._ever_live(s, t) if v < current]
                if not earlier:
                    raise UnknownVersionError(
                        f"no version of {t.name!r} older than live v{current} was ever live: pass the target version explicitly"
                    )
                return max(earlier)
            if to >= current:
                raise InvalidInputError(f"v{to} is not older than live v{current} of {t.name!r}: use promote to move forward")
            return to

        return self._move_live("rollback", task, target, actor)

    def _move_live(self, action: str, task: str, target: Callable[[Session, Task], int], actor: str | None) -> VersionRecord:
        """Move the live pointer inside one write transaction (the target is resolved under the lock)."""
        name = validate.task_name(task)
        actor = actor or default_actor()
        with self._write() as s:
            chain.lock(s)  # before the task row is locked: one lock order for every writer
            t = self._task_row(s, name)
            version = target(s, t)
            row = self._version_row(s, t, version)
            before = t.live_version
            t.live_version, t.updated_at = version, _now()
            s.add(t)
            self._log(s, actor, action, f"task:{name}@{version}", name, version,
                      {"live_before": before, "live_after": version})
            rec = VersionRecord.of(row, t, self._fingerprint(s, t), self.store.rel(row.weights_sha256))
            s.commit()
            return rec

    def record_evaluation(self, task: str, version: int, details: dict[str, Any], actor: str | None = None) -> AuditRecord:
        """Append an ``evaluate`` event: how ``task@version`` scored on which data (its md5), kept in its history.

        Versions stay immutable; the score lives in the audit chain, sealed like every event."""
        name = validate.task_name(task)
        actor = actor or default_actor()
        with self._write() as s:
            chain.lock(s)
            t = self._task_row(s, name)
            self._version_row(s, t, version)
            event = self._log(s, actor, "evaluate", f"task:{name}@{version}", name, version, details)
            rec = AuditRecord.of(event)
            s.commit()
            return rec

    # ---- reads ---------------------------------------------------------------------

    def list_tasks(self) -> list[TaskRecord]:
        with self._read() as s:
            stats = {
                tid: (latest, n)
                for tid, latest, n in s.exec(
                    select(TaskVersion.task_id, sa.func.max(TaskVersion.version), sa.func.count())
                    .group_by(TaskVersion.task_id)
                ).all()
            }
            fps = {b.id: b.fingerprint for b in s.exec(select(Backbone)).all()}
            return [
                TaskRecord.of(t, fps[t.backbone_id], *stats.get(t.id, (None, 0)))
                for t in s.exec(select(Task).order_by(Task.name)).all()
            ]

    def get_task(self, task: str) -> TaskRecord:
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            latest, n = s.exec(
                select(sa.func.max(TaskVersion.version), sa.func.count()).where(TaskVersion.task_id == t.id)
            ).one()
            return TaskRecord.of(t, self._fingerprint(s, t), latest, n)

    def show(self, task: str, version: int | None = None) -> VersionRecord:
        """One version; None means the live one."""
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            row = self._version_row(s, t, self._resolve(t, version))
            return VersionRecord.of(row, t, self._fingerprint(s, t), self.store.rel(row.weights_sha256))

    def versions(self, task: str) -> list[VersionRecord]:
        with self._read() as s:
            t = self._task_row(s, validate.task_name(task))
            fp = self._fingerprint(s, t)
            rows = s.exec(select(TaskVersion).where(TaskVersion.task_id == t.id).order_by(TaskVersion.version)).all()
            return [VersionRecord.of(r, t, fp, self.store.rel(r.weights_sha256)) for r in rows]

    def ever_live(self, task: str) -> set[int]:
        """Versions the live pointer was ever on (from the audit log): what "previously live" means."""
        with self._read() as s:
            return self._ever_live(s, self._task_row(s, validate.task_name(task)))

    def history(self, task: str) -> TaskHistory:
        """All versions (oldest first) and every audit event naming the task."""
        name = validate.task_name(task)
        return TaskHistory(task=self.get_task(name), versions=tuple(self.versions(name)),
                           events=tuple(self.audit_events(task=name)))

    def diff(self, task: str, v1: int, v2: int) -> VersionDiff:
        return diff_versions(self.show(task, v1), self.show(task, v2))

    def audit_events(
        self,
        task: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Audit events oldest first (with ``limit``: the newest ``limit`` of them)."""
        with self._read() as s:
            q = select(AuditEvent)
            if task is not None:
                q = q.where(AuditEvent.task == task)
            if action is not None:
                q = q.where(AuditEvent.action == action)
            if since is not None:
                q = q.where(AuditEvent.at >= utc(since))  # stored as UTC; SQLite compares the text
            q = q.order_by(AuditEvent.id.desc())  # type: ignore[union-attr]
            if limit is not None:
                q = q.limit(limit)
            return [AuditRecord.of(e) for e in reversed(s.exec(q).all())]

    # ---- helpers -------------------------------------------------------------------

    @staticmethod
    def _log(s: Session, actor: str, action: str, target: str, task: str | None = None, version: int | None = None,
             details: dict[str, Any] | None = None) -> AuditEvent:
        """Append an event to the audit chain inside the write transaction ``s``."""
        return chain.append(s, AuditEvent(at=_now(), actor=actor, action=action, target=target, task=task,
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
            raise UnknownTaskError(f"unknown task {name!r}: list tasks to see the registered names")
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


STORE_URL = "store_url"  # registry_setting name (0005)


def _recorded_store_url(engine: sa.Engine, db_url: str, wanted: str | None) -> str | None:
    """The database's store URL; with ``wanted`` (checked and probed by the caller), record it if none is set.

    A registry's store is chosen once: a different URL, or a first URL on a registry that
    already holds weights in its home's ``objects/``, would strand those weights, so both are refused."""
    with _db_errors(db_url), Session(engine) as s:
        row = s.get(RegistrySetting, STORE_URL)
        recorded = row.value if row is not None else None
    if wanted is None:
        return recorded
    if recorded is not None:
        if recorded != wanted:
            raise InvalidInputError(f"this registry keeps its weights in {recorded}, not {wanted}: "
                                    "drop --store (it is read from the database) or use a new --db/--home for another store")
        return recorded
    with _db_errors(db_url), Session(engine) as s:
        held = s.exec(select(sa.func.count()).select_from(TaskVersion)).one() + s.exec(
            select(sa.func.count()).select_from(Backbone).where(Backbone.trunk_sha256.is_not(None))).one()  # type: ignore[union-attr]
    if held:
        raise InvalidInputError(f"this registry already holds {held} weights object(s) in its home's objects/: "
                                f"a store is chosen at init; use a new --db/--home for {wanted}")
    try:
        with _db_errors(db_url), Session(engine.execution_options(**WRITE)) as s:
            s.add(RegistrySetting(name=STORE_URL, value=wanted, actor=default_actor(), set_at=_now()))
            s.commit()
    except IntegrityError:  # another init recorded one first: agree with it or refuse
        return _recorded_store_url(engine, db_url, wanted)
    return wanted


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@contextmanager
def _db_errors(url: str) -> Iterator[None]:
    """Turn driver failures (server gone, disk full, locked too long) into one-line errors.
    IntegrityError passes through: writers retry on it."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as e:
        raise DatabaseUnavailableError(f"database error on {shown(url)} ({_first_line(e)}): check the server and retry") from None
