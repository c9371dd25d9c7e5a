"""What a Ray worker needs to score unit ranges, put in the object store once.

Profiling's cost is the frozen prefix: a worker that recomputed it would redo, per
candidate, what the driver's :class:`PrefixCache` does once. So the driver computes each
depth a batch of candidates forks at (exactly as the serial loop would, through the same
cache), puts those activations, the images and the trunk in the object store, and each
worker rebuilds a cache prefilled with them (``PrefixCache.prefill``). CPU float arrays travel as numpy, which Ray
maps read-only into every worker on the node instead of copying. A depth that does not
fit the cache budget, or no longer fits the object store, is not shipped: the worker
streams it from the images, as the serial loop streams it.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.parallel import Executor, fetch


def _portable(t: torch.Tensor) -> Any:
    """A CPU copy for the object store: numpy when it can be (zero-copy on workers), else the tensor."""
    t = t.detach().cpu()
    try:
        return t.numpy()
    except TypeError:  # bfloat16 and friends have no numpy dtype
        return t


def _tensor(value: Any) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only shared memory: only ever read here
            return torch.from_numpy(value)
    return value


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@dataclass(frozen=True)
class SharedSplit:
    """One split as handles: its images, the activations at some depths, the trunk's features."""

    inputs: Any
    depths: dict[int, Any]
    trunk_features: Any | None
    budget_mb: float
    enabled: bool
    chunk: int

    def open(self, backbone: Backbone, device: torch.device) -> PrefixCache:
        """On a worker: the split as a cache on ``device``, holding what the driver shipped."""
        depths = {d: _tensor(fetch(h)).to(device) for d, h in self.depths.items()}
        feats = _tensor(fetch(self.trunk_features)).to(device) if self.trunk_features is not None else None
        cache = PrefixCache(backbone, _tensor(fetch(self.inputs)), device, self.budget_mb, self.enabled, self.chunk)
        return cache.prefill(depths, feats)


def ship_split(executor: Executor, cache: PrefixCache, depths: set[int], trunk_features: bool) -> SharedSplit:
    """Compute ``depths`` in ``cache`` (once: the cache keeps them) and share what fits the object store."""
    shipped: dict[int, Any] = {}
    for d in sorted(depths):  # shallow to deep: the cache only moves forward
        acts = cache.at(d)
        if acts is None:
            continue  # caching off, or one depth over the cache budget: workers stream it, as serial does
        if executor.shared(acts) or executor.can_share(_nbytes(acts)):
            shipped[d] = executor.share(_portable(acts), _nbytes(acts), key=acts)
    feats = None
    if trunk_features:
        f = cache.trunk_features()
        feats = executor.share(_portable(f), _nbytes(f), key=f)
    inputs = executor.share(_portable(cache.inputs), _nbytes(cache.inputs), key=cache.inputs)
    return SharedSplit(inputs, shipped, feats, cache.budget / 2**20, cache.enabled, cache.chunk)


def ship_backbone(executor: Executor, backbone: Backbone) -> Any:
    """The frozen trunk's handle (a CPU copy when it lives on a GPU: workers move it to theirs)."""
    if executor.shared(backbone):
        return executor.share(None, key=backbone)
    on_cpu = all(p.device.type == "cpu" for p in backbone.parameters())
    return executor.share(backbone if on_cpu else copy.deepcopy(backbone).cpu(), key=backbone)


def open_backbone(handle: Any, device: torch.device) -> Backbone:
    return fetch(handle).to(device)
