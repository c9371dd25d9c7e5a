"""What every export format shares: the graph being exported, its names, its metadata and the check.

An exported file is the live :class:`~forkpoint.learner.MultiTaskModel` (all live tasks, or
the named ones) behind one fixed signature: input ``images`` (N,3,R,R) float32, already
preprocessed by the trunk's recipe, and one logits tensor per task, in a fixed task order.
The metadata says which output is which task, which registry version each task came from,
its class names and branch, and how a file becomes ``images``, so a consumer needs nothing
but the file. Nothing is written until the exported model has been run and has matched
forkpoint's own logits (:func:`check_logits`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from forkpoint.contract.errors import EXIT_CHECK_FAILED, ConfigError, ForkpointError
from forkpoint.learner import MultiTaskModel
from forkpoint.workflows.live import LiveModel

INPUT_NAME = "images"
METADATA_SCHEMA = "1"  # bump when a key below changes meaning
TOLERANCE = 1e-4  # largest |exported - forkpoint| logit a successful export may show
EXAMPLE_BATCH = 2  # traced with 2 images ...
CHECK_BATCHES = (1, 3)  # ... checked with 1 and 3, so a batch size baked into the graph is caught
FORMATS = ("onnx", "torchscript")
VERSIONS_KEY = "forkpoint.versions"  # {task: registry version}: what `export --check` compares with the live pointers
SELECTION_KEY = "forkpoint.selection"  # all: every live task; named: the --task ones
REGISTERED_KEY = "forkpoint.trunk_registered_at"


class ExportError(ForkpointError):
    """The exported model failed its checks (or no exporter could build it): nothing was written."""

    exit_code = EXIT_CHECK_FAILED


class StaleExportError(ForkpointError):
    """``export --check``: the file's recorded versions are not the registry's live ones (or it records none)."""

    exit_code = EXIT_CHECK_FAILED


@dataclass(frozen=True)
class Provenance:
    """Where an export's tasks came from, recorded so ``export --check`` can tell a stale file later.

    ``selected``: --task named the tasks (so a task live now but not in the file is not news);
    ``trunk_registered_at``: when the exporting registry registered its trunk (``init``), which with
    the trunk fingerprint tells that registry from another serving the same trunk.
    """

    selected: bool = False
    trunk_registered_at: str | None = None


class TaskGraph(nn.Module):
    """``images -> (logits of task 1, logits of task 2, ...)``: the shared pass with a fixed signature.

    Exporters trace tensors, not dicts of a run-time selection, so the task list is fixed at
    construction and the outputs are a tuple in that order. The wrapped model is not copied.
    """

    def __init__(self, model: MultiTaskModel, tasks: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.task_names = tuple(tasks)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # the per-task loop, not the stacked tails: exporters trace the graph once and runtimes fuse its ops themselves
        out = self.model(images, tasks=list(self.task_names), batched=False)
        return tuple(out[t] for t in self.task_names)


def output_names(tasks: Sequence[str]) -> dict[str, str]:
    """``{task: output name}``: ``logits_<task>`` with ``.`` and ``-`` as ``_`` (identifier-safe for any consumer).

    Two tasks that would share a name (``a.b`` and ``a_b``) get ``_2``, ``_3``...; the metadata
    records the mapping either way, so consumers should read it rather than rebuild names.
    """
    out: dict[str, str] = {}
    for task in tasks:
        base = "logits_" + re.sub(r"[^A-Za-z0-9_]", "_", task)
        name, n = base, 1
        while name in out.values():
            n += 1
            name = f"{base}_{n}"
        out[task] = name
    return out


@dataclass(frozen=True)
class ExportPlan:
    """What will be exported: the live model, the tasks in output order and their output names."""

    live: LiveModel
    tasks: tuple[str, ...]
    outputs: dict[str, str]
    provenance: Provenance = Provenance()

    @classmethod
    def of(cls, live: LiveModel, provenance: Provenance | None = None) -> "ExportPlan":
        if not live.tasks:
            raise ConfigError("no live tasks to export: add one with `forkpoint add-task NAME --data ...` (or promote a version)")
        if next(live.model.parameters()).device.type != "cpu":
            raise ConfigError("export traces and checks on CPU: load the model there (live.model.to('cpu')) first")
        live.model.eval()
        return cls(live, tuple(live.tasks), output_names(live.tasks), provenance or Provenance())

    @property
    def graph(self) -> TaskGraph:
        return TaskGraph(self.live.model, self.tasks).eval()

    @property
    def resolution(self) -> int:
        return self.live.model.backbone.resolution

    def example(self, batch: int = EXAMPLE_BATCH, seed: int = 0) -> torch.Tensor:
        """A fixed input of normalised-image scale (the graph's values do not depend on it, only its shapes)."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, self.resolution, self.resolution, generator=gen)

    def task_records(self) -> list[dict[str, Any]]:
        """Per task, in output order: what a consumer needs to read its output."""
        rows = []
        for t in self.tasks:
            rec = self.live.versions[t]
            rows.append({
                "task": t, "output": self.outputs[t], "version": rec.version, "class_names": list(rec.class_names),
                "branch": dict(rec.branch), "weights_sha256": rec.weights_sha256,
            })
        return rows

    def metadata(self, fmt: str, exporter: str) -> dict[str, str]:
        """String key/value pairs stored in the file (ONNX ``metadata_props``; TorchScript extra file)."""
        from forkpoint import __version__

        bb = self.live.model.backbone
        return {
            "forkpoint.metadata_schema": METADATA_SCHEMA,
            "forkpoint.version": __version__,
            "forkpoint.format": fmt,
            "forkpoint.exporter": exporter,
            "forkpoint.backbone_fingerprint": bb.fingerprint(),
            "forkpoint.arch": bb.arch,
            "forkpoint.input": INPUT_NAME,
            "forkpoint.preprocessing": json.dumps(bb.preprocessing.to_dict()),
            "forkpoint.tasks": json.dumps(self.task_records()),
            VERSIONS_KEY: json.dumps({t: self.live.versions[t].version for t in self.tasks}),
            SELECTION_KEY: "named" if self.provenance.selected else "all",
            **({REGISTERED_KEY: self.provenance.trunk_registered_at} if self.provenance.trunk_registered_at else {}),
        }


@dataclass
class ExportResult:
    """What ``forkpoint export`` reports (``--json`` keys)."""

    format: str
    exporter: str
    path: str
    bytes: int
    sha256: str
    input: dict[str, Any]
    outputs: dict[str, str]
    tasks: list[dict[str, Any]]
    backbone_fingerprint: str
    preprocessing: dict[str, Any]
    max_abs_diff: float
    tolerance: float
    checked_batches: list[int]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Runner = Callable[[torch.Tensor], Sequence[Any]]


def check_logits(plan: ExportPlan, run: Runner, what: str) -> float:
    """Run the exported model on :data:`CHECK_BATCHES` and compare each task with forkpoint's forward.

    Returns the largest absolute difference; raises :class:`ExportError` above :data:`TOLERANCE`
    or when the shapes differ (e.g. a batch size frozen into the graph)."""
    worst = 0.0
    for i, batch in enumerate(CHECK_BATCHES):
        x = plan.example(batch, seed=1 + i)
        want = plan.live.model(x, tasks=list(plan.tasks))
        try:
            got = run(x)
        except Exception as exc:  # noqa: BLE001 - the exported file cannot run: report, write nothing
            raise ExportError(f"the exported {what} fails on a batch of {batch} ({type(exc).__name__}: {str(exc)[:300]}): "
                              "nothing was written; re-run with -v and report it") from exc
        for t, g in zip(plan.tasks, got):
            g = torch.as_tensor(g)
            if tuple(g.shape) != tuple(want[t].shape):
                raise ExportError(f"the exported {what} gives {t} logits of shape {tuple(g.shape)} for a batch of {batch}, "
                                  f"forkpoint {tuple(want[t].shape)}: nothing was written; report it")
            worst = max(worst, float((g.float() - want[t]).abs().max()))
    if not worst <= TOLERANCE:
        raise ExportError(f"the exported {what} differs from forkpoint's logits by up to {worst:.3g} (allowed {TOLERANCE:g}): "
                          "nothing was written; try the other exporter or format and report it")
    return worst


def write_checked(plan: ExportPlan, out: Path, data: bytes, fmt: str, exporter: str, diff: float,
                  started: float, notes: list[str]) -> ExportResult:
    """The one place an export is written: after every check passed, atomically (temp + fsync + rename)."""
    import hashlib
    import time

    from forkpoint.contract.atomic import write_bytes

    write_bytes(out, data)
    bb = plan.live.model.backbone
    return ExportResult(
        format=fmt, exporter=exporter, path=str(out), bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        input={"name": INPUT_NAME, "shape": ["N", 3, bb.resolution, bb.resolution], "dtype": "float32"},
        outputs=dict(plan.outputs), tasks=plan.task_records(), backbone_fingerprint=bb.fingerprint(),
        preprocessing=bb.preprocessing.to_dict(), max_abs_diff=diff, tolerance=TOLERANCE,
        checked_batches=list(CHECK_BATCHES), seconds=round(time.perf_counter() - started, 2), notes=notes,
    )


def recorded_versions(meta: dict[str, str]) -> dict[str, int] | None:
    """``{task: version}`` the file was exported with; None when it records none (older than version records)."""
    try:
        if VERSIONS_KEY in meta:
            return {str(t): int(v) for t, v in json.loads(meta[VERSIONS_KEY]).items()}
        if "forkpoint.tasks" in meta:  # files from before forkpoint.versions: the task records carry them too
            return {str(r["task"]): int(r["version"]) for r in json.loads(meta["forkpoint.tasks"])}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return None


@dataclass
class VersionCheck:
    """``export --check``: the file's recorded versions against the registry's live ones (``--json`` keys)."""

    path: str
    recorded: dict[str, int]
    live: dict[str, int]
    selection: str  # all, named, or unknown (a file from before the selection was recorded)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "up_to_date": self.up_to_date, "recorded": self.recorded, "live": self.live,
                "selection": self.selection, "problems": self.problems, "notes": self.notes}


def check_versions(path: Path, meta: dict[str, str], live: dict[str, int], fingerprint: str,
                   registered_at: str | None) -> VersionCheck:
    """Compare a file's metadata with the live versions (``live``: this registry's, of trunk ``fingerprint``).

    A task whose version differs, that is no longer live (missing) or that is live but not in a
    file of every live task (new) is a problem; so is a file from another trunk or registry.
    Raises :class:`StaleExportError` for a file that records no versions at all."""
    recorded = recorded_versions(meta)
    if recorded is None:
        raise StaleExportError(f"{path} predates version records (no {VERSIONS_KEY} metadata): "
                               f"re-export it (forkpoint export --out {path}) to check it later")
    check = VersionCheck(str(path), recorded, dict(live), meta.get(SELECTION_KEY, "unknown"))
    trunk = meta.get("forkpoint.backbone_fingerprint")
    if trunk and trunk != fingerprint:
        check.problems.append(f"exported from trunk {trunk[:12]}, this registry serves trunk {fingerprint[:12]}")
        return check
    theirs = meta.get(REGISTERED_KEY)
    if theirs and registered_at and theirs != registered_at:
        check.problems.append(f"exported from another registry (its trunk registered at {theirs}, this one's at {registered_at})")
        return check
    for task, version in recorded.items():
        if task not in live:
            check.problems.append(f"{task}: v{version} in the file, not live in the registry (missing)")
        elif live[task] != version:
            check.problems.append(f"{task}: v{version} in the file, live v{live[task]} (differs)")
    new = [t for t in live if t not in recorded]
    if new and check.selection == "named":
        check.notes.append(f"live but not in the file (it was exported with --task): {', '.join(new)}")
    else:
        check.problems += [f"{t}: live v{live[t]}, not in the file (new)" for t in new]
        if new and check.selection == "unknown":
            check.notes.append("the file does not record whether --task chose its tasks: every live task not in it counts as new")
    return check
