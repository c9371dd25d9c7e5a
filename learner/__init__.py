"""SubTuning learner: profile a frozen backbone, select a branch, train it, serve all tasks in one pass.

Names are imported lazily so that ``learner.errors`` (used by every layer) does not pull
torch and timm into light commands.
"""

from importlib import import_module

_EXPORTS = {
    "Backbone": "learner.backbone", "load_backbone": "learner.backbone",
    "Branch": "learner.branch", "BranchSpec": "learner.branch",
    "LabeledImages": "learner.data", "TaskData": "learner.data",
    "MultiTaskModel": "learner.multitask",
    "SelectionConfig": "learner.select",
    "AddTaskConfig": "learner.task", "TaskReport": "learner.task", "add_task": "learner.task",
    "TrainConfig": "learner.train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'learner' has no attribute {name!r}")
