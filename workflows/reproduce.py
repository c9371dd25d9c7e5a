"""``forkpoint reproduce``: rebuild a task version from its record and say how close the rebuild is.

The rebuild uses only what the registry recorded: the trunk (this home's, checked by
fingerprint), the data (reloaded with the recorded options, refused unless its DVC md5 is
the recorded one), and the learner's config. ``add_task`` then runs on a model holding
just that trunk: it trains only the new branch on the frozen trunk, so the tasks that were
live when the version was made do not matter.

The verdict, compared step by step (data, profile, selection, weights, predictions):

* **identical**: the rebuilt weights file has the recorded sha256;
* **equivalent**: same images, same branch, same predicted class for every validation
  and test image; the largest logit difference is stated;
* **different**: the first step that diverged is named.

Nothing is written to the registry but one ``reproduce`` audit event with the outcome.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from forkpoint.contract.branch import UnitRange
from forkpoint.registry import BackboneMismatchError, VersionRecord
from forkpoint.workflows.datasets import LoadedData, reload_task_data
from forkpoint.workflows.home import Home
from forkpoint.workflows.recorded import config_from_dict, missing

if TYPE_CHECKING:
    import torch

    from forkpoint.learner import AddTaskConfig, TaskReport

STEPS = ("data", "profile", "selection", "weights", "predictions")
VERDICTS = ("identical", "equivalent", "different")


@dataclass(frozen=True)
class Step:
    """One compared step: the same as recorded or not, and the figure that says so."""

    name: str
    same: bool
    detail: str


@dataclass(frozen=True)
class Reproduction:
    task: str
    version: int
    verdict: str  # one of VERDICTS
    steps: tuple[Step, ...]
    weights_sha256: str  # recorded
    rebuilt_sha256: str
    max_abs_logit_diff: float | None
    lacks: tuple[str, ...] = ()  # what the record did not hold (versions made before it was recorded)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    original_seconds: float | None = None

    @property
    def first_divergence(self) -> str | None:
        return next((s.name for s in self.steps if not s.same), None)

    @property
    def exit_code(self) -> int:
        """0 identical, 0 equivalent (with a note), 1 different."""
        return 1 if self.verdict == "different" else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "version": self.version, "verdict": self.verdict,
            "first_divergence": self.first_divergence, "steps": [dataclasses.asdict(s) for s in self.steps],
            "weights_sha256": self.weights_sha256, "rebuilt_sha256": self.rebuilt_sha256,
            "max_abs_logit_diff": self.max_abs_logit_diff, "lacks": list(self.lacks), "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
            "original_seconds": None if self.original_seconds is None else round(self.original_seconds, 2),
        }

    def lines(self) -> list[str]:
        """The outcome for people, one fact a line."""
        head = f"{self.task}@{self.version}: {self.verdict.upper()}"
        if self.verdict == "equivalent":
            head += f" (same branch and predictions; max |Δlogit| {self.max_abs_logit_diff:.3g})"
        elif self.verdict == "different":
            head += f" (first diverged at: {self.first_divergence})"
        out = [head] + [f"  {'same' if s.same else 'DIFF'}  {s.name:<11} {s.detail}" for s in self.steps]
        took = f"rebuilt in {self.seconds:.1f} s"
        if self.original_seconds:
            took += f" (the original add-task took {self.original_seconds:.1f} s)"
        out.append(took)
        out += [f"note: {n}" for n in self.notes]
        if self.lacks:
            out.append("recorded before reproduction records existed; it lacks: " + "; ".join(self.lacks))
        return out


def reproduce_version(home: Home, task: str, version: int | None = None, *, data_path: str | None = None,
                      record: VersionRecord | None = None, progress=None, log: bool = True) -> Reproduction:
    """Rebuild ``task@version`` (default: live) from its record and compare; logs a ``reproduce`` event.

    ``record`` replaces the stored record (what-if checks and tests of a planted change);
    ``data_path`` replaces the recorded data location (same md5 required).
    """
    import torch

    rec = record if record is not None else home.registry.show(task, version)
    if rec.backbone_fingerprint != home.fingerprint:
        raise BackboneMismatchError(f"{rec.ref} was trained on trunk {rec.backbone_fingerprint[:12]}, this home serves "
                                    f"{home.fingerprint[:12]}: reproduce it in the home that made it")
    started = time.perf_counter()
    cfg, notes = _recorded_config(rec)
    recorded_data = {**(rec.config.get("data") or {"path": rec.data_path}), "dvc_md5": rec.data_md5}
    data = reload_task_data(recorded_data, data_path or rec.data_path, home.record.resolution)
    threads = (rec.config.get("reproduce") or {}).get("torch_threads")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        from forkpoint.learner import MultiTaskModel, add_task

        model = MultiTaskModel(home.backbone)
        report = add_task(model, rec.task, data.task_data, cfg, progress=progress)
        rebuilt = model.branches[rec.task]
        steps, sha, max_diff = _compare(home, rec, data, cfg, report, rebuilt)
    finally:
        torch.set_num_threads(before)
    result = Reproduction(
        rec.task, rec.version, _verdict(steps, sha == rec.weights_sha256), steps, rec.weights_sha256, sha, max_diff,
        tuple(missing(rec.config)), tuple(notes), time.perf_counter() - started,
        (rec.metrics.get("timings") or {}).get("total_s"),
    )
    if log:
        home.registry.record_reproduction(rec.task, rec.version, result.to_dict())
    return result


def _recorded_config(rec: VersionRecord) -> tuple[AddTaskConfig, list[str]]:
    """The learner's config as recorded, on the recorded device when this machine has it."""
    import torch

    cfg = config_from_dict(rec.config)
    if cfg.branch is None and cfg.candidates is None and not rec.profile and rec.units.is_probe:
        # AddTaskConfig.to_dict() records `--branch probe` (an empty, hence falsy, UnitRange) as None;
        # only a fixed branch skips profiling, so the record still says which one it was
        cfg = dataclasses.replace(cfg, branch=rec.units)
    device = (rec.config.get("reproduce") or {}).get("device") or rec.metrics.get("device") or "cpu"
    notes: list[str] = []
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        notes.append(f"trained on {device}, rebuilt on cpu (no GPU here): expect at best equivalent, not identical")
        device = "cpu"
    return dataclasses.replace(cfg, device=str(device)), notes


def _verdict(steps: Sequence[Step], same_sha: bool) -> str:
    by = {s.name: s.same for s in steps}
    if same_sha:
        return "identical"
    return "equivalent" if by["data"] and by["selection"] and by["predictions"] else "different"


def _compare(home: Home, rec: VersionRecord, data: LoadedData, cfg: AddTaskConfig, report: TaskReport,
             rebuilt) -> tuple[tuple[Step, ...], str, float | None]:
    from forkpoint.registry.branchfile import encode_branch
    from forkpoint.registry.codec import sha256

    tensors = rebuilt.tensors()
    sha = sha256(encode_branch(tensors, rec.task, rec.version, rec.branch, rec.class_names))
    stored = home.registry.load_tensors(rec.task, rec.version)
    logits_step, max_diff = _predictions(home, rec, data, cfg, rebuilt, stored)
    steps = (
        _data_step(rec, data),
        _profile_step(rec.profile, [c.to_dict() for c in report.profile + report.greedy]),
        _selection_step(rec, report),
        _weights_step(rec.weights_sha256, sha, stored, tensors),
        logits_step,
    )
    return steps, sha, max_diff


def _data_step(rec: VersionRecord, data: LoadedData) -> Step:
    recorded = rec.config.get("data") or {}
    want = recorded.get("splits_sha256")
    if want:
        now = data.splits_sha256()
        return Step("data", now == want, f"md5 {data.md5}; splits sha256 {now[:12]}" +
                    ("" if now == want else f", recorded {want[:12]}"))
    sizes, was = data.sizes, recorded.get("sizes")
    same = was is None or dict(was) == sizes
    return Step("data", same, f"md5 {data.md5}; split sizes {sizes}" + ("" if same else f", recorded {was}")
                + " (no splits hash recorded)")


def _profile_step(recorded: Sequence[Mapping[str, Any]], now: Sequence[Mapping[str, Any]]) -> Step:
    key = lambda c: (c.get("stage"), c.get("start"), c.get("stop"))  # noqa: E731
    if [key(c) for c in recorded] != [key(c) for c in now]:
        return Step("profile", False, f"candidates {[key(c)[1:] for c in now]}, recorded {[key(c)[1:] for c in recorded]}")
    if not now:
        return Step("profile", True, "nothing profiled (fixed branch)")
    diff = 0.0
    for a, b in zip(recorded, now):
        for field in ("val_acc", "val_loss"):
            x, y = a.get(field), b.get(field)
            if x is None or y is None:
                diff = diff if x == y else float("inf")
            else:
                diff = max(diff, abs(float(x) - float(y)))
    return Step("profile", diff == 0.0, f"{len(now)} candidate score(s)" + ("" if diff == 0 else f", max |Δ| {diff:.3g}"))


def _selection_step(rec: VersionRecord, report: TaskReport) -> Step:
    was, now = (rec.branch_start, rec.branch_stop, rec.siamese), (report.spec.start, report.spec.stop, report.spec.siamese)
    # the CLI's inclusive START:END, as every other command prints a branch
    label = lambda t: "linear probe" if t[0] == t[1] else f"units {UnitRange(t[0], t[1]).human()}"  # noqa: E731
    return Step("selection", was == now, label(now) + ("" if was == now else f", recorded {label(was)}"))


def _weights_step(recorded_sha: str, sha: str, stored: Mapping[str, torch.Tensor], now: Mapping[str, torch.Tensor]) -> Step:
    if sha == recorded_sha:
        return Step("weights", True, f"sha256 {sha[:12]} (as recorded)")
    if set(stored) != set(now) or any(stored[k].shape != now[k].shape for k in stored):
        return Step("weights", False, f"sha256 {sha[:12]}, recorded {recorded_sha[:12]}; tensors differ in names or shapes")
    diff = max(float((stored[k].float() - now[k].float()).abs().max()) if stored[k].numel() else 0.0 for k in stored)
    return Step("weights", False, f"sha256 {sha[:12]}, recorded {recorded_sha[:12]}; max |Δw| {diff:.3g}")


def _predictions(home: Home, rec: VersionRecord, data: LoadedData, cfg: AddTaskConfig, rebuilt,
                 stored: Mapping[str, torch.Tensor]) -> tuple[Step, float | None]:
    """Logits of the stored and the rebuilt branch on the version's validation and test images (CPU)."""
    import torch

    from forkpoint.learner.cache import PrefixCache
    from forkpoint.learner.task import _splits  # the learner's one definition of the validation split
    from forkpoint.learner.train import logits_of
    from forkpoint.workflows.live import rebuild_branch

    bb = home.backbone
    original = rebuild_branch(home, rec, dict(stored))
    _, _, x_val, _, x_test, _ = _splits(data.task_data, cfg, bb.resolution, bb.mean, bb.std)
    max_diff, flips, n = 0.0, 0, 0
    for x in (x_val, x_test):
        if x is None or len(x) == 0:
            continue
        cache = PrefixCache(bb, x, torch.device("cpu"), cfg.cache_budget_mb, cfg.cache)
        a, b = logits_of(bb, original, cache), logits_of(bb, rebuilt, cache)
        max_diff = max(max_diff, float((a - b).abs().max()))
        flips += int((a.argmax(1) != b.argmax(1)).sum())
        n += len(x)
    detail = f"{n} validation+test image(s): {flips} predicted class(es) changed, max |Δlogit| {max_diff:.3g}"
    return Step("predictions", flips == 0, detail), max_diff
