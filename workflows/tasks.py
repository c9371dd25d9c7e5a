"""Adding a task version: rebuild the served model, SubTune the new branch, then register it.

Order matters for "nothing half-registered": the registry is written only after training
and the learner's no-forgetting check have passed, in one ``add_version`` call (one
transaction; its weights file is content-addressed, so an interrupted write leaves at
most an unreferenced file for ``gc``). Ctrl-C before that point writes nothing.

Training takes minutes, so the live pointer may move meanwhile (someone rolls back a bad
version). The live version seen at the start goes to ``add_version(expect_live=...)``: if
it moved, the new version is registered staged instead of silently undoing that move,
and the result carries a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forkpoint.contract.ids import new_run_id
from forkpoint.learner import AddTaskConfig, TaskReport, add_task
from forkpoint.registry import BackboneMismatchError, ClassNamesMismatchError, TaskRecord, UnknownTaskError, VersionRecord
from forkpoint.registry.validate import task_name
from forkpoint.workflows.datasets import LoadedData
from forkpoint.workflows.deep_audit import reference_for
from forkpoint.workflows.home import Home
from forkpoint.workflows.live import LiveModel, load_live_model
from forkpoint.workflows.agnostic import add_to_head, fit_statistics
from forkpoint.workflows.routing import fit_routing
from forkpoint.workflows.recorded import provenance


@dataclass
class AddedTask:
    """The learner's report, the registered version, the served model including the new branch,
    and notes for the user (e.g. why a version asked to go live was staged)."""

    report: TaskReport
    version: VersionRecord
    live: LiveModel
    notes: tuple[str, ...] = ()
    head: Any = None  # the agnostic head version this task joined (registry.heads.HeadRecord; add-task --agnostic)


def existing_task(home: Home, name: str) -> TaskRecord | None:
    try:
        return home.registry.get_task(name)
    except UnknownTaskError:
        return None


def check_new_version_fits(home: Home, name: str, class_names: list[str]) -> TaskRecord | None:
    """Refuse up front what the registry would refuse after training (wrong trunk, other classes)."""
    task = existing_task(home, name)
    if task is None:
        return None
    if task.backbone_fingerprint != home.fingerprint:
        raise BackboneMismatchError(
            f"task {name!r} belongs to backbone {task.backbone_fingerprint[:12]}, not this home's {home.fingerprint[:12]}: use a new task name"
        )
    if list(task.class_names) != list(class_names):
        raise ClassNamesMismatchError(
            f"task {name!r} has classes {list(task.class_names)}, the data has {list(class_names)}: "
            "a different class set is a new task, use a new name"
        )
    return task


def budget_warning(home: Home, cfg: AddTaskConfig) -> str | None:
    """A fixed ``--branch`` costing more than ``--max-extra-cost``: said aloud (and kept with the version), not ignored."""
    if cfg.branch is None or cfg.branch.is_probe:
        return None
    cost = home.backbone.extra_cost_pct(cfg.branch.start)
    budget = cfg.selection.max_extra_cost
    if cost <= budget:
        return None
    return (f"--branch {cfg.branch.human()} ({cfg.branch.label(home.record.block_names)}) costs {cost:.1f}% extra per pass, over the "
            f"--max-extra-cost budget of {budget:g}%: kept because it was asked for; fork later or raise the budget")


SLOW_CPU_PX = 160  # at or above this, CPU training is slow enough to say so


def slow_cpu_note(home: Home, device: str, n_train: int) -> str | None:
    """One line when training will run on CPU at a large resolution: what it costs and the way out."""
    from forkpoint.learner.device import resolve_device

    px = home.record.resolution
    if px < SLOW_CPU_PX or str(resolve_device(device)) != "cpu":
        return None
    factor = (px / 64) ** 2
    return (f"training on CPU at {px} px: each of the {n_train:,} training images costs ~{factor:.0f}x what it costs at 64 px "
            f"(expect minutes per epoch); a home made with `forkpoint --home DIR init --resolution 64` trains ~{factor:.0f}x faster")


def add_task_version(
    home: Home,
    name: str,
    data: LoadedData,
    cfg: AddTaskConfig,
    *,
    description: str = "",
    promote: bool = True,
    progress=None,
    actor: str | None = None,
    agnostic: bool = False,
) -> AddedTask:
    """Train a branch for ``name`` next to every other live task and register it as a new version.

    A new version of an existing task is trained against the other tasks' live branches
    (its own older versions stay in the registry, untouched).
    """
    task_name(name)
    previous = check_new_version_fits(home, name, data.class_names)
    started_from = previous.live_version if previous is not None else None
    live = load_live_model(home, exclude={name}, lazy=True)  # other tasks stay stored: never read, checked by digest
    run_id = new_run_id()
    report = add_task(live.model, name, data.task_data, cfg, progress=progress, plot_dir=home.path / "plots" / run_id)
    # fitted once, on this task's own images; stored sealed in the version's config and never refitted
    routing = fit_routing(home.backbone, data.task_data, cfg.val_fraction, cfg.split_seed)
    fitted = fit_statistics(home.backbone, data.task_data, cfg.val_fraction, cfg.split_seed) if agnostic else None
    if (warning := budget_warning(home, cfg)) is not None:
        report.notes.append(warning)  # stored with the version (metrics.notes)
    branch = live.model.branches[name]
    draft = report.draft(
        home.fingerprint, branch.tensors(), data_md5=data.md5, data_path=data.path, description=description,
        run_id=run_id, config={"data": data.describe(), "profile_plot": report.plot, "reproduce": provenance(report),
                                 "routing": routing.to_dict()},
    )
    # its answers on a fixed probe set, stored with it: `audit --deep` recomputes them (workflows/deep_audit.py)
    reference = reference_for(home, name, branch.spec, draft.tensors, data.class_names, data.task_data)
    record = home.registry.add_version(name, draft, promote=promote, actor=actor, expect_live=started_from,
                                       reference=reference)
    live.versions[name] = record
    notes: tuple[str, ...] = ()
    if promote and not record.live:
        now = home.registry.get_task(name).live_version
        notes = (f"{name}: the live version moved from v{started_from} to v{now} while v{record.version} trained "
                 f"(a rollback or promote), so v{record.version} was registered staged, not live: "
                 f"`forkpoint promote {name} {record.version}` makes it live",)
    head = None
    if fitted is not None and record.live:  # the agnostic head follows live versions; its own transaction
        head = add_to_head(home, name, record.version, fitted, actor=actor)
    elif fitted is not None:
        notes += (f"{name}: v{record.version} is staged, so it did not join the agnostic head (its live version answers there)",)
    return AddedTask(report, record, live, notes, head)
