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
@click.option("--out", type=click.Path(dir_okay=True, path_type=Path), required=True, metavar="PATH",
              help="File to write (replaced atomically, only after the checks pass); its folder must exist.")
@click.option("--onnx-exporter", type=click.Choice(["auto", "dynamo", "torchscript"]), default="auto", show_default=True,
              help="Which torch.onnx exporter builds the graph; auto: dynamo, then the TorchScript one if dynamo fails.")
@json_option
@pass_state
def export(state: State, fmt: str, task_names: tuple[str, ...], out: Path, onnx_exporter: str, as_json: bool) -> None:
    """Export the live tasks (or --task ones) as one model: input `images`, one `logits_<task>` output per task.

    The file carries the class names, registry versions, branches and preprocessing as metadata
    (docs/export.md). Before writing, the exported model is run (onnxruntime for ONNX) and must
    match forkpoint's logits within 1e-4; otherwise nothing is written and the exit code is 1.
    """
    from forkpoint.serving.export_target import check_target
    from forkpoint.workflows.live import load_live_model

    target = check_target(out)  # before any heavy work: a typo in --out costs nothing
    state.compute()
    with state.open() as home:
        live = load_live_model(home, tasks=list(task_names) or None)
        if fmt == "onnx":
            from forkpoint.serving.onnx_export import export_onnx

            how = "the TorchScript-based exporter" if onnx_exporter == "torchscript" else "the dynamo exporter (~20 s a core)"
            state.note(f"exporting {len(live.tasks)} task(s) to ONNX with {how}...")
            result = export_onnx(live, target, exporter=onnx_exporter)
        else:
            from forkpoint.serving.export_torchscript import export_torchscript

            result = export_torchscript(live, target)
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


COMMANDS: list[click.Command] = [export]
