"""Benchmark-suite fixtures: one smoke run of the real suite, shared by the checks on its outputs."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

torch.set_num_threads(1)

SECTIONS = ("cost", "accuracy", "throughput", "storage", "forgetting")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """`bench --smoke` end to end (real Lite0 weights, real digits + MNIST, every section) on a tiny slice."""
    from forkpoint.benchmarks.commands import bench_command

    out = tmp_path_factory.mktemp("bench-smoke")
    result = CliRunner().invoke(bench_command, ["--smoke", "--device", "cpu", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "results.json").read_text()), result.output
