"""Branches loaded from the registry when first asked for, kept in an LRU cache bounded by bytes.

A home with 1,000 live tasks should not read, hash and rebuild 1,000 branches before it can
answer one request for one task. The cache loads a version's branch on its first use and
verifies it then, with every check the eager path had: the registry's (the file's sha256,
the row's seal and add event, the file's header naming that task and version: see
``registry.serving``), the branch fits this trunk and its head the task's classes
(``Branch.from_state``), the row names this home's trunk, the weights are finite, any
extra check a caller adds (``check``: e.g. recomputing stored reference outputs), and a
version reloaded after eviction has the branch digest it had the first time.

Entries are keyed by (task, version, weights sha256): versions are immutable, so an entry
never goes stale, and a server that swaps in new live pointers keeps using the very same
objects for every task whose version did not move. Stacked groups of same-range branches
(``learner.stacked``) live in the same cache and count against the same budget. The
budget bounds what the cache holds; a pass in progress keeps what it uses until it ends.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Callable

import torch

from forkpoint.contract.errors import ForgettingError
from forkpoint.learner import Branch
from forkpoint.learner.backbone import module_digest
from forkpoint.registry import VersionRecord

BranchCheck = Callable[[VersionRecord, Branch], None]  # raises (a ForkpointError) to refuse a freshly loaded branch


class BranchLoadError(ForgettingError):
    """A task's stored branch failed a check when it was loaded: it is not served (exit 1, HTTP 500)."""


def branch_key(rec: VersionRecord) -> tuple[str, int, str]:
    return (rec.task, rec.version, rec.weights_sha256)


def nbytes_of(branch: Branch) -> int:
    return sum(t.numel() * t.element_size() for t in branch.state_dict().values())


class BranchCache:
    """``get(record) -> Branch``, loading and verifying on a miss; least recently used entries go first.

    ``budget_bytes`` None keeps everything. Thread-safe: one load per key at a time (a second
    caller waits for the first), other keys load and hit meanwhile."""

    def __init__(self, home, budget_bytes: int | None = None, check: BranchCheck | None = None) -> None:
        self.home = home
        self.budget_bytes = budget_bytes
        self.check = check
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._digests: dict[tuple, str] = {}  # branch key -> module digest at its first load
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}
        self.nbytes = 0
        self.hits = self.misses = self.evictions = 0

    # ---- branches ------------------------------------------------------------------

    def get(self, rec: VersionRecord) -> Branch:
        key = branch_key(rec)
        found = self._lookup(key)
        if found is not None:
            return found  # type: ignore[return-value]
        with self._key_lock(key):
            found = self._lookup(key, count=False)
            if found is not None:
                return found  # type: ignore[return-value]
            branch = self._load(rec, key)
            self._insert(key, branch, nbytes_of(branch))
            return branch

    def digest(self, rec: VersionRecord) -> str | None:
        """The branch digest recorded when this version was first loaded here (None: not loaded yet)."""
        return self._digests.get(branch_key(rec))

    def cached(self, rec: VersionRecord) -> bool:
        with self._lock:
            return branch_key(rec) in self._entries

    def _load(self, rec: VersionRecord, key: tuple) -> Branch:
        from forkpoint.workflows.live import rebuild_branch

        home = self.home
        if rec.backbone_fingerprint != home.fingerprint:
            raise BranchLoadError(f"task {rec.task!r} v{rec.version} belongs to trunk {rec.backbone_fingerprint[:12]}, "
                                  f"not this home's {home.fingerprint[:12]}: serve it from its own home")
        branch = rebuild_branch(home, rec, home.registry.load_tensors(rec.task, rec.version))  # sha256, seal, header
        if branch.spec.num_classes != len(rec.class_names):
            raise BranchLoadError(f"task {rec.task!r} v{rec.version} has {len(rec.class_names)} class names but a "
                                  f"{branch.spec.num_classes}-class head: run `forkpoint audit`")
        if not all(bool(torch.isfinite(t).all()) for t in branch.state_dict().values() if t.is_floating_point()):
            raise BranchLoadError(f"task {rec.task!r} v{rec.version} has non-finite weights: run `forkpoint audit`")
        digest = module_digest(branch)
        first = self._digests.setdefault(key, digest)
        if first != digest:
            raise BranchLoadError(f"task {rec.task!r} v{rec.version} reloaded with another branch digest "
                                  f"({digest[:12]}, first {first[:12]}): run `forkpoint audit`")
        if self.check is not None:
            self.check(rec, branch)
        return branch

    # ---- stacked groups ----------------------------------------------------------------

    def stacked(self, key: Hashable, build: Callable[[], object | None]) -> object | None:
        """A derived object (a stacked group) cached under ``key``; ``build()`` runs on a miss (None is kept too)."""
        found = self._lookup(("stack", key))
        if found is not None:
            return None if found is _NONE else found
        with self._key_lock(("stack", key)):
            found = self._lookup(("stack", key), count=False)
            if found is None:
                built = build()
                found = _NONE if built is None else built
                self._insert(("stack", key), found, int(getattr(built, "nbytes", 0)))
        return None if found is _NONE else found

    # ---- bookkeeping ----------------------------------------------------------------

    def _key_lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._loading.setdefault(key, threading.Lock())

    def _lookup(self, key: Hashable, count: bool = True) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += count
                return entry[0]
            self.misses += count
            return None

    def _insert(self, key: Hashable, value: object, nbytes: int) -> None:
        with self._lock:
            self._entries[key] = (value, nbytes)
            self.nbytes += nbytes
            self._loading.pop(key, None)
            while self.budget_bytes is not None and self.nbytes > self.budget_bytes and len(self._entries) > 1:
                old, (_, size) = self._entries.popitem(last=False)
                self.nbytes -= size
                self.evictions += 1

    def stats(self) -> dict[str, int | None]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self.nbytes, "budget_bytes": self.budget_bytes,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions}


_NONE = object()  # a cached "cannot be stacked": the loop runs, without asking again
