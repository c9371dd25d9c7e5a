"""The no-forgetting invariant, checked rather than hoped for.

Adding a task may create tensors but must never change one that already ships: the
trunk's and every earlier branch's fingerprints are taken before and compared after.
"""

from __future__ import annotations

from typing import Protocol

from forkpoint.contract.errors import ForgettingError


class Fingerprinted(Protocol):
    def fingerprints(self) -> dict[str, str]: ...


class FrozenGuard:
    """Snapshot fingerprints now; ``check()`` raises ForgettingError if any of them moved."""

    def __init__(self, model: Fingerprinted) -> None:
        self.model = model
        self.before = model.fingerprints()

    def changed(self) -> list[str]:
        after = self.model.fingerprints()
        return [k for k, v in self.before.items() if after.get(k) != v]

    def check(self) -> None:
        changed = self.changed()
        if changed:
            raise ForgettingError(
                f"frozen weights changed while adding a task ({', '.join(changed)}): nothing was registered; report this as a bug"
            )

    def __enter__(self) -> "FrozenGuard":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.check()
