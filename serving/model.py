"""What the server answers with: one verified, immutable snapshot of the live multi-task model.

A :class:`Served` is built completely (every branch rebuilt from its sha256-checked file,
the trunk's fingerprint recomputed, one probe pass run) before anyone can see it, and is
never changed afterwards: the follower swaps in a new one, it never edits the old one.
So a request always meets one whole model and knows the versions that answered it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from forkpoint.contract.errors import ForgettingError
from forkpoint.workflows.home import Home
from forkpoint.workflows.live import LiveModel, load_live_model


class ServedModelError(ForgettingError):
    """A freshly loaded model failed its checks (trunk fingerprint, branch digests, probe pass): it is not served."""


@dataclass(frozen=True)
class Served:
    """A loaded model, the registry versions it serves and the fingerprints checked when it was loaded."""

    live: LiveModel
    fingerprint: str  # the trunk's, recomputed from the tensors in memory
    fingerprints: dict[str, str]  # "trunk" and "task:NAME" digests (learner.multitask.MultiTaskModel.fingerprints)
    loaded_at: float = field(default_factory=time.time)

    @property
    def tasks(self) -> list[str]:
        return self.live.tasks

    @property
    def versions(self) -> dict[str, int]:
        return {t: rec.version for t, rec in self.live.versions.items()}

    @property
    def model(self):
        return self.live.model


def load_served(home: Home, tasks: list[str] | None, previous: Served | None = None, device: str = "cpu") -> Served:
    """Rebuild the live model from the registry and verify it; raises rather than return a doubtful model.

    Checks: the registry's own (sha256 of every file, row seals, live pointers; see
    ``registry.serving``), the trunk's fingerprint recomputed from memory against the
    registered one, every branch's backbone, a task whose version did not change since
    ``previous`` has the same branch digest as before (a reload never changes an answer
    it was not asked to change), and one probe pass giving finite logits of each head's width.
    """
    live = load_live_model(home, tasks)
    model = live.model.to(device).eval()
    fps = model.fingerprints()
    if fps["trunk"] != home.fingerprint:
        raise ServedModelError(f"the trunk in memory has fingerprint {fps['trunk'][:12]}, not the registered "
                               f"{home.fingerprint[:12]}: restart the server")
    for name, rec in live.versions.items():
        if rec.backbone_fingerprint != home.fingerprint:
            raise ServedModelError(f"task {name!r} v{rec.version} belongs to trunk {rec.backbone_fingerprint[:12]}: "
                                   "serve it from its own home")
        if previous is not None and previous.versions.get(name) == rec.version and \
                previous.fingerprints.get(f"task:{name}") != fps[f"task:{name}"]:
            raise ServedModelError(f"task {name!r} v{rec.version} reloaded with another branch digest: "
                                   "run `forkpoint audit`")
    if live.tasks:
        _probe(live)
    return Served(live, fps["trunk"], fps)


def _probe(live: LiveModel) -> None:
    """One pass on a blank image: every head answers with finite logits of its width (also warms the kernels)."""
    bb = live.model.backbone
    res = bb.preprocessing.resolution
    x = torch.zeros(1, 3, res, res, device=next(bb.parameters()).device)
    out = live.model(x)
    for name, logits in out.items():
        width = len(live.model.class_names[name])
        if tuple(logits.shape) != (1, width) or not bool(torch.isfinite(logits).all()):
            raise ServedModelError(f"task {name!r} answered a probe image with logits of shape {tuple(logits.shape)} "
                                   f"(want (1, {width})) or non-finite values: run `forkpoint audit`")
