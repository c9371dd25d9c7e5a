"""``forkpoint stream run``: a task stream through SubTuning and the Avalanche baselines.

Heavy imports (torch, Avalanche) happen inside the command so ``--help`` stays quick.
Errors are ForkpointError subclasses; the CLI's boundary prints them as one line
(exit 2 for bad input, 1 when the no-forgetting check failed).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click

STRATEGY_NAMES = ("subtuning", "naive", "ewc", "lwf", "replay", "linear", "full")  # scenarios.baselines.STRATEGIES


def _strategies(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip().lower() for s in value.split(",") if s.strip()))
    unknown = [n for n in names if n not in STRATEGY_NAMES]
    if unknown or not names:
        raise click.BadParameter(f"unknown strategy {unknown[0] if unknown else value!r}: use a comma list of {', '.join(STRATEGY_NAMES)}",
                                 param_hint="--strategy")
    return names


def _unit_range(value: str | None):
    """``LO:HI`` (HI exclusive, as add-task's --candidates) -> a half-open UnitRange."""
    if value is None:
        return None
    from forkpoint.contract.branch import parse_range

    return parse_range(value, inclusive=False, what="--candidates")


def _global(ctx: click.Context, attr: str):
    """A value of the root CLI's shared state (--home/--db/--quiet), when mounted under it."""
    obj = ctx.find_root().obj
    return getattr(obj, attr, None) if obj is not None else None


@click.group("stream")
def stream_group() -> None:
    """Continual-learning streams (Avalanche): SubTuning next to the standard baselines."""


@stream_group.command("run")
@click.option("--benchmark", "-b", "benchmark", multiple=True, metavar="domains|split|PATH",
              help="domains (MNIST, Fashion-MNIST, animals, digits), split (Fashion-MNIST as 5 two-class tasks), "
                   "or dataset folders in stream order (repeat, or list them after the options).")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--strategy", "-s", "strategy", default=",".join(STRATEGY_NAMES), show_default=True,
              help="Comma list of strategies to compare.")
@click.option("--per-class", type=click.IntRange(min=2), default=50, show_default=True,
              help="Training images per class (low-data regimes: 10, 50, 100).")
@click.option("--test-per-class", type=click.IntRange(min=1), default=50, show_default=True, help="Test images per class.")
@click.option("--test-fraction", type=click.FloatRange(0.0, 0.9, min_open=True, max_open=True), default=0.2, show_default=True,
              help="Share of each class held out as test images from a dataset folder without its own test split.")
@click.option("--tasks", "num_tasks", type=click.IntRange(min=1), default=None, help="Use only the first N tasks of the stream.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for image choice, splits and training.")
@click.option("--resolution", type=click.IntRange(16, 1024), default=None,
              help="Input size in px (default: the home's, else 64).")
@click.option("--epochs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Training epochs per task for every strategy.")
@click.option("--profile-epochs", type=click.IntRange(min=1), default=1, show_default=True,
              help="SubTuning: epochs per profiled candidate.")
@click.option("--candidates", default=None, metavar="LO:HI", help="SubTuning: profile only units LO..HI-1 (default: the units whose fork fits the cost budget).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Baselines' learning rate (Adam).")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]", help="auto (CUDA when usable, else CPU), cpu, cuda or cuda:N.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"), show_default=True,
              help="Where the built-in datasets are prepared (env FORKPOINT_DATA).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder for reports and heatmaps (default: runs/stream-<benchmark>-<time>).")
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Registry home to record SubTuning's task versions in (with the run id); see `forkpoint init`.")
@click.option("--db", default=None, metavar="URL", help="Registry database URL (default: SQLite in the home).")
@click.option("--resume", is_flag=True, help="Continue the unfinished run in --out (SubTuning restores registered tasks).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the strategies as this many Ray tasks side by side (a local Ray, or RAY_ADDRESS); same results as 1.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.pass_context
def run_cmd(ctx: click.Context, benchmark, paths, strategy, per_class, test_per_class, test_fraction, num_tasks, seed, resolution, epochs,
            profile_epochs, candidates, batch_size, lr, device, data_root, out, home, db, resume, workers, as_json) -> None:
    """Run a task stream with each strategy; write report.md/report.json and accuracy-matrix heatmaps.

    Exits 1 if SubTuning changed any earlier task's predictions or any frozen fingerprint.
    """
    items = list(benchmark) + list(paths)
    if not items:
        raise click.UsageError("no benchmark: pass --benchmark domains, --benchmark split or dataset folders")
    strategies = _strategies(strategy)
    units = _unit_range(candidates)
    if resume and out is None:
        raise click.UsageError("--resume needs --out DIR: the folder of the run to continue")

    from rich.console import Console

    from forkpoint.scenarios.runner import RunConfig, run_stream
    from forkpoint.scenarios.streams import StreamOptions, load_stream

    home = home or _global(ctx, "home")
    db = db or _global(ctx, "db")
    quiet = bool(_global(ctx, "quiet"))
    console = Console(width=None if sys.stdout.isatty() else 200)
    opened = None
    if home is not None:
        from forkpoint.workflows.home import open_home

        opened = open_home(home, db)
    try:
        res = resolution or (opened.record.resolution if opened is not None else 64)
        config = RunConfig(strategies=strategies, resolution=res, epochs=epochs, profile_epochs=profile_epochs,
                           candidates=units, batch_size=batch_size, lr=lr, seed=seed, device=device, workers=workers)
        stream = load_stream(items, StreamOptions(per_class=per_class, test_per_class=test_per_class, seed=seed,
                                                  num_tasks=num_tasks, data_root=data_root, test_fraction=test_fraction))
        if out is None:
            out = Path("runs") / f"stream-{stream.name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
        if quiet or as_json:
            outcome = run_stream(stream, config, out, home=opened, resume=resume)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console) as progress:
                outcome = run_stream(stream, config, out, home=opened, resume=resume, progress=progress)
    finally:
        if opened is not None:
            opened.close()
    _print(console, outcome, as_json)


def _print(console, outcome, as_json: bool) -> None:
    import json

    from rich.table import Table

    from forkpoint.scenarios.report import TABLE_HEADER, table_rows

    if as_json:
        click.echo(json.dumps(json.loads(outcome.files["json"].read_text()), indent=2))
        return
    table = Table(title=f"stream run {outcome.run_id} ({outcome.status})")
    for h in TABLE_HEADER:
        table.add_column(h, justify="left" if h == "strategy" else "right")
    for row in table_rows(outcome.results):
        table.add_row(*row)
    console.print(table)
    console.print(f"report: {outcome.files['markdown']}  heatmaps: {outcome.folder}/heatmap-*.png")
