"""Branch or probe? Decided by k-fold cross-validation when the validation split is tiny.

With 2-3 validation images per class, one accuracy difference between the trained
branch and the probe is mostly noise. Pooling train and validation images and scoring
both methods on k held-out folds (each image held out once, each fold trained on the
rest with the same fixed schedule, no early stopping on the held-out fold) gives every
labelled image a vote, at the price of k short trainings on a small set.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.branch import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.probe import fit_probe
from forkpoint.learner.profile import Candidate
from forkpoint.learner.train import TrainConfig, fit

DEFAULT_FOLDS = 5


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


def cross_validate(
    backbone: Backbone,
    x: torch.Tensor,
    y: torch.Tensor,
    start: int,
    stop: int,
    num_classes: int,
    cfg: TrainConfig,
    device: torch.device,
    folds: int = DEFAULT_FOLDS,
    lp_init: bool = True,
) -> tuple[Candidate, Candidate]:
    """Held-out correctness of the branch ``[start, stop)`` and of the probe over every image, as candidates."""
    t0 = time.perf_counter()
    cfg = replace(cfg, keep_best_epoch=False, patience=0)
    branch_ok = torch.zeros(len(y), dtype=torch.bool)
    probe_ok = torch.zeros(len(y), dtype=torch.bool)
    branch_loss = probe_loss = 0.0
    pooled = PrefixCache(backbone, x, device)
    pooled.at(start)  # the fork's activations and the trunk's features, computed once for every fold
    pooled.trunk_features()
    for held in stratified_folds(y, folds, cfg.seed):
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        tr, ho = pooled.subset(torch.nonzero(keep).flatten()), pooled.subset(held)
        probe = fit_probe(tr.trunk_features(), y[keep], ho.trunk_features(), y[held], num_classes)
        probe_ok[held] = probe.val_correct
        probe_loss += probe.val_loss * len(held)
        branch = Branch.new(backbone, start, stop, num_classes, seed=cfg.seed)
        if lp_init:
            branch.init_head(probe.weight, probe.bias)
        res = fit(backbone, branch, tr, y[keep], ho, y[held], cfg)
        branch_ok[held] = res.val_correct
        branch_loss += res.val_loss * len(held)
    seconds = time.perf_counter() - t0
    n = len(y)
    names = backbone.block_names[start:stop]
    params = branch.num_params()
    cost = round(backbone.extra_cost_pct(start), 3)
    b = Candidate(start, stop, names, params, cost, float(branch_ok.float().mean()), seconds, cfg.epochs, "cv", branch_loss / n, branch_ok)
    nb = backbone.num_blocks
    p = Candidate(nb, nb, [], num_classes * (backbone.num_features + 1), 0.0, float(probe_ok.float().mean()), 0.0, 0,
                  "cv-probe", probe_loss / n, probe_ok)
    return b, p
