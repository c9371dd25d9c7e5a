"""``forkpoint export``: the live multi-task model as one file another runtime can serve (issue 14).

A thin shell over :mod:`forkpoint.serving.onnx_export` and
:mod:`forkpoint.serving.export_torchscript`: both check the exported model against
forkpoint's own logits before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import click

from forkpoint.commands._shared import State, emit_json, json_option, pass_state


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True,
              help="onnx: one ONNX graph (onnxruntime, TensorRT, ...); torchscript: a torch.jit module (.pt).")
@click.option("--task", "task_names", multiple=True, metavar="NAME", help="Only these tasks, in this order (repeatable). Default: every live task.")
@click.option("--out", type=click.Path(dir_okay=True, path_type=Path), metavar="PATH",
              help="File to write (replaced atomically, only after the checks pass); its folder must exist.")
@click.option("--check", "check_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              help="Write nothing: say whether FILE (an earlier export) holds the registry's live versions. "
                   "Exit 0 up to date, 1 naming each task that differs, is missing or is new.")
@click.option("--onnx-exporter", type=click.Choice(["auto", "dynamo", "torchscript"]), default="auto", show_default=True,
              help="Which torch.onnx exporter builds the graph; auto: the TorchScript one (~1 s), then dynamo (~20 s a core) if it fails.")
@json_option
@pass_state
def export(state: State, fmt: str, task_names: tuple[str, ...], out: Path | None, check_file: Path | None,
           onnx_exporter: str, as_json: bool) -> None:
    """Export the live tasks (or --task ones) as one model: input `images`, one `logits_<task>` output per task.

    The file carries the class names, registry versions, branches and preprocessing as metadata
    (docs/export.md). Before writing, the exported model is run (onnxruntime for ONNX) and must
    match forkpoint's logits within 1e-4; otherwise nothing is written and the exit code is 1.
    `--check FILE` compares an earlier export's recorded versions with the live ones instead.
    """
    if check_file is not None:
        _only_check(out)
        return check(state, check_file, as_json)
    if out is None:
        raise click.UsageError("say where to write the model (--out model.onnx) or which export to check (--check FILE)")
    from forkpoint.serving.export_graph import Provenance
    from forkpoint.serving.export_target import check_target
    from forkpoint.workflows.live import load_live_model

    target = check_target(out)  # before any heavy work: a typo in --out costs nothing
    state.compute()
    with state.open() as home:
        live = load_live_model(home, tasks=list(task_names) or None)
        provenance = Provenance(selected=bool(task_names), trunk_registered_at=_registered_at(home))
        if fmt == "onnx":
            from forkpoint.serving.onnx_export import export_onnx

            how = "the dynamo exporter (~20 s a core)" if onnx_exporter == "dynamo" else "the TorchScript-based exporter (~1 s)"
            state.note(f"exporting {len(live.tasks)} task(s) to ONNX with {how}...")
            result = export_onnx(live, target, exporter=onnx_exporter, provenance=provenance)
        else:
            from forkpoint.serving.export_torchscript import export_torchscript

            result = export_torchscript(live, target, provenance=provenance)
    for note in result.notes:
        state.note(f"note: {note}")
    if as_json:
        emit_json(result.to_dict())
        return
    outputs = ", ".join(f"{o} ({t} v{r['version']})" for (t, o), r in zip(result.outputs.items(), result.tasks))
    state.console.print(
        f"wrote {result.path} ({result.bytes / 1e6:.1f} MB, {result.format} via {result.exporter}): input {result.input['name']} "
        f"{'x'.join(map(str, result.input['shape']))}, outputs {outputs}; matches forkpoint's logits "
        f"(max abs diff {result.max_abs_diff:.2g} <= {result.tolerance:g}, batches {', '.join(map(str, result.checked_batches))})",
        highlight=False, soft_wrap=True)


def _registered_at(home) -> str:
    """When this registry registered its trunk: with the fingerprint, which registry an export came from."""
    return home.record.created_at.isoformat()


def _only_check(out: Path | None) -> None:
    """--check reads a file and writes nothing: options that shape an export would be silently ignored."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    flags = {"fmt": "--format", "task_names": "--task", "onnx_exporter": "--onnx-exporter"}
    given = (["--out"] if out is not None else []) + [
        flag for name, flag in flags.items() if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)]
    if given:
        raise click.UsageError(f"--check FILE writes nothing, so {', '.join(given)} would be ignored: drop {'it' if len(given) == 1 else 'them'}")


def _read_metadata(path: Path) -> dict[str, str]:
    """forkpoint's metadata of an exported file, by its content: a zip is TorchScript, anything else ONNX."""
    import zipfile

    if zipfile.is_zipfile(path):
        from forkpoint.serving.export_torchscript import read_torchscript_metadata

        return read_torchscript_metadata(path)
    from forkpoint.serving.onnx_export import read_onnx_metadata

    return read_onnx_metadata(path)


def check(state: State, path: Path, as_json: bool) -> None:
    """``export --check FILE``: exit 0 when FILE holds every live version, else 1 naming each task that is not."""
    from forkpoint.serving.export_graph import StaleExportError, check_versions

    meta = _read_metadata(path)  # before the registry is opened: a file that is no export costs nothing
    with state.open() as home:
        live = {r.task: r.version for r in home.registry.live_records(home.fingerprint)}
        result = check_versions(path, meta, live, home.fingerprint, _registered_at(home))
    if as_json:
        emit_json(result.to_dict())
    for note in result.notes:
        state.note(f"note: {note}")
    if not result.up_to_date:
        again = "".join(f"--task {t} " for t in result.recorded) if result.selection == "named" else ""
        again += "--format torchscript " if meta.get("forkpoint.format") == "torchscript" else ""
        raise StaleExportError(f"{path} is out of date: {'; '.join(result.problems)}: re-export it "
                               f"(forkpoint export {again}--out {path})")
    if not as_json:
        versions = ", ".join(f"{t} v{v}" for t, v in result.recorded.items())
        state.console.print(f"{path} is up to date: {versions} (the registry's live versions)", highlight=False, soft_wrap=True)


COMMANDS: list[click.Command] = [export]
