"""What the :class:`forkpoint.registry.core.Registry` mixins may call on it, declared once.

``Registry`` (registry/core.py) defines these; the mixins (``backbones``, ``pointers``,
``reads``) inherit this class so a type checker sees them, and it adds nothing at run time.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from forkpoint.registry.models import AuditEvent, Backbone, Task, TaskVersion
from forkpoint.registry.store import WeightStore


def now() -> datetime:
    """The registry's clock: aware UTC."""
    return datetime.now(timezone.utc)


class RegistryParts:
    """The private helpers of ``Registry`` its mixins use."""

    if TYPE_CHECKING:
        store: WeightStore
        def _read(self) -> AbstractContextManager[Session]: ...
        def _write(self) -> AbstractContextManager[Session]: ...
        def _put_claimed(self, data: bytes, actor: str) -> tuple[str, int]: ...
        def _release_claim(self, claim_id: int) -> None: ...
        @staticmethod
        def _log(s: Session, actor: str, action: str, target: str, task: str | None = None, version: int | None = None,
                 details: dict[str, Any] | None = None) -> AuditEvent: ...
        @staticmethod
        def _task_row(s: Session, name: str) -> Task: ...
        @staticmethod
        def _version_row(s: Session, t: Task, version: int) -> TaskVersion: ...
        @staticmethod
        def _resolve(t: Task, version: int | None) -> int: ...
        @staticmethod
        def _backbone_row(s: Session, fingerprint: str) -> Backbone: ...
        @staticmethod
        def _fingerprint(s: Session, t: Task) -> str: ...
        @staticmethod
        def _ever_live(s: Session, t: Task) -> set[int]: ...
