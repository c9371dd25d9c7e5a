"""SubTuning learner: profile a frozen backbone, select a branch, train it, serve all tasks in one pass."""

from learner.backbone import Backbone, load_backbone
from learner.branch import Branch, BranchSpec
from learner.data import LabeledImages, TaskData
from learner.multitask import MultiTaskModel
from learner.select import SelectionConfig
from learner.task import AddTaskConfig, TaskReport, add_task
from learner.train import TrainConfig

__all__ = [
    "AddTaskConfig", "Backbone", "Branch", "BranchSpec", "LabeledImages", "MultiTaskModel",
    "SelectionConfig", "TaskData", "TaskReport", "TrainConfig", "add_task", "load_backbone",
]
