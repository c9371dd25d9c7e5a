"""The served model: the registered trunk plus every task's live branch, from the registry.

Nothing is taken from memory: each branch comes from its sha256-checked safetensors file
through ``Branch.from_state``, which refuses weights that do not fit the trunk, by way of a
:class:`~forkpoint.workflows.branch_cache.BranchCache` that loads a branch only when it is
first needed. :class:`LiveSet` is the server's form (a snapshot of live versions, branches
loaded per request); :func:`load_live_model` the commands' (``predict``, ``export``,
``evaluate``, ``add-task``): a :class:`LiveModel` over exactly the asked tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from forkpoint.learner import Branch, MultiTaskModel
from forkpoint.learner.forkpass import shared_pass
from forkpoint.learner.stacked import stack_blocks
from forkpoint.registry import VersionRecord
from forkpoint.workflows.inputs import live_records  # noqa: F401 - torch-free, re-exported
from forkpoint.workflows.branch_cache import BranchCache
from forkpoint.workflows.home import Home


@dataclass
class LiveModel:
    """A multi-task model and the registry version each of its tasks came from."""

    model: MultiTaskModel
    versions: dict[str, VersionRecord]

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks


def rebuild_branch(home: Home, record: VersionRecord, tensors) -> Branch:
    """The stored branch on this home's trunk (``record.spec``: the one stored form of its branch)."""
    return Branch.from_state(home.backbone, record.spec, tensors)


def load_live_model(home: Home, tasks: Iterable[str] | None = None, exclude: Iterable[str] = (),
                    cache: BranchCache | None = None, lazy: bool = False) -> LiveModel:
    """Every live task (or just ``tasks``, all of which must exist and be live), minus ``exclude``.

    Only those tasks' branches are read (``predict --task X`` reads X alone). ``lazy`` reads none
    up front: each is loaded, verified, when a pass first needs it (``add-task``: other tasks are
    never needed, so never read; their fingerprints are their stored digests).
    Refuses (LivePointerError, TamperedError: exit 1) rather than serve without a task whose
    live pointer is broken or whose rows fail their checks; other tasks' faults do not matter
    when ``tasks`` names only sound ones."""
    versions = live_records(home, tasks, exclude)
    cache = cache or BranchCache(home)
    model = MultiTaskModel(home.backbone)
    for name, rec in versions.items():
        if lazy:
            model.add_stored(name, rec.spec, list(rec.class_names), rec.weights_sha256, lambda rec=rec: cache.get(rec))
        else:
            model.add(name, cache.get(rec), list(rec.class_names))
    return LiveModel(model, versions)


@dataclass(frozen=True)
class LiveSet:
    """One immutable snapshot of live versions, its branches loaded from ``cache`` when a pass needs them.

    ``live(x, tasks)`` runs one forked pass over ``tasks`` (default: all): the trunk up to the
    deepest fork they need, each task's own branch, same-range groups stacked. When the asked
    branches do not fit the cache's budget at once, they run in chunks that do (trunk passes
    repeat per chunk; memory stays bounded). It also duck-types what the batcher and the
    export code read of a MultiTaskModel (``backbone``, ``class_names``, ``tasks``)."""

    backbone: object
    versions: dict[str, VersionRecord]
    cache: BranchCache
    class_names: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, home: Home, versions: dict[str, VersionRecord], cache: BranchCache) -> "LiveSet":
        return cls(home.backbone, dict(versions), cache, {t: list(r.class_names) for t, r in versions.items()})

    @property
    def tasks(self) -> list[str]:
        return list(self.versions)

    def branches(self, tasks: Iterable[str]) -> dict[str, Branch]:
        """The branches of ``tasks`` (loaded and verified now where not cached)."""
        return {t: self.cache.get(self.versions[t]) for t in tasks}

    def stacked(self, names: tuple[str, ...], branches: list[Branch], start: int, stop: int):
        key = (tuple((self.versions[t].task, self.versions[t].version, self.versions[t].weights_sha256) for t in names),
               str(next(self.backbone.parameters()).device))
        return self.cache.stacked(key, lambda: stack_blocks(self.backbone, branches, start, stop))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, tasks: Iterable[str] | None = None, rows=None) -> dict[str, torch.Tensor]:
        """Logits per task; ``rows`` (task -> row indices, see ``learner.forkpass``) runs a task on some images only."""
        names = self.tasks if tasks is None else list(tasks)
        out: dict[str, torch.Tensor] = {}
        for chunk in self._chunks(names):
            out.update(shared_pass(self.backbone, self.branches(chunk), x, self.stacked, rows))
        return {t: out[t] for t in names}

    def _chunks(self, names: list[str]) -> list[list[str]]:
        """``names`` in fork order, cut so each chunk's weights fit half the cache's budget (all at once without one)."""
        budget = self.cache.budget_bytes
        if budget is None or len(names) <= 1:
            return [names]
        order = sorted(names, key=lambda t: (self.versions[t].spec.start, self.versions[t].spec.stop))
        chunks, size = [[]], 0
        for t in order:
            b = int(self.versions[t].weights_bytes)
            if chunks[-1] and size + b > budget // 2:
                chunks.append([])
                size = 0
            chunks[-1].append(t)
            size += b
        return chunks
