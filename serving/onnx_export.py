"""The live multi-task model as one ONNX graph (``forkpoint export --format onnx``).

Two exporters can build the graph, tried in this order by default (``auto``):

* ``torchscript``: ``torch.onnx.export(..., dynamo=False)``, the legacy tracer (deprecated
  upstream), about 1 s for Lite0. First because it is ~5x faster (issue 29) and its graph
  must pass the same checks as any other: where the outputs agree, the faster one is kept.
* ``dynamo``: ``torch.onnx.export(..., dynamo=True)``, torch.export-based, PyTorch's
  maintained exporter (the default since 2.9). Slow (15-20 s for Lite0 on one busy CPU core,
  mostly tracing and decompositions). Used when the TorchScript exporter fails (e.g. once
  it is removed upstream) or its graph fails a check; ``--onnx-exporter dynamo`` forces it.

Either way ``MultiTaskModel.forward``'s control flow depends only on the tasks' branch points,
which are fixed per export, so tracing is exact; the batch axis stays dynamic (both
exporters keep ``x.shape[0]`` symbolic, and :func:`check_logits` runs batches other than the
traced one to prove it). A graph is kept only if ``onnx.checker`` accepts it, its inputs and
outputs have the promised names, and onnxruntime reproduces forkpoint's logits within
``TOLERANCE``; then it is written atomically, as one self-contained file (no external data:
fine below ONNX's 2 GB protobuf limit, which any supported trunk is far under).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from forkpoint.contract.errors import ConfigError
from forkpoint.serving.export_graph import (
    EXAMPLE_BATCH,
    INPUT_NAME,
    ExportError,
    ExportPlan,
    ExportResult,
    Provenance,
    check_logits,
    write_checked,
)
from forkpoint.serving.export_target import check_target
from forkpoint.workflows.live import LiveModel

log = logging.getLogger("forkpoint.export")

OPSET = 18
EXPORTERS = ("dynamo", "torchscript")
ORDER = {"auto": ("torchscript", "dynamo"), "dynamo": ("dynamo",), "torchscript": ("torchscript",)}


@contextlib.contextmanager
def _quiet():
    """The exporters print progress to stdout and warn freely; stdout must stay ours (``--json``)."""
    captured = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
        warnings.simplefilter("ignore")
        yield
    if captured.getvalue().strip():
        log.debug("exporter output:\n%s", captured.getvalue().rstrip())


def _dynamo(plan: ExportPlan):
    batch = torch.export.Dim("batch", min=1)
    with _quiet():
        program = torch.onnx.export(
            plan.graph, (plan.example(EXAMPLE_BATCH),), None, dynamo=True, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=list(plan.outputs.values()),
            dynamic_shapes={INPUT_NAME: {0: batch}}, optimize=True, verbose=False,
        )
    return program.model_proto


def _torchscript(plan: ExportPlan):
    import onnx

    buf = io.BytesIO()
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *plan.outputs.values())}
    with _quiet():
        torch.onnx.export(
            plan.graph, (plan.example(EXAMPLE_BATCH),), buf, dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=list(plan.outputs.values()), dynamic_axes=axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


BUILDERS: dict[str, Callable] = {"dynamo": _dynamo, "torchscript": _torchscript}


def _stamp(proto, plan: ExportPlan, exporter: str) -> bytes:
    """Names, docs and forkpoint's metadata on the graph, serialised (what gets checked is what gets written)."""
    import onnx
    from forkpoint import __version__

    proto.producer_name, proto.producer_version = "forkpoint", __version__
    proto.graph.name = "forkpoint_" + "_".join(plan.outputs.values())[:200]
    proto.doc_string = f"forkpoint multi-task model: {len(plan.tasks)} task(s) on one shared trunk; see metadata forkpoint.*"
    records = {r["output"]: r for r in plan.task_records()}
    for value in proto.graph.output:
        r = records.get(value.name)
        if r is not None:
            value.doc_string = f"task {r['task']} v{r['version']}: logits over {len(r['class_names'])} classes"
    keep = [p for p in proto.metadata_props if not p.key.startswith("forkpoint.")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in keep}, **plan.metadata("onnx", exporter)})
    try:
        return proto.SerializeToString()
    except ValueError as exc:  # protobuf's 2 GB limit
        raise ExportError(f"the ONNX graph is too large for one file ({exc}): export fewer tasks (--task) or use --format torchscript") from exc


def _checked(plan: ExportPlan, data: bytes, exporter: str) -> float:
    """onnx.checker, the promised signature, then onnxruntime against forkpoint's logits."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the {exporter} exporter's graph fails onnx.checker ({str(exc)[:300]}): nothing was written") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.log_severity_level = 3
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs != list(plan.outputs.values()):
        raise ExportError(f"the {exporter} exporter's graph has inputs {inputs} and outputs {outputs}, "
                          f"not [{INPUT_NAME}] and {list(plan.outputs.values())}: nothing was written; report it")
    names = list(plan.outputs.values())
    return check_logits(plan, lambda x: session.run(names, {INPUT_NAME: x.numpy()}), f"ONNX graph ({exporter} exporter)")


def export_onnx(live: LiveModel, out: str | Path, exporter: str = "auto", provenance: Provenance | None = None) -> ExportResult:
    """Export ``live`` (every task it holds, in its order) to ``out`` as one checked ONNX file.

    ``exporter``: ``auto`` (the TorchScript exporter, then dynamo if it fails or its graph
    fails a check), ``dynamo`` or ``torchscript``. Raises ConfigError (exit 2) for a bad target
    or no tasks, ExportError (exit 1) when no exporter produced a graph that passed; in both
    cases nothing is written and an existing ``out`` is left as it was. ``provenance`` goes into
    the metadata (``export --check`` reads it).
    """
    if exporter not in ORDER:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}: use one of {', '.join(ORDER)}")
    target = check_target(Path(out))
    plan = ExportPlan.of(live, provenance)
    started = time.perf_counter()
    failures: list[str] = []
    for name in ORDER[exporter]:
        try:
            data = _stamp(BUILDERS[name](plan), plan, name)
            diff = _checked(plan, data, name)
        except Exception as exc:  # noqa: BLE001 - an exporter's failure is reported, the next one tried
            log.info("ONNX export with the %s exporter failed: %s", name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            if len(ORDER[exporter]) == 1:
                if isinstance(exc, ExportError):
                    raise
                raise ExportError(f"the {name} ONNX exporter failed ({_reason(exc)}): nothing was written; "
                                  "try --onnx-exporter auto or --format torchscript, and re-run with -v to report the traceback") from exc
            failures.append(f"{name} exporter: {_reason(exc)}")
            continue
        notes = [f"{f}; used the {name} exporter instead" for f in failures]
        return write_checked(plan, target, data, "onnx", name, diff, started, notes)
    raise ExportError("no ONNX exporter produced a graph that passed its checks (" + "; ".join(failures) + "): "
                      "nothing was written; try --format torchscript, and re-run with -v to report the traceback")


def _reason(exc: Exception) -> str:
    """One line: our own message up to its advice, or the exception's type and first line."""
    if isinstance(exc, ExportError):
        return str(exc).split(": nothing was written")[0]
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` (weights not loaded); ConfigError for a file that is not an ONNX model."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise ConfigError(f"{path} is neither an ONNX model nor a TorchScript file ({type(exc).__name__}): "
                          "pass a file `forkpoint export` wrote") from None
    if not proto.graph.node and not proto.metadata_props:  # protobuf reads many byte strings as an empty model
        raise ConfigError(f"{path} is neither an ONNX model nor a TorchScript file: pass a file `forkpoint export` wrote")
    return {p.key: p.value for p in proto.metadata_props}
