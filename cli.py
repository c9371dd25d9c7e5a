"""forkpoint's command line: a thin layer over ``workflows`` (learner + registry + imagedata).

Conventions every command follows:

* global ``--home``/``FORKPOINT_HOME``, ``--db``/``FORKPOINT_DB``, ``-v``, ``--quiet``, ``--version``;
* read commands take ``--json`` (keys documented in README.md), otherwise print rich tables;
* exit 0 ok, 1 a check failed (audit, no-forgetting), 2 usage or input error, 130 Ctrl-C;
  errors are one line on stderr naming the problem and the fix, tracebacks only with ``-v``.

Heavy imports (torch, the registry) happen inside commands, so ``--help`` stays quick and
a broken optional subsystem (data, stream, bench) cannot break the rest of the CLI.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import click

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
from forkpoint.contract.names import DEFAULT_ARCH as DEFAULT_BACKBONE  # torch-free
DEMO_HOME = Path(".forkpoint-demo")

# Commands other areas own: name -> (module, attribute, help shown if it cannot be loaded).
SUBSYSTEMS: dict[str, tuple[str, str, str]] = {
    "data": ("forkpoint.imagedata.commands", "data_group", "Prepare and inspect the built-in datasets (DVC-tracked)."),
    "stream": ("forkpoint.scenarios.commands", "stream_group", "Run continual-learning streams (Avalanche) and compare strategies."),
    "bench": ("forkpoint.benchmarks.commands", "bench_command", "Benchmarks: SubTuning vs baselines, timings, reports."),
}

_verbosity = 0  # set by the group callback; read by the error boundary


# ---- the error boundary -------------------------------------------------------------


def _forkpoint_error_type() -> type | None:
    """The error root (torch-free: forkpoint.contract)."""
    from forkpoint.contract.errors import ForkpointError

    return ForkpointError


def _fail(message: str, code: int) -> int:
    click.echo(f"error: {message}", err=True)
    return code


class ForkpointGroup(click.Group):
    """The root group: one place that turns every failure into a one-line message and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        global _verbosity
        _verbosity = 0
        try:
            rv = super().main(args, prog_name or "forkpoint", complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except (click.exceptions.Abort, KeyboardInterrupt):
            code = _fail("interrupted (Ctrl-C): nothing was half-registered; the registry holds only complete versions", EXIT_INTERRUPTED)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                sub = exc.ctx.command_path.partition(" ")[2]  # CliRunner names the root "main"
                hint = f" (see 'forkpoint {sub + ' ' if sub else ''}--help')"
            code = _fail(exc.format_message().replace("\n", " ") + hint, exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - this is the boundary
            fp_error = _forkpoint_error_type()
            if _verbosity:
                traceback.print_exc()
            if fp_error is not None and isinstance(exc, fp_error):
                code = _fail(str(exc).replace("\n", " "), int(getattr(exc, "exit_code", EXIT_USAGE)))
            else:
                code = _fail(f"internal error {type(exc).__name__}: {exc} (re-run with -v for the traceback and report it)", 1)
        if standalone_mode:
            sys.exit(code)
        return code

    # -- subsystems mounted lazily -------------------------------------------------
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBSYSTEMS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        own = super().get_command(ctx, name)
        if own is not None or name not in SUBSYSTEMS:
            return own
        return _load_subsystem(name)


class Unavailable(click.ClickException):
    """A mounted subsystem cannot be loaded (an installation problem, reported like an input error)."""

    exit_code = EXIT_USAGE


def _load_subsystem(name: str) -> click.Command:
    """The other area's click group, or a stand-in that explains why it is unavailable."""
    module_name, attr, about = SUBSYSTEMS[name]
    try:
        spec = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:
        spec, reason = None, f"{module_name} is not installed"
    except Exception as exc:  # noqa: BLE001 - a broken parent package
        spec, reason = None, f"{module_name.split('.')[0]} fails to import ({type(exc).__name__}: {exc})"
    else:
        reason = f"{module_name} is not installed"
    if spec is not None:
        try:
            module = importlib.import_module(module_name)
            group = getattr(module, attr, None)
            if not isinstance(group, click.Command):
                group = next((v for v in vars(module).values() if isinstance(v, click.Command) and v.name == name), None)
            if isinstance(group, click.Command):
                return group
            reason = f"{module_name} defines no click command {attr!r}"
        except Exception as exc:  # noqa: BLE001 - broken subsystem: keep the rest of the CLI working
            reason = f"{module_name} fails to import ({type(exc).__name__}: {exc})"

    @click.command(name, help=f"{about} [unavailable: {reason}]", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def unavailable() -> None:
        raise Unavailable(f"'forkpoint {name}' is unavailable: {reason}; reinstall forkpoint (`make setup`) or check that module")

    return unavailable


# ---- shared state and helpers ---------------------------------------------------------


@dataclass
class State:
    home: str | None
    db: str | None
    verbose: int
    quiet: bool
    threads: int | None = None

    def compute(self) -> None:
        """Before heavy torch work: pick the thread count (see workflows.threads) and log it."""
        from forkpoint.workflows.threads import apply_threads

        logging.getLogger("forkpoint").info("torch threads: %d", apply_threads(self.threads))

    @cached_property
    def console(self):
        """stdout for results; wide when not a terminal so tables in logs and pipes do not fold."""
        from rich.console import Console

        width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
        return Console(width=width, soft_wrap=False)

    def open(self):
        from forkpoint.workflows.home import open_home

        return open_home(self.home, self.db)

    @cached_property
    def stderr(self):
        """Progress and notes go to stderr, so stdout holds only results (and --json stays parseable)."""
        from rich.console import Console

        return Console(stderr=True, soft_wrap=False)

    def note(self, message: str) -> None:
        """Informational lines that --quiet drops (results are always printed)."""
        if not self.quiet:
            self.stderr.print(message, highlight=False)

    def progress(self):
        """A rich progress display with ETA on stderr, or None with --quiet."""
        if self.quiet:
            return None
        from forkpoint.workflows.progress import rich_progress

        return rich_progress(self.stderr)


pass_state = click.make_pass_decorator(State)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (stable keys, see README) instead of a table.")(f)


def emit_json(obj: Any) -> None:
    from forkpoint.workflows.render import dumps

    click.echo(dumps(obj))


class UnitRangeParam(click.ParamType):
    """``START:END`` as block indices or block names, or ``probe`` (kept raw; resolved once the trunk is known)."""

    name = "START:END|probe"

    def convert(self, value: Any, param, ctx) -> tuple[str, str] | str:
        if isinstance(value, (tuple, str)) and str(value).strip().lower() in ("probe", "linear"):
            return "probe"
        if isinstance(value, tuple):
            return value
        parts = str(value).split(":")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            self.fail(f"{value!r} is not START:END (e.g. 12:13 or blocks.5.0:blocks.5.1) or probe", param, ctx)
        return parts[0].strip(), parts[1].strip()


def resolve_units(raw: tuple[str, str] | str | None, block_names: list[str], option: str, inclusive: bool = True):
    """The CLI's human range -> the contract's half-open UnitRange (the only place the syntax is converted).

    ``--branch START:END`` is inclusive (``probe`` = head only); ``--candidates LO:HI`` is a slice (HI exclusive).
    """
    from forkpoint.contract.branch import UnitRange, parse_range

    if raw is None:
        return None
    if raw == "probe":
        if inclusive:
            return UnitRange.probe(len(block_names))
        raise click.BadParameter("'probe' is not a range of blocks to profile: give LO:HI", param_hint=option)
    out = []
    for part in raw:
        if part.lstrip("-").isdigit():
            out.append(int(part))
        elif part in block_names:
            out.append(block_names.index(part))
        else:
            raise click.BadParameter(
                f"{part!r} is neither a block index nor a block name ({block_names[0]} .. {block_names[-1]}); see `forkpoint info`",
                param_hint=option,
            )
    return parse_range(f"{out[0]}:{out[1]}", len(block_names), inclusive=inclusive, what=option)


def setup_logging(verbose: int) -> None:
    """-v: phase lines (INFO) on stderr; -vv: DEBUG. Handlers others added are left alone."""
    from rich.console import Console
    from rich.logging import RichHandler

    logger = logging.getLogger("forkpoint")
    for handler in [h for h in logger.handlers if getattr(h, "forkpoint_cli", False)]:
        logger.removeHandler(handler)
    if verbose:
        handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
        handler.forkpoint_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


# ---- the root group -------------------------------------------------------------------


@click.group(cls=ForkpointGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", envvar="FORKPOINT_HOME", metavar="DIR",
              help="Registry home (database + weights). Env FORKPOINT_HOME; default ~/.forkpoint.")
@click.option("--db", envvar="FORKPOINT_DB", metavar="URL",
              help="Database URL (sqlite:///PATH or postgresql+psycopg://USER@HOST/DB). Env FORKPOINT_DB; default SQLite in the home.")
@click.option("-v", "--verbose", count=True, help="Log each phase; -vv for debug. Errors then show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or notes; results and errors only.")
@click.option("--threads", type=click.IntRange(min=1), envvar="FORKPOINT_THREADS", metavar="N",
              help="CPU threads for torch. Env FORKPOINT_THREADS; default: the cores the load average leaves idle.")
@click.version_option(package_name="forkpoint", prog_name="forkpoint")
@click.pass_context
def main(ctx: click.Context, home: str | None, db: str | None, verbose: int, quiet: bool, threads: int | None) -> None:
    """forkpoint: add classification tasks to one frozen backbone with SubTuning, forgetting nothing.

    Typical session: init, add-task (repeat), predict, history, audit, rollback.
    """
    global _verbosity
    _verbosity = verbose
    setup_logging(verbose)
    ctx.obj = State(home, db, verbose, quiet, threads)


# ---- home -------------------------------------------------------------------------------


@main.command()
@click.option("--backbone", "arch", default=DEFAULT_BACKBONE, show_default=True,
              help="timm architecture. The default uses the embedded ImageNet weights (offline).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="Local .safetensors/state-dict file for --backbone; stored in the registry.")
@click.option("--resolution", type=click.IntRange(16, 1024), help="Input size in pixels (default: the model's, 224 for Lite0; 64 is a good CPU choice).")
@json_option
@pass_state
def init(state: State, arch: str, weights: str | None, resolution: int | None, as_json: bool) -> None:
    """Create a registry home and register its frozen trunk (idempotent for the same trunk)."""
    from forkpoint.workflows.home import init_home
    from forkpoint.workflows.render import backbone_dict, backbone_table

    result = init_home(state.home, state.db, arch, weights, resolution)
    with result.home as home:
        db = _shown_db(home.registry.url)
        if as_json:
            emit_json({**backbone_dict(home.record, str(home.path), db), "created": result.created})
            return
        state.console.print(backbone_table(home.record, str(home.path), db))
        state.note(("initialised " if result.created else "already initialised: ") + f"{home.path}. Next: `forkpoint add-task NAME --data mnist`")


def _shown_db(url: str) -> str:
    from forkpoint.registry.db import shown

    return shown(url)


@main.command()
@json_option
@pass_state
def info(state: State, as_json: bool) -> None:
    """Show the home, its database and its trunk (block names for --branch)."""
    from forkpoint.workflows.render import backbone_dict, backbone_table

    with state.open() as home:
        db = _shown_db(home.registry.url)
        if as_json:
            emit_json({**backbone_dict(home.record, str(home.path), db), "num_tasks": len(home.registry.list_tasks())})
            return
        state.console.print(backbone_table(home.record, str(home.path), db))
        state.console.print("blocks: " + ", ".join(f"{i}={n}" for i, n in enumerate(home.record.block_names)), highlight=False)


# ---- adding tasks ------------------------------------------------------------------------


@main.command("add-task")
@click.argument("name")
@click.option("--data", "source", required=True, metavar="NAME|PATH",
              help="Built-in dataset (mnist, animals, digits, fashion), a prepared folder, an ImageFolder dir or a path,label CSV.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"),
              show_default=True, help="Where built-in datasets are prepared (env FORKPOINT_DATA).")
@click.option("--limit-per-class", type=click.IntRange(min=2), help="Use at most N images per class in each split (quick runs, low-data studies).")
@click.option("--val-limit-per-class", type=click.IntRange(min=1), help="Cap validation images per class separately (profiling scores every block on them).")
@click.option("--budget-blocks", type=click.IntRange(min=1), default=3, show_default=True, help="Most consecutive blocks the branch may tune.")
@click.option("--max-extra-cost", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Most extra inference cost, in % of one trunk pass.")
@click.option("--eps", type=click.FloatRange(min=0), default=0.005, show_default=True,
              help="A wider branch (or any branch over the linear probe) must win on validation by more than this and than one standard error.")
@click.option("--branch", type=UnitRangeParam(),
              help="Fix the branch to blocks START:END (inclusive; indices or names), or 'probe' for a head-only linear probe; skips profiling.")
@click.option("--candidates", type=UnitRangeParam(), help="Profile only blocks LO:HI (HI exclusive). Default: the blocks within --max-extra-cost.")
@click.option("--test-fraction", type=click.FloatRange(0, 0.9, max_open=True), default=0.0, show_default=True,
              help="For a folder/CSV without its own test split: hold out this share of each class for testing (default: none, every image trains or validates).")
@click.option("--siamese", is_flag=True, help="Head sees the branch's and the frozen trunk's features (Siamese SubTuning).")
@click.option("--probe/--no-probe", "probe", default=True, show_default=True,
              help="The linear probe (head only, no extra cost) competes with the trained branch and is served unless the branch beats it on validation.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Training epochs for the chosen branch (at least --min-steps optimizer steps are taken).")
@click.option("--profile-epochs", type=click.IntRange(min=1), default=3, show_default=True, help="Epochs per profiled candidate (at least 100 steps).")
@click.option("--min-steps", type=click.IntRange(min=0), default=150, show_default=True,
              help="Fewest optimizer steps for the chosen branch, so few epochs on few images still converge.")
@click.option("--patience", type=click.IntRange(min=0), default=4, show_default=True, help="Early-stopping patience in validation passes (0: off).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Learning rate of the tuned blocks and of the head (which starts from the fitted linear probe).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the validation split, the per-class limit and training.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--description", default="", help="Free text stored with the version.")
@click.option("--stage", "staged", is_flag=True, help="Register the version without making it live (promote it later).")
@json_option
@pass_state
def add_task_cmd(state: State, name: str, source: str, data_root: Path, limit_per_class: int | None,
                 val_limit_per_class: int | None, budget_blocks: int,
                 max_extra_cost: float, eps: float, branch, candidates, test_fraction: float, siamese: bool, probe: bool, epochs: int,
                 profile_epochs: int, min_steps: int, patience: int, batch_size: int, lr: float, seed: int, device: str,
                 description: str, staged: bool, as_json: bool) -> None:
    """Profile, select, SubTune and register task NAME (a new version if NAME exists)."""
    from forkpoint.learner import add_task_config
    from forkpoint.registry.validate import task_name
    from forkpoint.workflows.datasets import load_task_data
    from forkpoint.workflows.progress import PhaseProgress
    from forkpoint.workflows.render import added_dict, added_table
    from forkpoint.workflows.tasks import add_task_version, check_new_version_fits

    task_name(name)
    state.compute()
    with state.open() as home:
        blocks = list(home.record.block_names)
        cfg = add_task_config(
            epochs=epochs, profile_epochs=profile_epochs, patience=patience, batch_size=batch_size, lr=lr,
            min_steps=min_steps, eps=eps, budget_blocks=budget_blocks, max_extra_cost=max_extra_cost, seed=seed,
            candidates=resolve_units(candidates, blocks, "--candidates", inclusive=False),
            branch=resolve_units(branch, blocks, "--branch"),
            siamese=siamese, probe_candidate=probe, device=device,
        )
        data = load_task_data(source, data_root, limit_per_class, seed, resolution=home.record.resolution,
                              val_limit=val_limit_per_class, test_fraction=test_fraction)
        previous = check_new_version_fits(home, name, data.class_names)
        state.note(f"{name}: {data.dataset.name}, {len(data.class_names)} classes, "
                   + ", ".join(f"{k} {v}" for k, v in data.sizes.items())
                   + (f" (new version of a task with live v{previous.live_version})" if previous else ""))
        display = state.progress()
        with display or contextlib.nullcontext():
            added = add_task_version(home, name, data, cfg, description=description, promote=not staged,
                                     progress=PhaseProgress(display))
    if as_json:
        emit_json(added_dict(added))
    else:
        state.console.print(added_table(added))


# ---- reading the registry ------------------------------------------------------------------


@main.command()
@json_option
@pass_state
def tasks(state: State, as_json: bool) -> None:
    """List tasks with their live version, branch point and accuracy."""
    from forkpoint.workflows.render import task_summary, tasks_table

    with state.open() as home:
        rows = [(t, home.registry.show(t.name) if t.live_version is not None else None) for t in home.registry.list_tasks()]
        if as_json:
            emit_json({"backbone_fingerprint": home.fingerprint, "tasks": [task_summary(t, v) for t, v in rows]})
            return
        if not rows:
            state.console.print("no tasks yet: add one with `forkpoint add-task NAME --data mnist`")
            return
        state.console.print(tasks_table(rows))


@main.command()
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="Version number (default: the live one).")
@click.option("--profile/--no-profile", default=True, show_default=True, help="Also show the finetuning profile.")
@json_option
@pass_state
def show(state: State, name: str, version: int | None, profile: bool, as_json: bool) -> None:
    """Show one version of a task (default: the live one)."""
    from forkpoint.workflows.render import profile_table, version_table

    with state.open() as home:
        rec = home.registry.show(name, version)
        if as_json:
            emit_json(rec.to_dict())
            return
        state.console.print(version_table(rec))
        table = profile_table(rec) if profile else None
        if table is not None:
            state.console.print(table)


@main.command()
@click.argument("name")
@json_option
@pass_state
def history(state: State, name: str, as_json: bool) -> None:
    """Every version of a task and every audit event that touched it."""
    from forkpoint.workflows.render import history_tables

    with state.open() as home:
        h = home.registry.history(name)
        if as_json:
            emit_json(h.to_dict())
            return
        for table in history_tables(h):
            state.console.print(table)


@main.command()
@click.argument("name")
@click.argument("v1", type=click.IntRange(min=1))
@click.argument("v2", type=click.IntRange(min=1))
@json_option
@pass_state
def diff(state: State, name: str, v1: int, v2: int, as_json: bool) -> None:
    """What changed between two versions of a task."""
    from forkpoint.workflows.render import diff_table

    with state.open() as home:
        d = home.registry.diff(name, v1, v2)
        if as_json:
            emit_json(d.to_dict())
            return
        if d.same:
            state.console.print(f"{name}: v{v1} and v{v2} are the same")
            return
        state.console.print(diff_table(d))


@main.command()
@click.option("--task", "task", help="Only events of this task.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="The newest N events.")
@json_option
@pass_state
def events(state: State, task: str | None, limit: int, as_json: bool) -> None:
    """The audit log: who registered, promoted, rolled back, verified or collected what, and when."""
    from forkpoint.workflows.render import events_table

    with state.open() as home:
        found = home.registry.audit_events(task=task, limit=limit)
        if as_json:
            emit_json({"events": [e.to_dict() for e in found]})
            return
        state.console.print(events_table(found))


# ---- serving -----------------------------------------------------------------------------------


@main.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@click.option("--task", "task_names", multiple=True, metavar="NAME", help="Only these tasks (repeatable). Default: every live task.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes listed per task in --json.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the shared pass runs (auto: CUDA when present).")
@json_option
@pass_state
def predict(state: State, images: tuple[str, ...], task_names: tuple[str, ...], top_k: int, device: str, as_json: bool) -> None:
    """Classify images with every live task (or --task ones) in one shared forward pass."""
    from forkpoint.learner.train import resolve_device
    from forkpoint.workflows.live import load_live_model
    from forkpoint.workflows.predict import collect_images, predict_images
    from forkpoint.workflows.render import predictions_table

    paths = collect_images(list(images))
    target = resolve_device(device)
    state.compute()
    with state.open() as home:
        live = load_live_model(home, tasks=list(task_names) or None)
        if not live.tasks:
            raise click.UsageError("no live tasks to predict with: add one with `forkpoint add-task NAME --data ...`")
        live.model.to(target)
        preds = predict_images(live, paths, live.tasks, top_k=top_k)
        if as_json:
            emit_json({
                "backbone_fingerprint": home.fingerprint,
                "versions": {t: live.versions[t].version for t in live.tasks},
                "images": [p.to_dict() for p in preds],
            })
            return
        state.console.print(predictions_table(preds, live.tasks))
        state.note(f"one shared pass for {len(live.tasks)} task(s): extra cost {live.model.extra_cost_pct():.1f}% of one trunk pass")


# ---- moving the live pointer -----------------------------------------------------------------------


@main.command()
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@json_option
@pass_state
def promote(state: State, name: str, version: int, as_json: bool) -> None:
    """Make VERSION the live version of task NAME."""
    with state.open() as home:
        before = home.registry.get_task(name).live_version
        rec = home.registry.promote(name, version)
        _moved(state, rec, before, as_json)


@main.command()
@click.argument("name")
@click.option("--to", "to", type=click.IntRange(min=1), help="Version to go back to (default: the newest earlier version that was live).")
@json_option
@pass_state
def rollback(state: State, name: str, to: int | None, as_json: bool) -> None:
    """Move task NAME's live pointer back to an older version (nothing is deleted)."""
    with state.open() as home:
        before = home.registry.get_task(name).live_version
        rec = home.registry.rollback(name, to)
        _moved(state, rec, before, as_json)


def _moved(state: State, rec, before: int | None, as_json: bool) -> None:
    if as_json:
        emit_json({"task": rec.task, "live_before": before, "live_after": rec.version, "version": rec.to_dict()})
        return
    from forkpoint.workflows.render import branch_label, pct

    state.console.print(f"{rec.task}: live v{before} -> v{rec.version} (branch {branch_label(rec)}, "
                        f"test acc {pct(rec.metrics.get('test_acc'))})", highlight=False)


# ---- integrity ------------------------------------------------------------------------------------------


@main.command()
@click.option("--no-data", is_flag=True, help="Skip re-hashing each version's training data (DVC md5).")
@json_option
@pass_state
def audit(state: State, no_data: bool, as_json: bool) -> None:
    """Verify everything: weight hashes, trunk fingerprint, data versions, live branches. Exit 1 on any problem."""
    from forkpoint.workflows.audit import audit_home

    state.compute()
    with state.open() as home:
        result = audit_home(home, check_data=not no_data)
    if as_json:
        emit_json(result.to_dict())
    else:
        r = result.report
        state.console.print(
            f"checked {r.checked_backbones} trunk(s), {r.checked_versions} version(s), {r.checked_objects} weight file(s), "
            f"{r.checked_data} data version(s), {result.live_checked} live branch rebuild(s)", highlight=False)
        if r.orphans:
            state.console.print(f"{len(r.orphans)} unreferenced file(s): `forkpoint gc` removes them", highlight=False)
        for problem in result.problems:
            click.echo(f"problem: {problem}", err=True)
        state.console.print("audit: OK" if result.ok else f"audit: {len(result.problems)} problem(s)", highlight=False)
    if not result.ok:
        click.get_current_context().exit(EXIT_CHECK_FAILED)


@main.command()
@click.option("--min-age", type=click.FloatRange(min=0), default=None, help="Only files older than this many seconds (default: 15 minutes).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing (the audit log records the dry run).")
@json_option
@pass_state
def gc(state: State, min_age: float | None, dry_run: bool, as_json: bool) -> None:
    """Delete weight files no version or trunk uses (rows are never deleted)."""
    from forkpoint.registry import GC_GRACE_S

    with state.open() as home:
        keys = home.registry.gc(GC_GRACE_S if min_age is None else min_age, dry_run=dry_run)  # store keys, relative to the home
    if as_json:
        emit_json({"deleted": [] if dry_run else keys, "would_delete": keys if dry_run else [], "dry_run": dry_run})
        return
    verb = "would delete" if dry_run else "deleted"
    state.console.print(f"gc: {verb} {len(keys)} unreferenced file(s)" + "".join(f"\n  {k}" for k in keys), highlight=False)


# ---- demo and samples ---------------------------------------------------------------------------------------


@main.command()
@click.option("--home", "demo_home", type=click.Path(file_okay=False, path_type=Path), default=DEMO_HOME, show_default=True,
              help="Demo registry home; wiped first (only if it is a previous demo home or empty).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"), show_default=True)
@click.option("--limit-per-class", type=click.IntRange(min=4), default=None,
              help="Images per class in every split (default: 100 train/test and 20 validation, ~3 minutes on 2 cores).")
@click.option("--resolution", type=click.IntRange(16, 1024), default=64, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs per task (default 6).")
@click.option("--profile-epochs", type=click.IntRange(min=1), default=None, help="Epochs per profiled block (default 2).")
@click.option("--candidates", type=UnitRangeParam(), help="Profile only blocks LO:HI (HI exclusive; quick runs). Default: all blocks.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@pass_state
def demo(state: State, demo_home: Path, data_root: Path, limit_per_class: int | None, resolution: int,
         epochs: int | None, profile_epochs: int | None, candidates, device: str) -> None:
    """Three real tasks on the embedded Lite0 (MNIST, animal silhouettes, sklearn digits), checked for forgetting."""
    from forkpoint.learner.backbone import load_backbone
    from forkpoint.workflows.demo import DemoSettings, run_demo

    state.compute()
    blocks = load_backbone().block_names if candidates else []
    settings = DemoSettings.default(limit_per_class, resolution, epochs, profile_epochs, device,
                                    resolve_units(candidates, blocks, "--candidates", inclusive=False))
    run_demo(demo_home, data_root, settings, state.console, show_progress=not state.quiet)


@main.command()
@click.option("--data", "source", required=True, metavar="NAME|PATH", help="Dataset to take images from (as for add-task).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write PNGs into.")
@click.option("--per-class", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"), show_default=True)
@pass_state
def samples(state: State, source: str, out: Path, per_class: int, split: str, data_root: Path) -> None:
    """Write a few real images of a dataset as PNGs (to try `forkpoint predict` on)."""
    from forkpoint.workflows.samples import write_samples

    written = write_samples(source, out, per_class, split, data_root)
    state.console.print(f"wrote {len(written)} image(s) to {out}", highlight=False)


if __name__ == "__main__":
    main()
