"""The stream harness reports class-incremental accuracy beside the task-incremental matrix."""

from __future__ import annotations

import json

from forkpoint.contract.branch import UnitRange
from forkpoint.scenarios.runner import RunConfig, run_stream
from forkpoint.scenarios.streams import StreamOptions, load_stream


def test_stream_run_reports_every_stage_without_a_task_name(tmp_path, lite0_32, data_root):
    stream = load_stream(["domains"], StreamOptions(per_class=6, test_per_class=5, num_tasks=2, data_root=data_root))
    config = RunConfig(strategies=("subtuning",), resolution=32, epochs=1, profile_epochs=1,
                       candidates=UnitRange(15, 16), max_blocks=1, device="cpu")
    outcome = run_stream(stream, config, tmp_path / "run", backbone=lite0_32)
    ci = outcome.results[0].class_incremental
    names = [t.name for t in stream.tasks]
    assert [s["tasks"] for s in ci["stages"]] == [names[:1], names]
    assert [s["images"] for s in ci["stages"]] == [50, 100]
    # task given: the same images and branches as Avalanche's accuracy matrix, so the same accuracy
    matrix = outcome.results[0].acc_matrix
    assert ci["stages"][0]["accuracy"]["task_incremental"] == matrix[0][0]
    assert abs(ci["stages"][1]["accuracy"]["task_incremental"] - (matrix[1][0] + matrix[1][1]) / 2) < 1e-9
    report = json.loads((outcome.folder / "report.json").read_text())
    assert report["results"][0]["class_incremental"]["summary"]["agnostic"]["last"] == ci["stages"][1]["accuracy"]["agnostic"]
    assert "Without a task name" in (outcome.folder / "report.md").read_text()
