"""The linear probe: a convex fit of the head on frozen features, used twice.

1. As a candidate in its own right (the empty branch): it costs no extra inference, so
   a branch must beat it on validation to be chosen.
2. As the starting head of every branch (LP-FT, Kumar et al. 2022): at initialisation a
   branch's copied units compute exactly the trunk's features, so one probe fitted on
   the trunk's features is the converged head of every candidate. Short profile runs
   then measure what tuning the blocks adds, not how far a random head got.

Multinomial logistic regression by full-batch L-BFGS in torch (features are cached, so
this takes seconds); the L2 strength is chosen on validation data from a small grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # on standardised features; tiny tasks need the strong end
# L-BFGS iterations per strength, warm-started along the path. 50 instead of 200 took 8.4 s instead of
# 19.3 s on 850 animal silhouettes (64 px, Lite0) and chose the same strength with the same validation
# accuracy (84.7%) and loss (0.495 vs 0.496): the weak end never converges further in a way validation sees.
MAX_ITER = 50


@dataclass(frozen=True)
class ProbeFit:
    """A fitted head (``weight`` is ``(classes, features)``) and how it scored on validation."""

    weight: torch.Tensor
    bias: torch.Tensor
    l2: float
    val_acc: float
    val_loss: float
    val_correct: torch.Tensor  # bool per validation image, for paired comparisons


def _fit_one(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, max_iter: int,
             start: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One L2 strength; ``start`` warm-starts from a neighbouring strength's solution (same convex optimum, fewer steps)."""
    w0, b0 = start if start is not None else (torch.zeros(num_classes, x.shape[1], dtype=torch.float64),
                                              torch.zeros(num_classes, dtype=torch.float64))
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


@torch.no_grad()
def _standardiser(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = x.mean(0)
    sd = x.std(0).clamp_min(1e-3)
    return mu, sd


def fit_probe(
    train_feats: torch.Tensor,
    y_train: torch.Tensor,
    val_feats: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
    l2_grid: tuple[float, ...] = L2_GRID,
    max_iter: int = MAX_ITER,
) -> ProbeFit:
    """Fit the head on frozen features; pick the L2 strength by validation (accuracy, then loss).

    Features are standardised for the fit (so one L2 grid suits every backbone) and the
    scaling is folded back into the returned weights, which apply to raw features.
    """
    mu, sd = _standardiser(train_feats.double().cpu())
    xt = (train_feats.double().cpu() - mu) / sd
    xv = (val_feats.double().cpu() - mu) / sd
    yt, yv = y_train.cpu(), y_val.cpu()
    best: ProbeFit | None = None
    prev = None
    with torch.enable_grad():
        for l2 in sorted(l2_grid, reverse=True):  # strong to weak: each fit starts from the last (a regularisation path)
            w, b = prev = _fit_one(xt, yt, num_classes, l2, max_iter, prev)
            with torch.no_grad():
                logits = xv @ w.T + b
                correct = logits.argmax(1) == yv
                acc, loss = float(correct.double().mean()), float(F.cross_entropy(logits, yv))
            # fold the standardisation into the head: w'x + b' == w((x - mu) / sd) + b
            w_raw = (w / sd).float()
            b_raw = (b - (w * (mu / sd)).sum(1)).float()
            cand = ProbeFit(w_raw, b_raw, l2, acc, loss, correct)
            if best is None or (acc, -loss) > (best.val_acc, -best.val_loss):
                best = cand
    assert best is not None
    return best


def refit_probe(chosen: ProbeFit, train_feats: torch.Tensor, y_train: torch.Tensor, val_feats: torch.Tensor,
                y_val: torch.Tensor, num_classes: int) -> ProbeFit:
    """The chosen probe refitted on train + validation at the L2 strength validation chose.

    Validation has done its job (the strength, probe or branch) once selection is over;
    the served head then learns from every labelled image (15% more data: on 1,000
    animal silhouettes 0.870 -> 0.890 test accuracy). Its recorded validation scores stay
    those of the selection, the only held-out ones there are.
    """
    refit = fit_probe(torch.cat([train_feats, val_feats]), torch.cat([y_train, y_val]), val_feats, y_val, num_classes,
                      (chosen.l2,))
    return replace(refit, val_acc=chosen.val_acc, val_loss=chosen.val_loss, val_correct=chosen.val_correct)
