"""The live multi-task model as a TorchScript module (``forkpoint export --format torchscript``).

``torch.jit.trace`` of the same :class:`~forkpoint.serving.export_graph.TaskGraph` the ONNX
export uses: ``module(images) -> tuple of logits`` in the metadata's task order. The metadata
travels as the extra file ``forkpoint.json`` (the same keys as the ONNX ``metadata_props``):

    extra = {"forkpoint.json": ""}
    module = torch.jit.load("model.pt", _extra_files=extra)
    meta = json.loads(extra["forkpoint.json"])

A ``.pt`` runs code when loaded: load only files you made or trust (forkpoint itself never
loads one outside this export's own check).
"""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import torch

from forkpoint.contract.errors import ConfigError
from forkpoint.serving.export_graph import ExportPlan, ExportResult, Provenance, check_logits, write_checked
from forkpoint.serving.export_target import check_target
from forkpoint.workflows.live import LiveModel

EXTRA_FILE = "forkpoint.json"


def export_torchscript(live: LiveModel, out: str | Path, provenance: Provenance | None = None) -> ExportResult:
    """Trace ``live`` to ``out``; checked like the ONNX export (re-loaded from its bytes, batches 1 and 3)."""
    target = check_target(Path(out))
    plan = ExportPlan.of(live, provenance)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # TracerWarnings about the batch size read from x.shape (kept dynamic: checked below) and
        # torch.jit's deprecation notices (the format is what was asked for)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(plan.graph, (plan.example(),), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={EXTRA_FILE: json.dumps(plan.metadata("torchscript", "torch.jit.trace"))})
        data = buf.getvalue()
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
    diff = check_logits(plan, loaded, "TorchScript module")
    return write_checked(plan, target, data, "torchscript", "torch.jit.trace", diff, started, [])


def read_torchscript_metadata(path: Path) -> dict[str, str]:
    """The ``forkpoint.json`` extra file of a TorchScript archive, read from the zip: the module is never loaded
    (loading a ``.pt`` runs its code). ``{}`` when it has none; ConfigError for a zip that is no TorchScript file."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(n.endswith("/data.pkl") or n.endswith("/constants.pkl") for n in names):
                raise ConfigError(f"{path} is a zip archive but not a TorchScript file: pass a file `forkpoint export` wrote")
            extra = [n for n in names if n.endswith(f"/extra/{EXTRA_FILE}")]
            if not extra:
                return {}
            meta = json.loads(archive.read(extra[0]))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ConfigError(f"{path}: cannot read it as a TorchScript file ({type(exc).__name__}): pass a file `forkpoint export` wrote") from None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}
