"""Glue between the learner, the registry and the data layer: what the CLI and the demo run.

Each module does one job: ``home`` opens a registry and rebuilds its frozen trunk,
``datasets`` turns ``--data`` into task data with its DVC version, ``tasks`` adds a task
version (train, then register in one transaction), ``live`` rebuilds the served
multi-task model, ``predict`` runs it on image files, ``audit`` verifies everything,
``recorded`` says what a version records for a rebuild, ``reproduce`` rebuilds one and
compares, ``report`` writes the audit report, and ``demo`` walks through three real
tasks end to end.

Exports are lazy: reading the registry (``forkpoint tasks``) must not pay for importing
timm, DVC and the data layer.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AddedTask": "forkpoint.workflows.tasks", "add_task_version": "forkpoint.workflows.tasks",
    "AuditResult": "forkpoint.workflows.audit", "audit_home": "forkpoint.workflows.audit",
    "LoadedData": "forkpoint.workflows.datasets", "load_task_data": "forkpoint.workflows.datasets",
    "DEFAULT_HOME": "forkpoint.workflows.home", "Home": "forkpoint.workflows.home", "init_home": "forkpoint.workflows.home",
    "open_home": "forkpoint.workflows.home", "resolve_home": "forkpoint.workflows.home",
    "LiveModel": "forkpoint.workflows.live", "load_live_model": "forkpoint.workflows.live",
    "ImagePrediction": "forkpoint.workflows.predict", "collect_images": "forkpoint.workflows.predict", "predict_images": "forkpoint.workflows.predict",
    "Reproduction": "forkpoint.workflows.reproduce", "reproduce_version": "forkpoint.workflows.reproduce",
    "evaluate": "forkpoint.workflows.evaluate", "labelled_files": "forkpoint.workflows.evaluate",
    "route_images": "forkpoint.workflows.routing", "write_samples": "forkpoint.workflows.samples",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workflows' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
