"""What the server answers with: one verified, immutable snapshot of the live versions.

A :class:`Served` names, for every served task, the registry version (and its weights'
sha256) that answers; its branches come from a shared :class:`BranchCache`, loaded and
verified the first time a request needs them, so a home with 1,000 live tasks starts
without reading 1,000 files and a request for one task costs the trunk up to its fork
plus that one branch. A snapshot is never changed: the follower swaps in a new one, in
which a task whose version did not move maps to the very same cached branch object, and
a task whose version moved has been loaded and verified *before* the swap. So a request
always meets one whole set of versions and knows which versions answered it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from forkpoint.contract.errors import ForgettingError
from forkpoint.workflows.branch_cache import BranchCache
from forkpoint.workflows.home import Home
from forkpoint.workflows.live import LiveSet, live_records


class ServedModelError(ForgettingError):
    """A freshly loaded model failed its checks (trunk fingerprint, branch digests, probe pass): it is not served."""


@dataclass(frozen=True)
class Served:
    """The served versions, their branches (lazily, through a cache) and what was checked when it was loaded."""

    live: LiveSet
    fingerprint: str  # the trunk's, recomputed from the tensors in memory
    fingerprints: dict[str, str]  # "trunk": the trunk's; "task:NAME": the sha256 of the weights that answer for NAME
    loaded_at: float = field(default_factory=time.time)
    moved: tuple[str, ...] = ()  # tasks (re)loaded for this snapshot; every other one kept its branch object

    @property
    def tasks(self) -> list[str]:
        return self.live.tasks

    @property
    def versions(self) -> dict[str, int]:
        return {t: rec.version for t, rec in self.live.versions.items()}

    @property
    def model(self) -> LiveSet:
        return self.live


def load_served(home: Home, tasks: list[str] | None, previous: Served | None = None, device: str = "cpu",
                cache: BranchCache | None = None) -> Served:
    """Read the live pointers and verify what they point at; raises rather than return a doubtful snapshot.

    Checks: the rows' own (seals, add events, live pointers; ``registry.serving``), the trunk's
    fingerprint recomputed from memory against the registered one, every task's trunk. Each task
    whose version is new since ``previous`` is loaded now with every check of the cache (sha256,
    header, fit, finite weights, digest) and run once on a blank image (finite logits of its
    head's width); on the first load (no ``previous``) nothing is loaded until a request asks."""
    home.backbone.to(device)
    cache = cache or (previous.live.cache if previous is not None else BranchCache(home))
    versions = live_records(home, tasks) if previous is None else _moved_records(home, tasks, previous)
    fp = home.backbone.fingerprint()
    if fp != home.fingerprint:
        raise ServedModelError(f"the trunk in memory has fingerprint {fp[:12]}, not the registered "
                               f"{home.fingerprint[:12]}: restart the server")
    for name, rec in versions.items():
        if rec.backbone_fingerprint != home.fingerprint:
            raise ServedModelError(f"task {name!r} v{rec.version} belongs to trunk {rec.backbone_fingerprint[:12]}: "
                                   "serve it from its own home")
    live = LiveSet.of(home, versions, cache)
    moved: tuple[str, ...] = ()
    if previous is not None:
        before = previous.live.versions
        moved = tuple(t for t, rec in versions.items() if t not in before or before[t].weights_sha256 != rec.weights_sha256
                      or before[t].version != rec.version)
        if moved:
            _probe(live, list(moved))
    fps = {"trunk": fp, **{f"task:{t}": rec.weights_sha256 for t, rec in versions.items()}}
    return Served(live, fp, fps, moved=moved)


def _moved_records(home: Home, tasks: list[str] | None, previous: Served) -> dict:
    """The live records now, reading (and checking) only the rows of tasks whose pointer moved since ``previous``.

    Unchanged (task, version) rows were checked when ``previous`` was built and are immutable; a reload after
    one rollback reads one row, not 1,000."""
    fp = home.fingerprint
    now = {t.name: t.live_version for t in home.registry.list_tasks()
           if t.backbone_fingerprint == fp and t.live_version is not None and (tasks is None or t.name in tasks)}
    before = previous.live.versions
    moved = [t for t, v in now.items() if t not in before or before[t].version != v]
    fresh = live_records(home, moved) if moved else {}
    order = list(tasks) if tasks is not None else [t for t in before if t in now] + [t for t in now if t not in before]
    return {t: fresh.get(t) or before[t] for t in order if t in now}


def _probe(live: LiveSet, tasks: list[str]) -> None:
    """Load ``tasks`` and run them on a blank image: finite logits of each head's width (also warms the kernels)."""
    res = live.backbone.preprocessing.resolution
    x = torch.zeros(1, 3, res, res, device=next(live.backbone.parameters()).device)
    out = live(x, tasks)
    for name, logits in out.items():
        width = len(live.class_names[name])
        if tuple(logits.shape) != (1, width) or not bool(torch.isfinite(logits).all()):
            raise ServedModelError(f"task {name!r} answered a probe image with logits of shape {tuple(logits.shape)} "
                                   f"(want (1, {width})) or non-finite values: run `forkpoint audit`")
