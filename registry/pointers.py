"""Moving a task's live pointer (promote, rollback) and scoring events: a mixin of
:class:`forkpoint.registry.core.Registry`.

Versions never change; only ``Task.live_version`` moves, by a write transaction that
resolves its target under the chain lock and appends the event that says where it went
(``live_before``/``live_after``, which ``verify`` replays against the pointer).
"""

from __future__ import annotations

from typing import Any, Callable

from sqlmodel import Session

from forkpoint.registry import chain, evidence, validate
from forkpoint.registry.errors import (
    ArtifactCorruptError,
    ArtifactMissingError,
    InvalidInputError,
    RegistryError,
    TamperedError,
    UnknownVersionError,
)
from forkpoint.registry.models import Task, TaskVersion
from forkpoint.registry.provenance import default_actor
from forkpoint.registry.records import AuditRecord, VersionRecord
from forkpoint.registry.parts import RegistryParts, now


class UnservableVersionError(RegistryError):
    """A promote or rollback to a version whose weights fail their checks: refused, the pointer stays (exit 1).

    Moving the pointer first would make every reader (``predict``, a following server) fail on
    it; refusing here keeps the live version one that can be served."""

    exit_code = 1


class PointersMixin(RegistryParts):
    """``promote``, ``rollback``, ``record_evaluation``."""

    def promote(self, task: str, version: int, actor: str | None = None) -> VersionRecord:
        """Make ``version`` the live one (any existing version whose weights pass their checks).

        Promoting the version that is already live changes nothing and logs nothing: the
        returned record's ``live`` is true either way (compare with the pointer read before)."""
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
        """Move the live pointer inside one write transaction (the target is resolved and verified under the lock)."""
        name = validate.task_name(task)
        actor = actor or default_actor()
        with self._write() as s:
            chain.lock(s)  # before the task row is locked: one lock order for every writer
            t = self._task_row(s, name)
            version = target(s, t)
            row = self._version_row(s, t, version)
            before = t.live_version
            fp = self._fingerprint(s, t)
            if version == before:  # already live (only promote gets here): nothing to move, nothing to log
                return VersionRecord.of(row, t, fp, self.store.rel(row.weights_sha256))
            self._check_servable(s, row, name, fp, action, before)
            t.live_version, t.updated_at = version, now()
            s.add(t)
            self._log(s, actor, action, f"task:{name}@{version}", name, version,
                      {"live_before": before, "live_after": version})
            rec = VersionRecord.of(row, t, fp, self.store.rel(row.weights_sha256))
            s.commit()
            return rec

    def _check_servable(self, s: Session, row: TaskVersion, name: str, fingerprint: str, action: str,
                        before: int | None) -> None:
        """The version's own checks a load would make (row seal, add event, file sha256, file header), now:
        a pointer is never moved onto weights that every reader would then refuse."""
        try:
            evidence.check_served(s, [(row, name, fingerprint)], triggers=False)  # its seal and add event
            data = self.store.get(row.weights_sha256, used_by=f"{name}@{row.version}")
            evidence.check_file(data, name, row)
        except (ArtifactMissingError, ArtifactCorruptError, TamperedError) as e:
            stays = f"v{before}" if before is not None else "unset"
            raise UnservableVersionError(
                f"refusing to {action} task {name!r} to v{row.version}: {str(e).splitlines()[0]}; "
                f"the live pointer stays {stays} (run `forkpoint audit` for every problem)"
            ) from None

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
