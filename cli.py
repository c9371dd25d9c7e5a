"""forkpoint's command line: a thin layer over ``workflows`` (learner + registry + imagedata).

Conventions every command follows:

* global ``--home``/``FORKPOINT_HOME``, ``--db``/``FORKPOINT_DB``, ``-v``, ``--quiet``, ``--version``;
* read commands take ``--json`` (keys documented in README.md), otherwise print rich tables;
* exit 0 ok, 1 a check failed (audit, no-forgetting), 2 usage or input error, 130 Ctrl-C;
  errors are one line on stderr naming the problem and the fix, tracebacks only with ``-v``.

Heavy imports (torch, the registry) happen inside commands, so ``--help`` stays quick and
a broken optional subsystem (data, stream, bench) cannot break the rest of the CLI.

The commands themselves live in :mod:`forkpoint.commands` (``task_cmds``, ``registry_cmds``, ``audit_cmds``;
shared helpers in ``commands._shared``) and are registered on :func:`main` below.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import traceback

import click

from forkpoint.commands import audit_cmds, eval_cmds, export_cmds, registry_cmds, serve_cmds, task_cmds
from forkpoint.commands._shared import EXIT_INTERRUPTED, EXIT_USAGE, State
from forkpoint.workflows.allocator import tune_malloc


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


# ---- logging ------------------------------------------------------------------------------


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
    tune_malloc()  # before torch allocates anything (workflows.allocator says why)
    ctx.obj = State(home, db, verbose, quiet, threads)


# ---- the commands (forkpoint.commands) ---------------------------------------------------

for _command in (*task_cmds.COMMANDS, *registry_cmds.COMMANDS, *audit_cmds.COMMANDS, *eval_cmds.COMMANDS,
                 *serve_cmds.COMMANDS, *export_cmds.COMMANDS):
    main.add_command(_command)
del _command


if __name__ == "__main__":
    main()
