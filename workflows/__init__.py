"""Glue between the learner, the registry and the data layer: what the CLI and the demo run.

Each module does one job: ``home`` opens a registry and rebuilds its frozen trunk,
``datasets`` turns ``--data`` into task data with its DVC version, ``tasks`` adds a task
version (train, then register in one transaction), ``live`` rebuilds the served
multi-task model, ``predict`` runs it on image files, ``audit`` verifies everything, and
``demo`` walks through three real tasks end to end.
"""

from workflows.audit import AuditResult, audit_home
from workflows.datasets import LoadedData, load_task_data
from workflows.home import DEFAULT_HOME, Home, init_home, open_home, resolve_home
from workflows.live import LiveModel, load_live_model
from workflows.predict import ImagePrediction, collect_images, predict_images
from workflows.tasks import AddedTask, add_task_version

__all__ = [
    "AddedTask", "AuditResult", "DEFAULT_HOME", "Home", "ImagePrediction", "LiveModel", "LoadedData",
    "add_task_version", "audit_home", "collect_images", "init_home", "load_live_model", "load_task_data",
    "open_home", "predict_images", "resolve_home",
]
