"""What every forkpoint command shares: the per-invocation :class:`State`, ``--json`` output,
the ``START:END`` block-range option and the exit codes.

Re-exported by :mod:`forkpoint.cli` (the root group and the error boundary live there). This
module imports neither torch nor the registry: ``--help`` and the read commands stay quick.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import click

from forkpoint.contract.names import DEFAULT_ARCH as DEFAULT_BACKBONE  # noqa: F401 - torch-free; for init, re-exported

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEMO_HOME = Path(".forkpoint-demo")


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

    def open(self, write: bool | None = None):
        """The initialised home. Only writing commands (``write``; by default the invoked command is one of
        WRITING_COMMANDS) may open a ``--db`` SQLite file that does not exist: a read never creates one."""
        from forkpoint.workflows.home import open_home

        if self.db is not None and not (write if write is not None else _invoked() in WRITING_COMMANDS):
            from forkpoint.registry.core import require_existing

            require_existing(self.db)
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


WRITING_COMMANDS = frozenset({"init", "add-task", "promote", "rollback", "gc"})  # may open a --db file not yet there


def _invoked() -> str | None:
    """The name of the command being run (None outside click)."""
    ctx = click.get_current_context(silent=True)
    return ctx.command.name if ctx is not None else None


pass_state = click.make_pass_decorator(State)


def device_option(default: str = "auto", help: str = "") -> Callable[[Callable], Callable]:
    """``--device auto|cpu|cuda|cuda:N``; checked by ``learner.device.resolve_device`` (bad values exit 2)."""
    about = "auto (CUDA when usable, else CPU), cpu, cuda or cuda:N." + (f" {help}" if help else "")
    return click.option("--device", default=default, show_default=True, metavar="auto|cpu|cuda[:N]", help=about,
                        callback=_device_name)


def _device_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A malformed --device fails while options are parsed, before torch loads (contract.devices)."""
    from forkpoint.contract.devices import device_name

    return device_name(value)


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
