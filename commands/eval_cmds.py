"""``evaluate``: how the live tasks score on the user's own labelled folder or CSV."""

from __future__ import annotations

from pathlib import Path

import click

from forkpoint.commands._paths import existing_parent
from forkpoint.commands._shared import State, device_option, emit_json, json_option, pass_state


def _plot_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """``--plot`` while options are parsed: a .png in an existing folder (a bad one used to fail after the event was logged)."""
    from forkpoint.contract.errors import ConfigError

    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        raise ConfigError(f"--plot {path} is a directory: give a file path, e.g. {path / 'confusion.png'}")
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--plot {path}: the confusion matrix is written as PNG: give a .png file, e.g. {path.with_suffix('.png')}")
    return existing_parent(path, "--plot")


def _once(state: State, task_names: tuple[str, ...]) -> list[str] | None:
    """--task values in order, each once (a repeated one used to count every image twice); None: not given."""
    unique = list(dict.fromkeys(task_names))
    repeated = sorted({t for t in task_names if task_names.count(t) > 1}, key=unique.index)
    if repeated:
        state.note(f"note: --task {', '.join(repeated)} given more than once: scored once")
    return unique or None


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), metavar="FOLDER_OR_CSV")
@click.option("--task", "task_names", multiple=True, metavar="NAME",
              help="Score these tasks (repeatable). Default: every live task whose classes cover the data's.")
@click.option("--plot", type=click.Path(path_type=Path), metavar="PNG", callback=_plot_file,
              help="Write the confusion matrix here, a .png in an existing folder (several tasks: PNG-stem.<task>.png beside it).")
@click.option("--top-wrong", type=click.IntRange(min=0), default=10, show_default=True,
              help="Most confident mistakes listed per task.")
@device_option("cpu")
@click.option("--any", "any_task", is_flag=True,
              help="PATH/<task>/<class>/*: class-incremental accuracy (no task name: agnostic head, NCM, routing) per head version "
                   "beside task-incremental accuracy, on the same images.")
@json_option
@pass_state
def evaluate(state: State, path: Path, task_names: tuple[str, ...], plot: Path | None, top_wrong: int, device: str,
             any_task: bool, as_json: bool) -> None:
    """Score live tasks on labelled images (an ImageFolder, or a path,label CSV) and log the score.

    Class folder names (or CSV labels) must be the task's class names. Prints accuracy,
    per-class accuracy (recall) and precision, the confusion matrix and the most confident
    mistakes; each task's score and the data's md5 become an ``evaluate`` event in its history.
    """
    from forkpoint.contract.errors import ConfigError
    from forkpoint.workflows.inputs import labelled_files, live_records

    if any_task and plot is not None:
        raise ConfigError("--plot draws one task's confusion matrix; --any scores every head version instead: drop one of them")
    asked = _once(state, task_names)
    if not any_task:
        # usage errors that need no model, before torch loads: the data, then the task names
        data = labelled_files(path)
        if asked:
            with state.open() as home:
                live_records(home, asked)
    from forkpoint.learner.device import resolve_device
    from forkpoint.workflows.evaluate import confusion_png, evaluate as score, matching_tasks, plot_paths, record, scoring_note
    from forkpoint.workflows.live import load_live_model

    target = resolve_device(device)
    if any_task:
        from forkpoint.commands.agnostic_cmds import evaluate_any

        state.compute()
        with state.open() as home:
            live = load_live_model(home, tasks=asked)
            live.model.to(target)
            evaluate_any(state, home, live, path, as_json)
        return
    state.compute()
    with state.open() as home:
        live = load_live_model(home, tasks=asked)
        tasks = matching_tasks(live, data.class_names, asked)
        if asked is None:
            state.note(scoring_note(data.source, tasks))
        live.model.to(target)
        result = score(live, data, tasks, top_wrong=top_wrong)
        record(home, result)
    plots = {t: str(confusion_png(e, p)) for e, (t, p) in zip(result.tasks, plot_paths(plot, tasks).items())} if plot else {}
    if as_json:
        emit_json({**result.to_dict(), "plots": plots})
        return
    for e in result.tasks:
        for table in _tables(e):
            state.console.print(table)
    for t, p in plots.items():
        state.note(f"{t}: confusion matrix written to {p}")
    state.note(f"{len(data.paths)} image(s) from {data.source} (md5 {data.md5}); scores logged as `evaluate` events (see `forkpoint history TASK`)")


def _tables(e):
    """Per-class scores, the confusion matrix and the worst mistakes of one task."""
    from rich.table import Table

    from forkpoint.workflows.render import pct

    per = Table(title=f"{e.task} v{e.version}: accuracy {pct(e.accuracy)} ({e.correct} of {e.images})")
    for col in ("class", "images", "accuracy (recall)", "precision"):
        per.add_column(col)
    for name, row in e.per_class().items():
        per.add_row(name, str(row["images"]), pct(row["accuracy"]), pct(row["precision"]))
    present = [i for i, row in enumerate(e.confusion) if sum(row)]
    used = [j for j in range(len(e.class_names)) if any(e.confusion[i][j] for i in present) or j in present]
    matrix = Table(title=f"{e.task}: confusion (rows true, columns predicted)")
    matrix.add_column("true \\ predicted")
    for j in used:
        matrix.add_column(e.class_names[j], justify="right")
    for i in present:
        matrix.add_row(e.class_names[i], *(str(e.confusion[i][j]) for j in used))
    tables = [per, matrix]
    if e.mistakes:
        wrong = Table(title=f"{e.task}: most confident mistakes")
        for col in ("image", "true", "predicted", "p(predicted)", "p(true)"):
            wrong.add_column(col, overflow="fold" if col == "image" else None)
        for m in e.mistakes:
            wrong.add_row(m.path, m.true, m.predicted, pct(m.probability), pct(m.true_probability))
        tables.append(wrong)
    return tables


def show_routes(state: State, home, live, paths: list[Path], as_json: bool) -> None:
    """``predict --route``: per image, the task it belongs to (or none) and that task's label."""
    from rich.table import Table

    from forkpoint.workflows.render import pct
    from forkpoint.workflows.routing import records, route_images

    routed = route_images(live, paths)
    used = list(records(live))
    skipped = [t for t in live.tasks if t not in used]
    if as_json:
        emit_json({"backbone_fingerprint": home.fingerprint, "versions": {t: live.versions[t].version for t in used},
                   "skipped": skipped, "images": [{"path": p, **r.to_dict()} for p, r in routed]})
        return
    table = Table(title="routed predictions")
    for col in ("image", "task", "label", "distance"):
        table.add_column(col, overflow="fold" if col == "image" else None)
    for p, r in routed:
        nearest = min(r.distances.values())
        label = f"{r.label} ({pct(r.probability)})" if r.task else "-"
        table.add_row(p, r.task or "none of them", label, f"{nearest:.2f}")
    state.console.print(table)
    if skipped:
        state.note(f"not routed to (registered before routing existed): {', '.join(skipped)}")
    state.note("distance: to the task's nearest class prototype, 1.0 = its own least typical validation images; over 1 for every task = none")


COMMANDS: tuple[click.Command, ...] = (evaluate,)
