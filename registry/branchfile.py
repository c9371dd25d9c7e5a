"""A branch weights file names what it is: task, version, branch spec and class names.

The names travel in the safetensors header (one metadata key, ``forkpoint``: safetensors
writes several keys in hash order, and the bytes must be reproducible), so a row pointed
at another valid file (its own older version, another task's same-shape weights) is
refused on load even if whoever edited the row also re-sealed it. Reading the names
parses the header only: torch-free. Files written before this existed carry no names and
are accepted as they are (their rows are still sealed).
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from forkpoint.registry.codec import encode

if TYPE_CHECKING:
    import torch

KEY = "forkpoint"


def names(task: str, version: int, branch: Mapping[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    return {"task": task, "version": int(version), "branch": dict(branch), "class_names": list(class_names)}


def encode_branch(tensors: Mapping[str, torch.Tensor], task: str, version: int, branch: Mapping[str, Any],
                  class_names: Sequence[str]) -> bytes:
    """The file's bytes: the tensors plus their names, one canonical JSON metadata value."""
    meta = json.dumps(names(task, version, branch, class_names), sort_keys=True, separators=(",", ":"))
    return encode(tensors, metadata={KEY: meta})


def read_names(data: bytes) -> dict[str, Any] | None:
    """The names a file carries, or None for a file without them (or not safetensors at all)."""
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + size])
        raw = (header.get("__metadata__") or {}).get(KEY)
        return json.loads(raw) if raw else None
    except (struct.error, ValueError, AttributeError, TypeError):
        return None


def mismatch(data: bytes, task: str, version: int, branch: Mapping[str, Any], class_names: Sequence[str]) -> str | None:
    """None when the file's names agree with the row (or it has none), else what differs."""
    found = read_names(data)
    if found is None:
        return None
    want = names(task, version, branch, class_names)
    diff = sorted(k for k in want if found.get(k) != want[k])
    if not diff:
        return None
    return f"its weights file was written for {found.get('task')}@{found.get('version')} and differs in {', '.join(diff)}"
