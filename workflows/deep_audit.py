"""No forgetting, proven against what was stored at add time (``forkpoint audit --deep``).

Weight hashes and seals show the stored bytes are unchanged; they cannot show that the
code turning those bytes into answers is. So when a version is added, its logits on a
fixed probe set are stored with it (registry/references.py): up to 64 of its held-out
images and a seeded synthetic batch of non-square images (so the resize rule runs), as
raw uint8 pixels, with the python/torch/timm/numpy/Pillow versions, torch threads and
device that computed them. ``deep_check`` recomputes every version's logits from the
registry alone (trunk, branch file, probe images) with today's code and compares:

- ``bit-identical``: the float32 logits' sha256 is the stored one;
- ``equal within 1e-5``: not bit for bit, but every logit is within 1e-5 and the library
  versions, threads or device differ (each change is named);
- ``different``: anything else (exit 1), including a 1e-5 match when nothing recorded
  changed (then the code did).

``reference_for`` is what add-task calls; ``check_version`` is the one call the server's
load check (serving/) may make for a version it is about to serve.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version as dist_version
from typing import Any

import numpy as np

from forkpoint.registry import VersionRecord
from forkpoint.registry.references import ReferenceDraft
from forkpoint.workflows.home import Home

HELDOUT_IMAGES = 64
SYNTHETIC_IMAGES = 8
SYNTHETIC_SEED = 20250
TOLERANCE = 1e-5
IDENTICAL, WITHIN, DIFFERENT, UNRECORDED = "bit-identical", "equal within 1e-5", "different", "no reference"


def environment() -> dict[str, Any]:
    """What can change a float without any of our code changing."""
    import torch

    libs: dict[str, Any] = {"python": platform.python_version()}
    for name, dist in (("torch", "torch"), ("timm", "timm"), ("numpy", "numpy"), ("pillow", "Pillow")):
        try:
            libs[name] = dist_version(dist)
        except PackageNotFoundError:
            libs[name] = "not installed"
    libs["torch_threads"] = torch.get_num_threads()
    return libs


def probe_images(task_data, resolution: int) -> dict[str, np.ndarray]:
    """Up to 64 held-out images (test split, else validation; a seeded choice) and a seeded synthetic batch.

    The synthetic images are 1.5R x 1.25R RGB noise with a smooth gradient, so every probe
    goes through the resize rule and the whole trunk, whatever size the dataset is stored at."""
    out: dict[str, np.ndarray] = {}
    held = task_data.test if task_data.test is not None else task_data.val
    if held is not None and len(held.labels):
        images = np.asarray(held.images)
        if images.dtype == np.uint8 and images.ndim in (3, 4):
            rng = np.random.default_rng(SYNTHETIC_SEED)
            pick = np.sort(rng.permutation(len(images))[:HELDOUT_IMAGES])
            out["heldout"] = np.ascontiguousarray(images[pick])
    rng = np.random.default_rng(SYNTHETIC_SEED + 1)
    h, w = max(8, resolution * 3 // 2), max(8, resolution * 5 // 4)
    ramp = np.linspace(0, 255, w)[None, None, :, None] * np.ones((SYNTHETIC_IMAGES, h, 1, 3))
    noise = rng.integers(0, 96, size=(SYNTHETIC_IMAGES, h, w, 3))
    out["synthetic"] = np.clip(ramp * 0.6 + noise, 0, 255).astype(np.uint8)
    return out


def task_logits(home: Home, name: str, spec, tensors, class_names, images: np.ndarray):
    """``name``'s logits on ``images`` through a model holding only its branch, as served (float32, CPU)."""
    from forkpoint.learner import Branch, MultiTaskModel
    from forkpoint.learner.data import to_input

    bb = home.backbone
    model = MultiTaskModel(bb)
    model.add(name, Branch.from_state(bb, spec, tensors), list(class_names))
    x = to_input(images, bb.resolution, bb.mean, bb.std).to(next(bb.parameters()).device)
    return model(x, tasks=[name])[name].float().cpu().contiguous()


def outputs_of(logits) -> dict[str, Any]:
    arr = logits.numpy().astype(np.float32)
    return {"shape": list(arr.shape), "sha256": hashlib.sha256(arr.tobytes()).hexdigest(), "values": arr.tolist()}


def reference_for(home: Home, name: str, spec, tensors, class_names, task_data) -> ReferenceDraft:
    """What add-task stores with a new version: its outputs on its probe set, computed as audit will."""
    probes = probe_images(task_data, home.backbone.resolution)
    outputs = {p: outputs_of(task_logits(home, name, spec, tensors, class_names, imgs)) for p, imgs in probes.items()}
    return ReferenceDraft(probes=probes, outputs=outputs, lib_versions={**environment(), "device": _device(home)})


def _device(home: Home) -> str:
    return str(next(home.backbone.parameters()).device)


@dataclass(frozen=True)
class VersionCheck:
    """One version's verdict, per probe the largest difference, and what changed in the environment."""

    ref: str
    verdict: str
    max_abs_diff: float = 0.0
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict in (IDENTICAL, WITHIN, UNRECORDED)

    def line(self) -> str:
        if self.verdict == IDENTICAL:
            return f"{self.ref}: {IDENTICAL} to its stored reference outputs"
        if self.verdict == UNRECORDED:
            return f"{self.ref}: {UNRECORDED} outputs stored (added before reference outputs existed): not checked"
        what = ", ".join(f"{k} {a} -> {b}" for k, a, b in ((k, *v) for k, v in self.changed.items())) or "nothing recorded"
        if self.verdict == WITHIN:
            return f"{self.ref}: {WITHIN} (max |diff| {self.max_abs_diff:.2e}) on changed {what}"
        return f"{self.ref}: {DIFFERENT} from its stored reference outputs ({self.detail}; changed since: {what})"

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.ref, "verdict": self.verdict, "ok": self.ok, "max_abs_diff": self.max_abs_diff,
                "changed": {k: list(v) for k, v in self.changed.items()}, "detail": self.detail}


def check_version(home: Home, record: VersionRecord, tensors=None) -> VersionCheck:
    """Recompute ``record``'s reference outputs from the registry and compare (TamperedError if the row fails its seal)."""
    found = home.registry.reference(record.task, record.version)
    if found is None:
        return VersionCheck(record.ref, UNRECORDED)
    stored, probes = found
    if tensors is None:
        tensors = home.registry.load_tensors(record.task, record.version)
    now = {**environment(), "device": _device(home)}
    changed = {k: (stored.lib_versions.get(k), v) for k, v in now.items() if stored.lib_versions.get(k) != v}
    worst, identical, details = 0.0, True, []
    for probe, images in sorted(probes.items()):
        want = stored.outputs[probe]
        got = outputs_of(task_logits(home, record.task, record.spec, tensors, record.class_names, images))
        if got["sha256"] == want["sha256"]:
            continue
        identical = False
        if got["shape"] != want["shape"]:
            return VersionCheck(record.ref, DIFFERENT, float("inf"), changed,
                                f"probe {probe}: logits of shape {got['shape']}, stored {want['shape']}")
        a, b = np.asarray(got["values"], dtype=np.float64), np.asarray(want["values"], dtype=np.float64)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        worst = max(worst, diff)
        flips = int(np.sum(a.argmax(1) != b.argmax(1)))
        details.append(f"probe {probe}: max |diff| {diff:.2e}, {flips} of {len(a)} predictions changed")
    if identical:
        return VersionCheck(record.ref, IDENTICAL, 0.0, changed)
    if worst <= TOLERANCE and changed:
        return VersionCheck(record.ref, WITHIN, worst, changed)
    return VersionCheck(record.ref, DIFFERENT, worst, changed, "; ".join(details))


def deep_check(home: Home, tasks: list[str] | None = None) -> list[VersionCheck]:
    """Every version of every task (or of ``tasks``) of this home's trunk, oldest first."""
    out = []
    for t in home.registry.list_tasks():
        if t.backbone_fingerprint != home.fingerprint or (tasks is not None and t.name not in tasks):
            continue
        for record in home.registry.versions(t.name):
            out.append(check_version(home, record))
    return out
