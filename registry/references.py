"""Reference outputs: what a version answered on a fixed probe set when it was added (0006).

``forkpoint audit --deep`` (workflows/deep_audit.py) recomputes them with today's code
and libraries; this module only stores and hands them back, under the registry's rules:
the probe images are a content-addressed store object claimed before the version's
transaction (so the row never points at a missing or corrupt file), the row is inserted
in that transaction, sealed (registry/digest.py), insert-only, and its seal is recorded in
the version's add event. Torch-free (numpy and safetensors' numpy API only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from sqlmodel import Session, select

from forkpoint.registry import digest, validate
from forkpoint.registry.errors import InvalidInputError, TamperedError
from forkpoint.registry.models import AuditEvent, ReferenceOutput, Task, TaskVersion
from forkpoint.registry.records import utc

if TYPE_CHECKING:
    import numpy as np

MAX_PROBE_IMAGES = 256  # per probe: a reference is a check, not a dataset


@dataclass(frozen=True)
class ReferenceDraft:
    """What the caller computed at add time: the probe images (uint8, before preprocessing),
    per probe ``{"shape": [n, k], "sha256": <of the float32 logits' bytes>, "values": [[...]]}``,
    and the library versions (and threads, device) that computed them."""

    probes: Mapping[str, "np.ndarray"]
    outputs: Mapping[str, Mapping[str, Any]]
    lib_versions: Mapping[str, Any]


@dataclass(frozen=True)
class ReferenceRecord:
    task: str
    version: int
    probe_sha256: str
    outputs: dict[str, Any]
    lib_versions: dict[str, Any]
    created_at: datetime


def encode_probes(probes: Mapping[str, "np.ndarray"]) -> bytes:
    """The probe images as safetensors bytes (one metadata key: the same images, the same bytes)."""
    import numpy as np
    from safetensors.numpy import save

    if not probes:
        raise InvalidInputError("a reference needs at least one probe batch: pass {name: uint8 images}")
    plain = {}
    for name, images in probes.items():
        arr = np.ascontiguousarray(images)
        if not isinstance(name, str) or arr.dtype != np.uint8 or arr.ndim not in (3, 4) or not 0 < len(arr) <= MAX_PROBE_IMAGES:
            raise InvalidInputError(f"probe {name!r} is not 1..{MAX_PROBE_IMAGES} uint8 images (N,H,W[,C]): pass raw pixels")
        plain[name] = arr
    return save(plain, metadata={"format": "np"})


def decode_probes(data: bytes) -> dict[str, "np.ndarray"]:
    from safetensors.numpy import load

    return load(data)


def check_outputs(draft: ReferenceDraft) -> tuple[dict[str, Any], dict[str, Any]]:
    """The draft's outputs and library versions as strict JSON, each probe's outputs matching its images."""
    outputs = validate.jsonable("reference outputs", {k: dict(v) for k, v in draft.outputs.items()})
    libs = validate.jsonable("reference lib_versions", dict(draft.lib_versions))
    if set(outputs) != set(draft.probes):
        raise InvalidInputError(f"reference outputs name probes {sorted(outputs)}, the images {sorted(draft.probes)}: give one of each")
    for name, out in outputs.items():
        shape = out.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and shape[0] == len(draft.probes[name])
                and isinstance(out.get("sha256"), str) and isinstance(out.get("values"), list) and len(out["values"]) == shape[0]):
            raise InvalidInputError(f"reference outputs of probe {name!r} are not {{shape: [n, k], sha256, values}} for its "
                                    f"{len(draft.probes[name])} images: pass what the model computed")
    return outputs, libs


def payload(task: str, version: int, probe_sha256: str, outputs: Mapping[str, Any], libs: Mapping[str, Any]) -> dict[str, Any]:
    """What a reference row's seal covers: all of it but its id and time."""
    return {"task": task, "version": int(version), "probe_sha256": probe_sha256, "outputs": dict(outputs),
            "lib_versions": dict(libs)}


def new_row(row: TaskVersion, task: str, probe_sha256: str, size: int, outputs: dict, libs: dict,
            now: datetime) -> ReferenceOutput:
    return ReferenceOutput(task_version_id=row.id, probe_sha256=probe_sha256, probe_bytes=size, outputs=outputs,
                           lib_versions=libs, created_at=now,
                           row_digest=digest.seal(payload(task, row.version, probe_sha256, outputs, libs)))


def problem(ref: ReferenceOutput, task: str, version: int, add: AuditEvent | None, first_keyed_id: int | None) -> str | None:
    """Why this reference row cannot be trusted, or None (its seal, and the seal its add event recorded)."""
    name = f"{task}@{version}"
    if reason := digest.check(ref.row_digest, payload(task, version, ref.probe_sha256, ref.outputs, ref.lib_versions)):
        return f"{name}: reference outputs row {reason}"
    if add is not None and add.details.get("reference_digest") != ref.row_digest:
        return f"{name}: reference outputs differ from the ones its add_version event recorded"
    if not digest.is_keyed(ref.row_digest) and first_keyed_id is not None and add is not None and add.id >= first_keyed_id:  # type: ignore[operator]
        return f"{name}: reference outputs are not sealed with the audit key although the registry is keyed (a downgrade)"
    return None


def all_rows(s: Session) -> list[tuple[ReferenceOutput, str, int]]:
    """Every reference row with its task name and version number."""
    q = (select(ReferenceOutput, Task.name, TaskVersion.version)
         .join(TaskVersion, TaskVersion.id == ReferenceOutput.task_version_id)  # type: ignore[arg-type]
         .join(Task, Task.id == TaskVersion.task_id))  # type: ignore[arg-type]
    return [(r, n, v) for r, n, v in s.exec(q).all()]


def load(s: Session, store, task: str, version: int, row: TaskVersion, first_keyed_id: int | None
         ) -> tuple[ReferenceRecord, dict[str, "np.ndarray"]] | None:
    """The version's reference and its probe images (sha256-checked), None if it has none; TamperedError if untrustworthy."""
    ref = s.exec(select(ReferenceOutput).where(ReferenceOutput.task_version_id == row.id)).first()
    add = s.exec(select(AuditEvent).where(AuditEvent.action == "add_version", AuditEvent.task == task,
                                          AuditEvent.version == version)).first()
    if ref is None:
        if add is not None and add.details.get("reference_digest"):
            raise TamperedError(f"{task}@{version}: its add_version event records reference outputs, but the row is gone: "
                                "restore the registry database from a backup and run `forkpoint audit`")
        return None
    if reason := problem(ref, task, version, add, first_keyed_id):
        raise TamperedError(f"{reason}: restore the registry database from a backup and run `forkpoint audit`")
    images = decode_probes(store.get(ref.probe_sha256, used_by=f"reference probes of {task}@{version}"))
    return ReferenceRecord(task, version, ref.probe_sha256, dict(ref.outputs), dict(ref.lib_versions), utc(ref.created_at)), images
