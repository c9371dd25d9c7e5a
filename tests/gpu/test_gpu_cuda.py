"""The CUDA path (issue 17): exact where forkpoint promises exactness, on the device that serves.

Skipped without CUDA; ``scripts/gpu-check.sh`` runs them on a GPU machine (``pytest -m gpu``).
"Bit for bit" on a GPU means: the stored weights' sha256 is always exact, and the served
model's logits are compared on the device they are served on, with deterministic kernels
(``learner.device.resolve_device`` switches them on) and the same batch shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from forkpoint.cli import main

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu-check.sh runs these)"),
]

ADD = ["-q", "add-task", "digits", "--data", "digits", "--device", "cuda", "--limit-per-class", "20",
       "--candidates", "13:16", "--profile-epochs", "1", "--epochs", "2", "--seed", "3"]


def _cli(home: Path, data_root: Path, *args: str) -> str:
    env = {"FORKPOINT_DATA": str(data_root), "FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
    result = CliRunner().invoke(main, ["--home", str(home), *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, f"forkpoint {' '.join(args)} failed ({result.exit_code}): {result.output}"
    return result.stdout


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def gpu_homes(tmp_path_factory, data_root) -> list[Path]:
    """Two homes where the same task was added on CUDA with the same seed and data."""
    homes = []
    for i in range(2):
        home = tmp_path_factory.mktemp(f"gpu{i}") / "home"
        _cli(home, data_root, "init", "--resolution", "64")
        _cli(home, data_root, *ADD)
        homes.append(home)
    _cli(homes[0], data_root, "-q", "add-task", "mnist", "--data", "mnist", "--device", "cuda", "--limit-per-class", "10",
         "--branch", "15:15", "--epochs", "1")
    return homes


def test_add_task_on_cuda_equals_its_own_rerun(gpu_homes, data_root):
    shown = [json.loads(_cli(h, data_root, "show", "digits", "--json")) for h in gpu_homes]
    assert shown[0]["branch"] == shown[1]["branch"]
    assert shown[0]["weights_sha256"] == shown[1]["weights_sha256"]  # the stored bytes, exactly


def _live_on(home: Path, device: str):
    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.live import load_live_model

    with open_home(home) as h:
        live = load_live_model(h)
    live.model.to(torch.device(device))
    return live


def _images(live, data_root: Path, n: int = 32) -> torch.Tensor:
    """Real test images, preprocessed as the trunk records it."""
    from forkpoint.imagedata import load_dataset
    from forkpoint.learner.data import to_input

    bb = live.model.backbone
    test = load_dataset("digits", data_root).test
    return to_input(test.images[:n], bb.resolution, bb.mean, bb.std)


def test_shared_pass_on_cuda_matches_per_task_passes(gpu_homes, data_root):
    live = _live_on(gpu_homes[0], "cuda")
    x = _images(live, data_root).cuda()
    with torch.no_grad():
        shared = live.model(x)
        for task in live.tasks:
            alone = live.model(x, tasks=[task])[task]
            again = live.model(x, tasks=[task])[task]
            assert torch.equal(alone, again)  # deterministic kernels: the same call gives the same bits
            assert torch.equal(shared[task].argmax(1), alone.argmax(1))
            assert (shared[task] - alone).abs().max().item() <= 1e-4


def test_cuda_trained_weights_serve_on_the_cpu(gpu_homes, data_root):
    gpu, cpu = _live_on(gpu_homes[0], "cuda"), _live_on(gpu_homes[0], "cpu")
    x = _images(cpu, data_root)
    with torch.no_grad():
        on_gpu = gpu.model(x.cuda())
        on_cpu = cpu.model(x)
    for task in cpu.tasks:
        assert torch.equal(on_gpu[task].argmax(1).cpu(), on_cpu[task].argmax(1))
        assert (on_gpu[task].cpu() - on_cpu[task]).abs().max().item() <= 1e-3


def test_the_no_forgetting_check_passes_on_cuda(tmp_path):
    from forkpoint.contract.branch import UnitRange
    from forkpoint.learner import load_backbone
    from forkpoint.scenarios.runner import RunConfig, run_stream
    from forkpoint.scenarios.streams import StreamOptions, load_stream

    stream = load_stream("domains", StreamOptions(per_class=20, test_per_class=20, num_tasks=2))
    config = RunConfig(strategies=("subtuning",), resolution=32, epochs=2, candidates=UnitRange(13, 16), max_blocks=2,
                       device="cuda")
    outcome = run_stream(stream, config, tmp_path, backbone=load_backbone(resolution=32))
    assert outcome.status == "done"
    result = outcome.results[0]
    assert result.forgetting == 0.0
    assert result.acc_matrix[0][0] == result.acc_matrix[1][0]
