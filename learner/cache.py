"""Frozen-prefix activations, computed once per depth and reused.

Profiling trains every candidate unit on the same frozen prefix; recomputing that prefix
every epoch for every candidate is most of the cost. ``PrefixCache`` keeps the input of
unit ``d`` for a whole split, advances it one unit at a time (so candidates that share a
prefix share the work), and evicts the shallowest depths when a memory budget is hit.
When one depth alone does not fit, it streams: batches are recomputed from the images.

Activations are float32 on every device, whatever autocast context the caller is in: a
bf16 prefix would make profile scores and recorded accuracies differ from fp32 serving.
The budget is per cache and device-aware (``device.cache_budget_bytes``); a depth is
written into one preallocated tensor, so the peak is the budget plus one chunk, not twice
a depth. On CUDA the images sit in pinned host memory and are copied without blocking.
"""

from __future__ import annotations

from typing import Iterator

import torch

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.device import cache_budget_bytes, inference_batch

CACHE_DTYPE = torch.float32


class PrefixCache:
    """Activations of one split at unit inputs, within a byte budget."""

    def __init__(
        self,
        backbone: Backbone,
        inputs: torch.Tensor,
        device: torch.device,
        budget_mb: float | None = None,
        enabled: bool = True,
        chunk: int | None = None,
    ) -> None:
        self.backbone = backbone
        self.device = torch.device(device)
        pin = self.device.type == "cuda" and inputs.device.type == "cpu" and not inputs.is_pinned()
        self.inputs = inputs.pin_memory() if pin else inputs  # preprocessed (N,3,R,R) on CPU
        self.budget = cache_budget_bytes(self.device, budget_mb)  # None: the device's default
        self.enabled = enabled
        self.chunk = chunk or inference_batch(self.device)  # images per prefix pass
        self._depths: dict[int, torch.Tensor] = {}
        self._trunk_features: torch.Tensor | None = None
        self.unit_passes = 0  # images x units run: what caching saves, for benchmarks

    def __len__(self) -> int:
        return len(self.inputs)

    def _bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._depths.values())

    @torch.no_grad()
    def _compute(self, x: torch.Tensor, depth: int, from_depth: int = -1) -> torch.Tensor:
        """Input of unit ``depth`` for a batch in fp32; ``x`` is raw input (from_depth=-1) or the input of unit ``from_depth``."""
        x = x.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, enabled=False):
            h = self.backbone.stem(x.to(CACHE_DTYPE)) if from_depth < 0 else x.to(CACHE_DTYPE)
            start = max(from_depth, 0)
            self.unit_passes += len(x) * (depth - start)
            return self.backbone.run_units(h, start, depth)

    def _advance(self, depth: int) -> torch.Tensor | None:
        below = [d for d in self._depths if d <= depth]
        base = max(below) if below else -1
        if base == depth:
            return self._depths[depth]
        need = self._depth_bytes(depth)
        if need > self.budget:
            return None
        # make room before allocating, shallowest first, but keep the source depth until used
        for d in sorted(d for d in self._depths if d != base):
            if self._bytes() + need <= self.budget:
                break
            del self._depths[d]
        src = self._depths[base] if base >= 0 else self.inputs
        out: torch.Tensor | None = None
        for i in range(0, len(src), self.chunk):
            piece = self._compute(src[i:i + self.chunk], depth, base)
            if out is None:  # one allocation for the whole depth: no list of pieces beside the result
                out = torch.empty((len(src), *piece.shape[1:]), dtype=piece.dtype, device=piece.device)
            out[i:i + len(piece)] = piece
        assert out is not None
        if base >= 0 and self._bytes() + need > self.budget:
            del self._depths[base]  # it was kept only to compute this depth
        self._depths[depth] = out
        return out

    @torch.no_grad()
    def _depth_bytes(self, depth: int) -> int:
        """Bytes of one depth's activations for the whole split (probed on one image, not counted as work)."""
        x = self.inputs[:1].to(self.device)
        with torch.autocast(self.device.type, enabled=False):
            one = self.backbone.run_units(self.backbone.stem(x.to(CACHE_DTYPE)), 0, depth)
        return one.numel() * one.element_size() * len(self.inputs)

    def at(self, depth: int) -> torch.Tensor | None:
        """All activations at ``depth``, or None when caching is off or they do not fit (stream instead)."""
        if not self.enabled:
            return None
        return self._depths.get(depth) if depth in self._depths else self._advance(depth)

    def warm(self, depths: list[int]) -> "PrefixCache":
        """Compute ``depths`` shallow to deep, each from the last, so no prefix is run twice.

        The probe's trunk features and every profile candidate then start from the deepest
        depth already held (one prefix pass per split instead of one per consumer).
        """
        for d in sorted(set(depths)):
            self.at(d)
        return self

    def extended(self, extra: "torch.Tensor | PrefixCache", depth: int) -> "PrefixCache":
        """This split followed by ``extra`` (images, or another split's cache), with activations at ``depth``
        reused where they are held and computed for ``extra`` only where they are not.

        Augmented views train beside their originals, and a cross-validation pools train and
        validation: neither runs the prefix again for images it has already seen.
        """
        other = extra if isinstance(extra, PrefixCache) else PrefixCache(
            self.backbone, extra, self.device, self.budget / 2**20, self.enabled, self.chunk)
        out = PrefixCache(self.backbone, torch.cat([self.inputs.cpu(), other.inputs.cpu()]), self.device,
                          self.budget / 2**20, self.enabled, self.chunk)
        mine, theirs = self.at(depth), other.at(depth)
        if mine is not None and theirs is not None:  # else (caching off, over budget) the new split streams
            out._depths[depth] = torch.cat([mine, theirs])
        return out

    def batches(
        self, depth: int, order: torch.Tensor, batch_size: int, channels_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices, activations at ``depth``) in ``order``, from the cache or streamed.

        ``channels_last`` hands 4-D activations over in NHWC memory order (same values),
        which the CPU's convolution kernels train ~2x faster on.
        """
        cached = self.at(depth)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            h = cached[idx.to(cached.device)] if cached is not None else self._compute(self.inputs[idx], depth)
            if channels_last and h.ndim == 4:
                h = h.contiguous(memory_format=torch.channels_last)
            yield idx, h

    def prefill(self, depths: dict[int, torch.Tensor], trunk_features: torch.Tensor | None = None) -> "PrefixCache":
        """Start from activations computed elsewhere (a Ray driver shipping them to a worker).

        They must be this split's: one row per image, in the cache's fp32."""
        for d, t in depths.items():
            if len(t) != len(self.inputs) or t.dtype != CACHE_DTYPE:
                raise ValueError(f"depth {d}: {len(t)} rows of {t.dtype}, expected {len(self.inputs)} of {CACHE_DTYPE}")
        self._depths = dict(depths)
        self._trunk_features = trunk_features
        return self

    def subset(self, idx: torch.Tensor) -> "PrefixCache":
        """The same split restricted to ``idx``, sharing what is already computed (folds of a cross-validation)."""
        sub = PrefixCache(self.backbone, self.inputs[idx], self.device, self.budget / 2**20, self.enabled, self.chunk)  # indexing unpins: re-pinned
        sub._depths = {d: t[idx.to(t.device)] for d, t in self._depths.items()}
        if self._trunk_features is not None:
            sub._trunk_features = self._trunk_features[idx.to(self._trunk_features.device)]
        return sub

    @torch.no_grad()
    def trunk_features(self) -> torch.Tensor:
        """The frozen trunk's feature vectors for the split (Siamese heads need them), computed once."""
        if self._trunk_features is None:
            n = self.backbone.num_blocks
            order = torch.arange(len(self))
            with torch.autocast(self.device.type, enabled=False):
                feats = [self.backbone.tail(h.to(CACHE_DTYPE)) for _, h in self.batches(n, order, self.chunk)]
            self._trunk_features = torch.cat(feats)
        return self._trunk_features
