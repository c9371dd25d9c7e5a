"""Branch or probe? Decided by k-fold cross-validation when the validation split is tiny.

With 2-3 validation images per class, one accuracy difference between the trained
branch and the probe is mostly noise. Pooling train and validation images and scoring
both methods on k held-out folds (each image held out once, each fold trained on the
rest with the same fixed schedule, no early stopping on the held-out fold) gives every
labelled image a vote, at the price of k short trainings on a small set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.branch import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.parallel import SERIAL, Call, Executor
from forkpoint.learner.probe import L2_GRID, fit_probe
from forkpoint.learner.profile import Candidate
from forkpoint.learner.train import TrainConfig, fit

DEFAULT_FOLDS = 3  # every image still held out once; 5 folds cost 5/3 the time for the same votes


def stratified_folds(labels: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """k disjoint index sets covering every image, each class spread evenly over the folds."""
    gen = torch.Generator().manual_seed(seed)
    folds: list[list[torch.Tensor]] = [[] for _ in range(k)]
    offset = 0
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        for j, i in enumerate(idx):
            folds[(offset + j) % k].append(i.view(1))
        offset += len(idx)
    return [torch.sort(torch.cat(f)).values for f in folds if f]


@dataclass(frozen=True)
class _Folds:
    """What every fold of one cross-validation shares; ``pooled`` is a cache, or a SharedSplit on a Ray worker."""

    backbone: object
    pooled: object
    y: torch.Tensor
    start: int
    stop: int
    num_classes: int
    cfg: TrainConfig
    lp_init: bool
    l2: tuple[float, ...]  # the probe's L2 strength, already chosen on validation (one fit per fold, no grid)
    device: str = ""  # set when shipped: the device a worker rebuilds the split on

    def fold(self, held: torch.Tensor) -> tuple[torch.Tensor, float, torch.Tensor, float, int]:
        """Train on every image but ``held`` and score ``held``: (probe ok, probe loss, branch ok, branch loss, params)."""
        backbone, pooled = self.backbone, self.pooled
        if self.device:  # on a worker: the trunk and the pooled activations come from the object store
            from forkpoint.learner.device import resolve_device
            from forkpoint.learner.fanout import open_backbone

            device = resolve_device(self.device)
            backbone = open_backbone(backbone, device)
            pooled = pooled.open(backbone, device)
        y, cfg = self.y, self.cfg
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        tr, ho = pooled.subset(torch.nonzero(keep).flatten()), pooled.subset(held)
        probe = fit_probe(tr.trunk_features(), y[keep], ho.trunk_features(), y[held], self.num_classes, self.l2)
        branch = Branch.new(backbone, self.start, self.stop, self.num_classes, seed=cfg.seed)
        if self.lp_init:
            branch.init_head(probe.weight, probe.bias)
        res = fit(backbone, branch, tr, y[keep], ho, y[held], cfg)
        return probe.val_correct, probe.val_loss, res.val_correct, res.val_loss, branch.num_params()


def _ship(folds: _Folds, executor: Executor) -> _Folds:
    from forkpoint.learner.fanout import ship_backbone, ship_split

    pooled = folds.pooled
    return replace(folds, backbone=ship_backbone(executor, folds.backbone),
                   pooled=ship_split(executor, pooled, {folds.start}, trunk_features=True),
                   device=executor.task_device(pooled.device.type))


def cross_validate(
    backbone: Backbone,
    x: torch.Tensor | PrefixCache,
    y: torch.Tensor,
    start: int,
    stop: int,
    num_classes: int,
    cfg: TrainConfig,
    device: torch.device,
    folds: int = DEFAULT_FOLDS,
    lp_init: bool = True,
    executor: Executor = SERIAL,
    steps: int | None = None,
    l2: float | None = None,
) -> tuple[Candidate, Candidate]:
    """Held-out correctness of the branch ``[start, stop)`` and of the probe over every image, as candidates.

    ``steps``: each fold trains this many optimizer steps (the served branch's best step on
    validation), not the schedule's step floor: the folds judge the branch as it is served,
    at a fraction of the cost. ``l2``: the probe's strength chosen on validation (else its grid).
    The folds are independent (each trains from the same seed on its own images), so a Ray
    ``executor`` runs them side by side with the same results.
    """
    t0 = time.perf_counter()
    cfg = replace(cfg, keep_best_epoch=False, patience=0)
    if steps is not None:
        cfg = replace(cfg, epochs=1, min_steps=max(1, steps))
    branch_ok = torch.zeros(len(y), dtype=torch.bool)
    probe_ok = torch.zeros(len(y), dtype=torch.bool)
    branch_loss = probe_loss = 0.0
    pooled = x if isinstance(x, PrefixCache) else PrefixCache(backbone, x, device)
    pooled.at(start)  # the fork's activations and the trunk's features, computed once for every fold
    pooled.trunk_features()
    job = _Folds(backbone, pooled, y, start, stop, num_classes, cfg, lp_init, (l2,) if l2 is not None else L2_GRID)
    if not executor.local:
        job = _ship(job, executor)
    helds = stratified_folds(y, folds, cfg.seed)
    results = executor.map([Call(f"cv:{i}", job.fold, (held,)) for i, held in enumerate(helds)])
    params = 0
    for held, (p_ok, p_loss, b_ok, b_loss, params) in zip(helds, results):
        probe_ok[held] = p_ok
        probe_loss += p_loss * len(held)
        branch_ok[held] = b_ok
        branch_loss += b_loss * len(held)
    seconds = time.perf_counter() - t0
    n = len(y)
    names = backbone.block_names[start:stop]
    cost = round(backbone.extra_cost_pct(start), 3)
    b = Candidate(start, stop, names, params, cost, float(branch_ok.float().mean()), seconds, cfg.epochs, "cv", branch_loss / n, branch_ok)
    nb = backbone.num_blocks
    p = Candidate(nb, nb, [], num_classes * (backbone.num_features + 1), 0.0, float(probe_ok.float().mean()), 0.0, 0,
                  "cv-probe", probe_loss / n, probe_ok)
    return b, p
