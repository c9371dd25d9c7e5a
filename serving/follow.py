"""Following the registry: the server notices a moved live pointer and swaps models atomically.

A background thread reads every task's live pointer about once a second (one cheap
query: ``Registry.list_tasks``), from whichever process moved it and on either database.
When the pointers it reads differ from the versions being served, it reads the new
versions and loads and verifies only the tasks whose version moved
(:func:`~forkpoint.serving.model.load_served`; every other task keeps its cached branch
object) while requests keep using the old snapshot, then replaces the reference in one assignment. A
request takes the reference once, so it sees the old model or the new one, never a mix.
A load that fails leaves the old model serving; the failure is logged, counted and
shown by ``/readyz`` (``status: stale`` and, in ``refused``, each task's live version that is
not served), and retried when the pointers move again (or after ``retry_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from forkpoint.contract.errors import ForkpointError
from forkpoint.serving.metrics import Metrics
from forkpoint.serving.model import Served, load_served
from forkpoint.workflows.branch_cache import BranchCache
from forkpoint.workflows.home import Home

log = logging.getLogger("forkpoint.serving")

POLL_S = 1.0
RETRY_S = 30.0

Pointers = tuple[tuple[str, int], ...]  # (task, live version), sorted by task


@dataclass(frozen=True)
class FollowStatus:
    """What ``/readyz`` reports about following: the last poll, the last swap and the last failure."""

    polls: int
    swaps: int
    last_poll_at: float | None
    last_swap_at: float | None
    error: str | None  # why the newest pointers are not served (None: they are)
    refused: dict[str, int | None] = field(default_factory=dict)  # task -> live version the registry names, not served


def refused_pointers(pointers: Pointers, served: dict[str, int] | None) -> dict[str, int | None]:
    """The live pointers a failed load left unserved: tasks whose version differs from the one served
    (None: a served task the registry no longer points at). Empty when the failure read no pointers
    (the database went away): nothing names a version then."""
    if served is None:
        return dict(pointers)
    now = dict(pointers)
    out: dict[str, int | None] = {t: v for t, v in now.items() if served.get(t) != v}
    if pointers:
        out.update({t: None for t in served if t not in now})
    return out


class Follower:
    """Holds the served model; a daemon thread keeps it equal to the registry's live pointers.

    ``tasks`` None serves every live task of the home's trunk (tasks added later appear);
    a list serves exactly those. ``current`` is always a complete, verified :class:`Served`."""

    def __init__(self, home: Home, tasks: list[str] | None, metrics: Metrics | None = None,
                 poll_s: float = POLL_S, retry_s: float = RETRY_S, device: str = "cpu",
                 cache_bytes: int | None = None) -> None:
        self.home = home
        self.cache = BranchCache(home, cache_bytes)  # shared by every snapshot: unchanged tasks keep their objects
        self.device = device
        self.tasks = list(tasks) if tasks else None
        self.metrics = metrics or Metrics()
        self.poll_s = poll_s
        self.retry_s = retry_s
        self._current: Served | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._polls = self._swaps = 0
        self._last_poll: float | None = None
        self._last_swap: float | None = None
        self._failed: tuple[Pointers, float, str] | None = None  # pointers that failed to load, when, why

    # ---- the model ---------------------------------------------------------------

    @property
    def current(self) -> Served:
        served = self._current
        if served is None:
            raise RuntimeError("the follower has not loaded a model yet: call load() first")
        return served

    @property
    def ready(self) -> bool:
        return self._current is not None

    def load(self) -> Served:
        """Load and verify the model the registry points at now (startup: errors propagate)."""
        served = load_served(self.home, self.tasks, device=self.device, cache=self.cache)
        self._swap(served)
        return served

    def replace(self, served: Served) -> None:
        """Serve ``served`` from now on (benchmarks: the same tasks as separate models). It stays until the
        registry's pointers differ from ``served.versions``; then the follower loads the registry's model again."""
        self._swap(served)

    def _swap(self, served: Served) -> None:
        self._current = served  # one reference assignment: readers see the old model or the new one
        self._swaps += 1
        self._last_swap = time.time()
        self.metrics.replace("forkpoint_live_version", "Live version served per task.", served.versions, "task")
        self.metrics.inc("forkpoint_model_swaps_total", "Models loaded and swapped in (the first load included).")

    # ---- following -----------------------------------------------------------------

    def pointers(self) -> Pointers:
        """The registry's live pointers for the served selection, now."""
        fp = self.home.fingerprint
        found = {t.name: t.live_version for t in self.home.registry.list_tasks()
                 if t.backbone_fingerprint == fp and t.live_version is not None}
        if self.tasks is not None:
            found = {t: v for t, v in found.items() if t in self.tasks}
        return tuple(sorted(found.items()))

    def check(self) -> bool:
        """One poll: reload and swap if the pointers moved. True if a new model was swapped in."""
        now = self.pointers()
        self._polls += 1
        self._last_poll = time.time()
        served = self._current
        if served is not None and now == tuple(sorted(served.versions.items())):
            self._failed = None
            return False
        if self._failed is not None and self._failed[0] == now and time.time() - self._failed[1] < self.retry_s:
            return False  # the same pointers failed a moment ago: wait for them to move (or retry_s)
        try:
            fresh = load_served(self.home, self.tasks, previous=served, device=self.device, cache=self.cache)
        except ForkpointError as e:
            self._failed = (now, time.time(), str(e))
            self.metrics.inc("forkpoint_reload_failures_total", "Reloads refused by a check; the previous model kept serving.")
            log.error("not swapping to %s: %s", dict(now), e)
            return False
        self._failed = None
        self._swap(fresh)
        log.info("now serving %s (reloaded: %s)", fresh.versions, ", ".join(fresh.moved) or "none")
        return True

    def status(self) -> FollowStatus:
        """Where following stands; ``refused`` names the live pointers not served because their load failed."""
        failed, served = self._failed, self._current
        refused = {} if failed is None else refused_pointers(failed[0], None if served is None else served.versions)
        return FollowStatus(self._polls, self._swaps, self._last_poll, self._last_swap,
                            None if failed is None else failed[2], refused)

    def start(self) -> None:
        """Load (unless :meth:`load` already did) and then poll, in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="forkpoint-follow", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._current is None:
                    self.load()
                else:
                    self.check()
            except Exception as e:  # the database went away, a check failed at startup, ...: say so, try again
                self._failed = ((), time.time(), str(e) or type(e).__name__)
                self.metrics.inc("forkpoint_poll_failures_total", "Polls or loads of the registry that failed.")
                log.warning("following the registry failed: %s", e)
            self._stop.wait(self.poll_s)
