"""Field-by-field comparison of two versions of a task."""

from __future__ import annotations

from typing import Any

from forkpoint.registry.records import VersionDiff, VersionRecord

# Grouped the way people ask: where does it fork (branch.start, branch.stop, …), how good,
# how trained, on what data.
SCALAR_FIELDS = (
    "description", "trainable_params", "total_params", "extra_cost_pct", "weights_sha256", "class_names",
    "data_md5", "data_path", "split_seed", "parent_version", "run_id", "actor",
)
NESTED_FIELDS = ("branch", "metrics", "config", "split_sizes", "lib_versions")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def diff_versions(a: VersionRecord, b: VersionRecord) -> VersionDiff:
    """Differing fields only; nested dicts (branch, metrics, config, …) compared key by key with dotted names."""
    changes: dict[str, tuple[Any, Any]] = {}
    for f in SCALAR_FIELDS:
        old, new = getattr(a, f), getattr(b, f)
        if old != new:
            changes[f] = (old, new)
    for f in NESTED_FIELDS:
        fa: dict[str, Any] = {}
        fb: dict[str, Any] = {}
        _flatten(f, getattr(a, f), fa)
        _flatten(f, getattr(b, f), fb)
        for k in sorted(fa.keys() | fb.keys()):
            old, new = fa.get(k), fb.get(k)
            if old != new:
                changes[k] = (old, new)
    return VersionDiff(task=a.task, v1=a.version, v2=b.version, changes=changes)
