"""Which task does an image belong to? A small record per task, fitted once and never refitted.

Every task shares the frozen trunk, so the trunk's pooled features place any image in one
common space. When a task is added, its routing record is fitted on its own images only:
the features are L2-normalised and projected to :data:`DIM` dimensions by a fixed seeded
Gaussian matrix (the same for every task, rebuilt from the seed, never stored), then

* ``prototypes``: the mean projected feature of each class (train split),
* ``scale``: the pooled within-class spread per dimension (a diagonal Mahalanobis metric),
* ``threshold``: the :data:`QUANTILE` quantile of the validation images' distance to
  their nearest prototype, so a distance of 1.0 means "as far as the task's own
  least typical validation images".

The record lives in the version's ``config["routing"]`` (sealed with the row, immutable
like it): adding a task never changes an older task's record. ``route`` sends an image to
the task with the smallest calibrated distance, or to none when every distance exceeds 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from forkpoint.learner.data import TaskData, check_labels, stratified_split, to_input

METHOD = "prototypes-diag-v1"
# the settings benchmark's L2-off alternative (benchmarks/routing_settings.py): never stored or served
UNNORMALISED_METHOD = "prototypes-diag-raw-experimental"
DIM = 64  # projected feature size: a 10-class record is ~700 numbers
SEED = 18  # the projection's seed, shared by every task of every home
# of validation distances: ~5% of a task's own images may answer "none", for about half of an unknown
# domain's images rejected instead of a third; chosen on training-pool images (benchmarks/routing_ood.py,
# docs/routing.md), never on test images. Versions keep the quantile they were fitted with.
QUANTILE = 0.95
_EPS = 1e-6
PER_CLASS = 200  # images per class a record is fitted (and calibrated) on: bounds the cost on big datasets


def projection(num_features: int, dim: int = DIM, seed: int = SEED) -> torch.Tensor:
    """The fixed (num_features, dim) Gaussian projection (numpy's PCG64 stream: the same everywhere)."""
    g = np.random.default_rng(seed).standard_normal((num_features, dim)) / np.sqrt(dim)
    return torch.from_numpy(g.astype(np.float32))


@torch.no_grad()
def trunk_features(backbone, images, chunk: int = 256) -> torch.Tensor:
    """Pooled trunk features of uint8/float images, prepared as training prepares them."""
    bb = backbone
    device = next(bb.parameters()).device
    spec = bb.preprocessing
    out = []
    for i in range(0, len(images), chunk):
        x = to_input(images[i:i + chunk], spec.resolution, spec.mean, spec.std)
        out.append(bb(x.to(device)).float().cpu())
    return torch.cat(out)


def embed(features: torch.Tensor, proj: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """Trunk features -> the routing space (L2-normalised, projected); ``normalise=False`` only for
    the settings benchmark's comparison (no stored record is fitted without it)."""
    f = torch.nn.functional.normalize(features.float(), dim=1) if normalise else features.float()
    return f @ proj


@dataclass(frozen=True)
class RoutingRecord:
    """A task's routing record: class prototypes, a per-dimension scale and a calibrated threshold."""

    prototypes: torch.Tensor  # (K, DIM)
    scale: torch.Tensor  # (DIM,) within-class standard deviation
    threshold: float
    val_images: int
    dim: int = DIM
    seed: int = SEED
    method: str = METHOD
    quantile: float = QUANTILE  # of validation distances the threshold was set at

    def distance(self, z: torch.Tensor) -> torch.Tensor:
        """(N,) calibrated distance of embedded images to the nearest prototype (<= 1: looks like this task)."""
        d = (((z[:, None, :] - self.prototypes[None]) / self.scale) ** 2).mean(dim=2)
        return d.min(dim=1).values / self.threshold

    def to_dict(self) -> dict[str, Any]:
        """What the version's config stores (rounded: 5 significant digits)."""
        return {"method": self.method, "dim": self.dim, "seed": self.seed, "quantile": self.quantile,
                "threshold": float(f"{self.threshold:.6g}"), "val_images": self.val_images,
                "scale": [float(f"{v:.5g}") for v in self.scale.tolist()],
                "prototypes": [[float(f"{v:.5g}") for v in row] for row in self.prototypes.tolist()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "RoutingRecord | None":
        """The stored record, or None for versions registered before routing existed."""
        if not d or d.get("method") != METHOD:
            return None
        return cls(torch.tensor(d["prototypes"], dtype=torch.float32), torch.tensor(d["scale"], dtype=torch.float32),
                   float(d["threshold"]), int(d["val_images"]), int(d["dim"]), int(d["seed"]),
                   quantile=float(d.get("quantile", 0.99)))


def _capped(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of at most ``n`` images per class (seeded choice)."""
    g = torch.Generator().manual_seed(seed)
    keep = [idx[torch.randperm(len(idx), generator=g)[:n]] for c in torch.unique(labels).tolist()
            for idx in [torch.nonzero(labels == c).flatten()]]
    return torch.sort(torch.cat(keep)).values


def fit_routing(backbone, data: TaskData, val_fraction: float, seed: int, per_class: int = PER_CLASS) -> RoutingRecord:
    """Fit a task's record on its train split, calibrate on its validation split (carved as training carves it).

    At most ``per_class`` images per class of each split are used (seeded): a record is a
    mean and a spread, and the trunk pass over a whole large dataset would cost minutes."""
    k = len(data.class_names)
    y_train = check_labels(data.train.labels, k, "train")
    if data.val is not None and len(data.val.labels):
        tr, x_train = _capped(y_train, per_class, seed), data.train.images
        y_val = check_labels(data.val.labels, k, "val")
        va, x_val = _capped(y_val, per_class, seed), data.val.images
    else:
        tr, va = stratified_split(y_train, val_fraction, seed)
        tr, va = tr[_capped(y_train[tr], per_class, seed)], va[_capped(y_train[va], per_class, seed)]
        x_train = x_val = data.train.images
        y_val = y_train
    f_train, y_train = trunk_features(backbone, _take(x_train, tr)), y_train[tr]
    f_val = trunk_features(backbone, _take(x_val, va))
    return record_from_features(f_train, y_train, f_val, k)


def record_from_features(f_train: torch.Tensor, y_train: torch.Tensor, f_val: torch.Tensor, num_classes: int,
                         quantile: float = QUANTILE, *, dim: int = DIM, isotropic: bool = False,
                         normalise: bool = True) -> RoutingRecord:
    """The record from trunk features: prototypes and spread from the training split, the threshold
    from the ``quantile`` of the validation split's distances (one definition for add-task and the benchmarks).

    The keywords are the alternatives benchmarks/routing_settings.py compares (defaults: the shipped
    record): ``dim`` projected dimensions, ``isotropic`` one spread shared by every dimension (stored as
    a constant scale vector), ``normalise=False`` no L2-normalisation (benchmark only: such a record is
    marked :data:`UNNORMALISED_METHOD`, which :meth:`RoutingRecord.from_dict` does not serve)."""
    proj = projection(f_train.shape[1], dim)
    z = embed(f_train, proj, normalise)
    protos = torch.stack([z[y_train == c].mean(dim=0) for c in range(num_classes)])
    var = (z - protos[y_train]).pow(2).mean(dim=0)
    spread = (var.mean().expand_as(var).clone() if isotropic else var).sqrt() + _EPS
    method = METHOD if normalise else UNNORMALISED_METHOD
    unscaled = RoutingRecord(protos, spread, 1.0, len(f_val), dim=dim, method=method)
    d_val = unscaled.distance(embed(f_val, proj, normalise))
    threshold = float(torch.quantile(d_val, quantile)) if len(d_val) else 1.0
    return RoutingRecord(protos, spread, max(threshold, _EPS), len(f_val), dim=dim, method=method, quantile=quantile)


def _take(images, idx: torch.Tensor):
    """Rows ``idx`` of a numpy array or a tensor."""
    return images[idx] if isinstance(images, torch.Tensor) else images[idx.numpy()]


@dataclass(frozen=True)
class Route:
    """Where one image went: a task (None: none of them), its label there, and every task's distance."""

    task: str | None
    label: str | None
    probability: float | None
    distances: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "label": self.label, "probability": self.probability,
                "distances": {t: round(d, 4) for t, d in self.distances.items()}}


def decide(distances: dict[str, float]) -> str | None:
    """The nearest task, or None when every calibrated distance is over 1 (unlike all of them)."""
    if not distances:
        return None
    best = min(distances, key=distances.__getitem__)
    return best if distances[best] <= 1.0 else None


def records(live) -> dict[str, RoutingRecord]:
    """The routing record of every served task that has one (versions older than routing have none)."""
    found = {t: RoutingRecord.from_dict(live.versions[t].config.get("routing")) for t in live.tasks}
    return {t: r for t, r in found.items() if r is not None}


def route_images(live, paths, batch_size: int = 64) -> list[tuple[str, Route]]:
    """Per image: the task it most likely belongs to (or none) and that task's label, from one shared pass."""
    from forkpoint.workflows.errors import RoutingUnavailableError
    from forkpoint.workflows.predict import probabilities

    recs = records(live)
    if not recs:
        raise RoutingUnavailableError(
            "no served task has a routing record (versions registered before routing existed): "
            "add a new version of each task with `forkpoint add-task NAME --data ...`, or predict without --route")
    tasks = list(recs)
    proj = projection(live.model.backbone.num_features)
    out: list[tuple[str, Route]] = []
    for batch in probabilities(live, paths, tasks, batch_size, features=True):
        z = embed(batch.features, proj)
        dist = {t: r.distance(z) for t, r in recs.items()}
        for row, path in enumerate(batch.paths):
            d = {t: float(dist[t][row]) for t in tasks}
            t = decide(d)
            if t is None:
                out.append((str(path), Route(None, None, None, d)))
                continue
            p = batch.probs[t][row]
            j = int(torch.argmax(p))
            out.append((str(path), Route(t, live.model.class_names[t][j], float(p[j]), d)))
    return out
