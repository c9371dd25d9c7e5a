"""``stream run --workers 2``: every strategy as its own Ray task, the report identical to the serial run's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from forkpoint.scenarios.runner import RunConfig, run_stream

pytestmark = pytest.mark.ray

TIMES = ("train_seconds", "infer_ms_per_image", "search_seconds")  # wall clocks: the only fields allowed to differ


def test_strategies_side_by_side_report_what_the_serial_run_reports(ray_cluster, lite0_32, tmp_path):
    from forkpoint.scenarios.streams import StreamOptions, load_stream

    stream = load_stream("domains", StreamOptions(per_class=10, test_per_class=10, num_tasks=2))
    cfg = RunConfig(strategies=("naive", "lwf"), resolution=32, epochs=1, lr=3e-3, device="cpu",
                    lwf_settings=((1.0, 2.0), (2.0, 1.0)))  # two settings: validation picks one on both paths
    serial = run_stream(stream, cfg, tmp_path / "serial", backbone=lite0_32)
    side = run_stream(stream, replace(cfg, workers=2), tmp_path / "ray", backbone=lite0_32)
    assert [r.strategy for r in side.results] == ["naive", "lwf"] and side.status == serial.status == "done"
    for a, b in zip(serial.results, side.results):
        da, db = a.to_dict(), b.to_dict()
        assert {k: v for k, v in db.items() if k not in TIMES} == {k: v for k, v in da.items() if k not in TIMES}, a.strategy
    assert all(len(r.acc_matrix) == 2 and r.acc_matrix[1][1] is not None for r in side.results)  # the whole stream ran
    assert (tmp_path / "ray" / "report.json").exists()
