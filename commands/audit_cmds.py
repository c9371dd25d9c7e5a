"""``reproduce``: rebuild a task version from its record and compare (see workflows/reproduce.py)."""

from __future__ import annotations

import contextlib

import click

from forkpoint.commands._shared import EXIT_CHECK_FAILED, State, emit_json, json_option, pass_state


@click.command()
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="Version to rebuild (default: the live one).")
@click.option("--data", "data_path", type=click.Path(exists=True), metavar="PATH",
              help="Where the version's images are now (default: the recorded path); must have the recorded DVC md5.")
@json_option
@pass_state
def reproduce(state: State, name: str, version: int | None, data_path: str | None, as_json: bool) -> None:
    """Rebuild a task version from its record and say whether it is identical, equivalent or different.

    Exit 0 identical, 0 equivalent (same branch and predictions, with a note), 1 different,
    2 when the data is not the recorded data version. Writes only an audit event.
    """
    from forkpoint.workflows.progress import PhaseProgress
    from forkpoint.workflows.reproduce import reproduce_version

    state.compute()
    with state.open() as home:
        display = state.progress()
        with display or contextlib.nullcontext():
            result = reproduce_version(home, name, version, data_path=data_path, progress=PhaseProgress(display))
    if as_json:
        emit_json(result.to_dict())
    else:
        for line in result.lines():
            state.console.print(line, highlight=False, markup=False)
    if result.verdict == "equivalent":
        state.note("note: not bit-identical (threads, device or library versions differ), but the same branch and predictions")
    if result.exit_code:
        click.get_current_context().exit(EXIT_CHECK_FAILED)


COMMANDS: tuple[click.Command, ...] = (reproduce,)
