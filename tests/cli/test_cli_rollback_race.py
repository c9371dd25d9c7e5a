"""A rollback that lands while add-task trains is not undone when the add commits (compare-and-set).

Everything is real: the home, the registry, the data and the learner's training. The
rollback is made by another registry handle at the moment the learner reports its
training phase (through the progress interface the CLI's bars use), i.e. mid-add.
"""

from __future__ import annotations

from forkpoint.learner import add_task_config
from forkpoint.contract.branch import UnitRange
from forkpoint.registry import Registry
from forkpoint.workflows.datasets import load_task_data
from forkpoint.workflows.home import open_home
from forkpoint.workflows.progress import PhaseProgress
from forkpoint.workflows.render import added_dict


class RollbackWhenTrainingStarts(PhaseProgress):
    """A progress display that, like a second operator, rolls the task back once training has begun."""

    def __init__(self, registry: Registry, task: str, to: int) -> None:
        super().__init__()
        self.registry, self.task, self.to, self.fired = registry, task, to, False

    def add_task(self, description: str, total=None, **kwargs):
        if description.startswith(f"{self.task}: train") and not self.fired:
            self.registry.rollback(self.task, to=self.to, actor="second-operator")
            self.fired = True
        return super().add_task(description, total, **kwargs)


def test_a_rollback_during_a_real_add_task_stands_and_the_new_version_is_staged(own_trained):
    own_trained.ok("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15",
                   "--limit-per-class", "5", "--epochs", "1", "--seed", "1")  # v2, live
    with open_home(own_trained.home) as home:
        assert home.registry.get_task("digits").live_version == 2
        other = Registry.open(own_trained.home)  # a second handle, as another process would hold
        data = load_task_data("digits", own_trained.data_root, limit=5, seed=2, resolution=32)
        cfg = add_task_config(epochs=1, min_steps=5, branch=UnitRange(15, 16), device="cpu", seed=2)
        progress = RollbackWhenTrainingStarts(other, "digits", to=1)
        from forkpoint.workflows.tasks import add_task_version

        added = add_task_version(home, "digits", data, cfg, progress=progress)
        assert progress.fired
        assert (added.version.version, added.version.live) == (3, False)
        assert home.registry.get_task("digits").live_version == 1  # the rollback stands
        note = next((n for n in added.notes if "while v3 trained" in n), "")
        assert "v2 to v1 while v3 trained" in note and "forkpoint promote digits 3" in note
        assert added_dict(added)["notes"] == list(added.notes)
    shown = own_trained.json("show", "digits", "--version", "3")
    assert shown["status"] == "staged"
    assert own_trained.json("audit", "--no-data")["ok"] is True
