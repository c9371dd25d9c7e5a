"""``predict --any`` and ``evaluate --any``: answers and scores without a task name (the agnostic head)."""

from __future__ import annotations

from pathlib import Path

from forkpoint.commands._shared import State, emit_json


def show_any(state: State, home, paths: list[Path], as_json: bool) -> None:
    """``predict --any``: per image, the task and label the head answers over every class it knows."""
    from rich.table import Table

    from forkpoint.workflows.agnostic import load_head, predict_any

    loaded = load_head(home)
    answers = predict_any(home, paths, loaded)
    if as_json:
        emit_json({"backbone_fingerprint": home.fingerprint,
                   "head": {"version": loaded.record.version, "method": loaded.record.method,
                            "lambda": loaded.record.config["lambda"], "tasks": loaded.record.tasks},
                   "images": [a.to_dict() for a in answers]})
        return
    table = Table(title=f"predictions without a task name (agnostic head v{loaded.record.version})")
    for col in ("image", "task", "label", "score", "NCM baseline"):
        table.add_column(col, overflow="fold" if col == "image" else None)
    for a in answers:
        table.add_row(a.path, a.task, a.label, f"{a.score:.3f}", f"{a.ncm['task']}: {a.ncm['label']}")
    state.console.print(table)
    state.note(f"over {sum(len(v) for v in loaded.class_names.values())} classes of {len(loaded.class_names)} task(s) "
               f"({', '.join(f'{t} v{v}' for t, v in loaded.record.tasks.items())}); score: the ridge output, about 1 for a sure answer")


def task_folders(root: Path, tasks: list[str]) -> dict[str, Path]:
    """``ROOT/<task>/`` for every live task that has one (each an ImageFolder named like that task's classes)."""
    from forkpoint.contract.errors import DataError

    found = {t: root / t for t in tasks if (root / t).is_dir()}
    if not found:
        raise DataError(f"{root} has no folder named after a live task ({', '.join(tasks)}): "
                        "lay it out as ROOT/<task>/<class>/*.png, e.g. with `forkpoint samples --layout imagefolder`")
    return found


def evaluate_any(state: State, home, live, root: Path, as_json: bool) -> None:
    """``evaluate --any ROOT``: class-incremental accuracy at every head version beside task-incremental accuracy."""
    from rich.table import Table

    from forkpoint.contract.errors import DataError
    from forkpoint.learner.data import load_inputs
    from forkpoint.workflows.agnostic import all_heads
    from forkpoint.workflows.agnostic_eval import WAYS, score_live, score_stage, summary
    from forkpoint.workflows.evaluate import labelled_files
    from forkpoint.workflows.render import pct

    import torch

    scored, sizes = {}, {}
    for task, folder in task_folders(root, live.tasks).items():
        files = labelled_files(folder)
        names = live.model.class_names[task]
        unknown = sorted(set(files.labels) - set(names))
        if unknown:
            raise DataError(f"{folder} has classes task {task!r} does not know ({', '.join(unknown[:5])}): name them after its classes")
        x = load_inputs(files.paths, live.model.backbone.preprocessing)
        scored[task] = score_live(live, x, torch.tensor([names.index(v) for v in files.labels]))
        sizes[task] = len(files.paths)
    stages = [st for st in (score_stage(home, rec, scored) for rec in all_heads(home)) if st.images]
    if not stages:
        raise DataError("no head version covers the tasks in this folder: add them with `add-task --agnostic`")
    result = {"data": {"path": str(root.resolve()), "images": sizes}, "stages": [s.to_dict() for s in stages],
              "summary": summary(stages)}
    if as_json:
        emit_json(result)
        return
    table = Table(title="class-incremental (no task name) vs task-incremental accuracy, per head version")
    table.add_column("head")
    table.add_column("tasks")
    for w in WAYS:
        table.add_column(w.replace("_", "-"), justify="right")
    for s in stages:
        table.add_row(f"v{s.head_version}", ", ".join(s.tasks), *(pct(s.accuracy[w]) if s.accuracy[w] is not None else "-" for w in WAYS))
    for what in ("average", "last"):
        table.add_row(what, "", *(pct(result["summary"][w][what]) if result["summary"][w][what] is not None else "-" for w in WAYS))
    state.console.print(table)
    state.note("agnostic: the ridge head over every class of the stage; ncm: class means (SimpleCIL); routing: predict --route "
               "then the task's branch; task-incremental: the image's own task given")
