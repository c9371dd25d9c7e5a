"""A task-agnostic head over the frozen trunk: answers over every class seen so far, without a task name.

Two heads from the same frozen features, both built only from per-task statistics, so
adding a task never touches what an earlier task contributed:

* **RanPAC** (McDonnell et al., 2023): a fixed seeded Gaussian projection of the trunk's
  pooled features (L2-normalised first, as routing does: digits at 32 px and animal
  photos differ in feature norm more than in direction) to ``dim`` dimensions, ReLU, then
  ridge regression onto one-hot targets.
  Each task contributes ``G = sum h h^T`` and ``C = sum h y^T`` (its classes' columns only:
  an image's one-hot target is zero outside its own task). The head over tasks
  ``t1..tn`` solves ``W = (sum G + lam I)^-1 [C_1 .. C_n]``: exactly the joint ridge
  solution over all their images, whatever order the tasks came in.
* **NCM** (SimpleCIL, Zhou et al., 2023): class means of the trunk features, cosine
  similarity; a baseline over the same features.

``lam`` is chosen the RanPAC way, on validation data carved from each task's training
images: fit on the *fit* statistics, score the validation mean squared error, which is a
function of accumulated validation statistics too (``||Y||^2 - 2 tr(W^T C_val) +
tr(W^T G_val W)``), so the choice is order-invariant as well. The final head is then
solved on fit + validation statistics with that ``lam``.

Torch only: no registry, no files. workflows/agnostic.py stores the statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from forkpoint.contract.errors import ConfigError, DataError

METHOD = "ranpac-ridge-v1"
DIM = 1024  # random features: RanPAC uses 10k for ViT-B; 1k is as good as 2k here (docs/agnostic.md) at a quarter of the storage
SEED = 28  # the projection's seed (numpy PCG64: the same matrix on every machine)
LAMBDAS = tuple(10.0 ** k for k in range(-3, 8))  # normalised features: the optimum sits near 1e2  # ridge grid, chosen on validation MSE
_TENSORS = ("gram_fit", "cross_fit", "gram_val", "cross_val", "yy_val", "feature_sum", "counts_fit", "counts_val")


@dataclass(frozen=True)
class HeadConfig:
    """What every task's statistics of one head must share (else they cannot be summed)."""

    dim: int = DIM
    seed: int = SEED
    lambdas: tuple[float, ...] = LAMBDAS
    method: str = METHOD

    def __post_init__(self) -> None:
        if self.dim < 1 or not self.lambdas or any(not (lam > 0 and math.isfinite(lam)) for lam in self.lambdas):
            raise ConfigError(f"head config dim={self.dim}, lambdas={self.lambdas}: use dim >= 1 and positive finite lambdas")

    def to_dict(self) -> dict:
        return {"method": self.method, "dim": self.dim, "seed": self.seed, "lambdas": list(self.lambdas)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "HeadConfig":
        return cls(int(d["dim"]), int(d["seed"]), tuple(float(v) for v in d["lambdas"]), str(d["method"]))


def projection(num_features: int, dim: int = DIM, seed: int = SEED) -> torch.Tensor:
    """The fixed (num_features, dim) Gaussian matrix, rebuilt from its seed (never stored)."""
    g = np.random.default_rng(seed).standard_normal((num_features, dim))
    return torch.from_numpy(g.astype(np.float32))


def random_features(features: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """RanPAC's h = ReLU(f/|f| @ P), in float64 so sums over many images stay order-tolerant."""
    f = torch.nn.functional.normalize(features.float(), dim=1)
    return torch.relu(f @ proj).double()


@dataclass
class TaskStatistics:
    """One task's contribution to the head: sums over its own images only (fit and validation parts).

    ``feature_sum``/``counts_*`` give NCM's class means over fit + validation images."""

    gram_fit: torch.Tensor  # (M, M) float64
    cross_fit: torch.Tensor  # (M, K)
    gram_val: torch.Tensor  # (M, M)
    cross_val: torch.Tensor  # (M, K)
    yy_val: torch.Tensor  # () sum of ||y||^2 over validation images (= their count)
    feature_sum: torch.Tensor  # (K, D) float64 sum of trunk features per class
    counts_fit: torch.Tensor  # (K,) int64
    counts_val: torch.Tensor  # (K,) int64

    @property
    def num_classes(self) -> int:
        return int(self.cross_fit.shape[1])

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).contiguous() for name in _TENSORS}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> "TaskStatistics":
        missing = [n for n in _TENSORS if n not in tensors]
        if missing:
            raise DataError(f"head statistics lack {', '.join(missing)}: the file is not a forkpoint head statistics file")
        return cls(**{n: tensors[n] for n in _TENSORS})


def _sums(h: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.nn.functional.one_hot(labels.long(), k).double()
    return h.T @ h, h.T @ y


def task_statistics(fit_features: torch.Tensor, fit_labels: torch.Tensor, val_features: torch.Tensor,
                    val_labels: torch.Tensor, num_classes: int, proj: torch.Tensor) -> TaskStatistics:
    """Sum one task's trunk features (fit and validation images, labels 0..K-1) into its statistics."""
    if len(fit_labels) == 0:
        raise DataError("a task needs at least one training image for the agnostic head")
    h_fit, h_val = random_features(fit_features, proj), random_features(val_features, proj)
    g_fit, c_fit = _sums(h_fit, fit_labels, num_classes)
    g_val, c_val = _sums(h_val, val_labels, num_classes)
    feats = torch.cat([fit_features, val_features]).double()
    labels = torch.cat([fit_labels, val_labels]).long()
    fsum = torch.zeros(num_classes, feats.shape[1], dtype=torch.float64).index_add_(0, labels, feats)
    return TaskStatistics(g_fit, c_fit, g_val, c_val, torch.tensor(float(len(val_labels)), dtype=torch.float64), fsum,
                          torch.bincount(fit_labels.long(), minlength=num_classes),
                          torch.bincount(val_labels.long(), minlength=num_classes))


@dataclass(frozen=True)
class Selection:
    """How ``lam`` was chosen: validation MSE (per image and output) for each candidate."""

    lam: float
    val_mse: dict[float, float]
    val_images: int

    def to_dict(self) -> dict:
        return {"lambda": self.lam, "val_images": self.val_images,
                "val_mse": {f"{lam:g}": round(v, 8) for lam, v in self.val_mse.items()}}


def choose_lambda(stats: Sequence[TaskStatistics], lambdas: Sequence[float]) -> Selection:
    """The ridge strength with the lowest validation MSE, fitting on the fit statistics only.

    One eigendecomposition of the fit Gram matrix serves every candidate. Without any
    validation image the middle of the grid is taken (and said so by ``val_images`` = 0)."""
    g_fit = sum(s.gram_fit for s in stats)
    g_val = sum(s.gram_val for s in stats)
    c_fit = torch.cat([s.cross_fit for s in stats], dim=1)
    c_val = torch.cat([s.cross_val for s in stats], dim=1)
    yy = float(sum(s.yy_val for s in stats))
    n_val = int(sum(int(s.counts_val.sum()) for s in stats))
    if n_val == 0:
        lam = sorted(lambdas)[len(lambdas) // 2]
        return Selection(lam, {}, 0)
    evals, q = torch.linalg.eigh(g_fit)
    evals = evals.clamp(min=0)
    b, a_val, d_val = q.T @ c_fit, q.T @ g_val @ q, q.T @ c_val
    curve = {}
    for lam in lambdas:
        sb = b / (evals + lam)[:, None]  # = Q^T W
        sse = yy - 2 * float((sb * d_val).sum()) + float((sb * (a_val @ sb)).sum())
        curve[float(lam)] = sse / (n_val * c_fit.shape[1])
    best = min(curve, key=lambda lam: (curve[lam], lam))
    return Selection(best, curve, n_val)


def solve(stats: Sequence[TaskStatistics], lam: float) -> torch.Tensor:
    """W = (G + lam I)^-1 C over fit + validation statistics: (M, sum K) float64."""
    g = sum(s.gram_fit + s.gram_val for s in stats)
    c = torch.cat([s.cross_fit + s.cross_val for s in stats], dim=1)
    g = g + lam * torch.eye(g.shape[0], dtype=g.dtype)
    return torch.cholesky_solve(c, torch.linalg.cholesky(g))


@dataclass(frozen=True)
class Answer:
    """One image's answer over every class of the head: the task, its class index there, and a score."""

    task: str
    index: int
    score: float


@dataclass
class AgnosticHead:
    """A solved head: RanPAC weights and NCM prototypes over ``classes`` (task, class index), in member order."""

    tasks: list[str]
    num_classes: list[int]
    proj: torch.Tensor
    weights: torch.Tensor  # (M, sum K) float64
    prototypes: torch.Tensor  # (sum K, D) float64, L2-normalised class means
    selection: Selection
    classes: list[tuple[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.classes = [(t, j) for t, k in zip(self.tasks, self.num_classes) for j in range(k)]

    @classmethod
    def build(cls, members: Sequence[tuple[str, TaskStatistics]], proj: torch.Tensor, config: HeadConfig,
              lam: float | None = None) -> "AgnosticHead":
        """Choose ``lam`` on validation (unless given: a stored head's), solve, and take the class means:
        a pure function of the members."""
        if not members:
            raise DataError("an agnostic head needs at least one task's statistics")
        stats = [s for _, s in members]
        n_val = int(sum(int(s.counts_val.sum()) for s in stats))
        selection = choose_lambda(stats, config.lambdas) if lam is None else Selection(float(lam), {}, n_val)
        counts = torch.cat([(s.counts_fit + s.counts_val).double() for s in stats]).clamp(min=1)
        means = torch.cat([s.feature_sum for s in stats]) / counts[:, None]
        return cls([t for t, _ in members], [s.num_classes for s in stats], proj, solve(stats, selection.lam),
                   torch.nn.functional.normalize(means, dim=1), selection)

    def ridge_scores(self, features: torch.Tensor) -> torch.Tensor:
        """(N, sum K) ridge outputs (about 1 for the right class)."""
        return random_features(features, self.proj) @ self.weights

    def ncm_scores(self, features: torch.Tensor) -> torch.Tensor:
        """(N, sum K) cosine similarity to each class mean (SimpleCIL)."""
        return torch.nn.functional.normalize(features.double(), dim=1) @ self.prototypes.T

    def answer(self, scores: torch.Tensor) -> list[Answer]:
        """The best class of each row, as (task, index within the task, score)."""
        best, idx = scores.max(dim=1)
        return [Answer(*self.classes[j], float(v)) for v, j in zip(best.tolist(), idx.tolist())]

    def task_of(self, scores: torch.Tensor) -> list[str]:
        return [a.task for a in self.answer(scores)]
