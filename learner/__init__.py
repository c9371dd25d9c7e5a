"""SubTuning learner: profile a frozen backbone, select a branch, train it, serve all tasks in one pass.

Names are imported lazily so that importing the package does not pull torch and timm
into light commands. Errors, names and branch ranges live in :mod:`forkpoint.contract`.
"""

from importlib import import_module

_EXPORTS = {
    "Backbone": "forkpoint.learner.backbone", "load_backbone": "forkpoint.learner.backbone",
    "Branch": "forkpoint.learner.branch", "BranchSpec": "forkpoint.contract.branch",
    "LabeledImages": "forkpoint.learner.data", "TaskData": "forkpoint.learner.data",
    "MultiTaskModel": "forkpoint.learner.multitask",
    "SelectionConfig": "forkpoint.learner.select",
    "AddTaskConfig": "forkpoint.learner.config", "add_task_config": "forkpoint.learner.config", "TaskReport": "forkpoint.learner.task", "add_task": "forkpoint.learner.task",
    "TrainConfig": "forkpoint.learner.train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'learner' has no attribute {name!r}")
