"""The no-forgetting check fails loudly: a branch that moves after a later task makes the run exit 1."""

from __future__ import annotations

import json

import pytest
import torch

from forkpoint.contract.errors import ForgettingError
from forkpoint.contract.branch import UnitRange
from forkpoint.scenarios.runner import RunConfig, run_stream
from forkpoint.scenarios.streams import StreamOptions, load_stream
from forkpoint.scenarios.subtuning import TrainLocally

CONFIG = RunConfig(strategies=("subtuning",), resolution=32, epochs=1, candidates=UnitRange(14, 16), max_blocks=1, device="cpu")


class BuggyLearner(TrainLocally):
    """A task source with a bug: adding the second task writes into the first task's frozen head."""

    def obtain(self, model, label, task):
        added = super().obtain(model, label, task)
        if label == 1:
            first = model.branches[model.tasks[0]]
            with torch.no_grad():
                first.head.bias[0] += 100.0  # every image of task 0 now "is" class 0
        return added


def test_a_moved_branch_fails_the_run_with_exit_code_1(tmp_path, lite0_32):
    stream = load_stream("domains", StreamOptions(per_class=8, test_per_class=5, num_tasks=2))
    with pytest.raises(ForgettingError) as err:
        run_stream(stream, CONFIG, tmp_path, backbone=lite0_32, task_source=BuggyLearner(CONFIG.subtuning()))
    assert err.value.exit_code == 1
    assert "marked failed" in str(err.value)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed"
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"
    violations = report["results"][0]["checks"]["violations"]
    assert any("fingerprint of task:domains.mnist changed" in v for v in violations)
    assert any("experience 0" in v and "predictions changed" in v for v in violations)
    assert any("experience 0: accuracy" in v for v in violations)  # the accuracy matrix check agrees
    assert report["results"][0]["forgetting"] != 0.0
