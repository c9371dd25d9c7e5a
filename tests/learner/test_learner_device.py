"""The device layer (issue 17): what can be checked without a GPU.

Device names are validated, a GPU that torch cannot use is reported, activation caches
stay fp32 whatever autocast context they run in, a cache that cannot fit refuses before
computing anything, budgets follow the device, and timing synchronises.
"""

from __future__ import annotations

import logging

import pytest
import torch

from forkpoint.contract.errors import ConfigError
from forkpoint.learner import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.data import to_input
from forkpoint.learner.device import CPU_CACHE_BUDGET_MB, Stopwatch, cache_budget_bytes, describe, resolve_device
from forkpoint.learner.train import logits_of

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a machine without CUDA")


@pytest.fixture(scope="module")
def inputs(lite0_32, digits_012):
    bb = lite0_32
    return to_input(digits_012.train.images[:24], bb.resolution, bb.mean, bb.std)


def test_cpu_and_auto_resolve_to_the_cpu_without_a_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto", nvidia=lambda: False) == torch.device("cpu")


@no_cuda
def test_auto_warns_when_a_gpu_is_present_but_unusable(caplog):
    with caplog.at_level(logging.WARNING, logger="forkpoint.device"):
        assert resolve_device("auto", nvidia=lambda: True) == torch.device("cpu")
    assert any("NVIDIA device is present" in r.getMessage() and "--device cpu" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="forkpoint.device"):
        resolve_device("auto", nvidia=lambda: False)
    assert not caplog.records  # no GPU at all: nothing to warn about


@pytest.mark.parametrize("name, words", [
    ("cuda:x", "cuda:N"), ("cuda:-1", "cuda:N"), ("tpu", "unknown device"), ("", "unknown device"),
])
def test_malformed_device_names_are_config_errors(name, words):
    with pytest.raises(ConfigError, match=words):
        resolve_device(name)


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_a_config_error(name):
    with pytest.raises(ConfigError, match="--device cpu"):
        resolve_device(name)


def test_describe_names_the_device():
    assert describe(torch.device("cpu")).startswith("cpu (")


def test_cache_budget_follows_the_device():
    cpu = torch.device("cpu")
    assert cache_budget_bytes(cpu) == CPU_CACHE_BUDGET_MB * 2**20
    assert cache_budget_bytes(cpu, 10) == 10 * 2**20
    gpu = torch.device("cuda", 0)  # never touched: the free-memory reader is given
    assert cache_budget_bytes(gpu, free_bytes=lambda d: 80 * 2**30) == 20 * 2**30
    assert cache_budget_bytes(gpu, 512, free_bytes=lambda d: 80 * 2**30) == 512 * 2**20


def test_cache_is_fp32_inside_an_autocast_context(lite0_32, inputs):
    """Before issue 17 a cache filled under bf16 autocast held bf16 activations that fp32 serving never sees."""
    bb = lite0_32
    plain = PrefixCache(bb, inputs, torch.device("cpu"))
    ref = plain.at(14).clone()
    under = PrefixCache(bb, inputs, torch.device("cpu"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = under.at(14)
        feats = under.trunk_features()  # crashed when a bf16 depth met fp32 weights
    assert got.dtype == torch.float32 and feats.dtype == torch.float32
    assert torch.equal(got, ref)
    with torch.no_grad():
        direct = bb.run_units(bb.stem(inputs), 0, 14)
    assert torch.equal(ref, direct)


def test_scoring_is_fp32_inside_an_autocast_context(lite0_32, inputs):
    bb = lite0_32
    branch = Branch.new(bb, 14, 16, num_classes=3)
    cache = PrefixCache(bb, inputs, torch.device("cpu"))
    ref = logits_of(bb, branch, cache)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = logits_of(bb, branch, cache)
    assert got.dtype == torch.float32 and torch.equal(got, ref)


def test_a_depth_that_cannot_fit_is_refused_before_any_work(lite0_32, inputs):
    tiny = PrefixCache(lite0_32, inputs, torch.device("cpu"), budget_mb=0.01)
    assert tiny.at(10) is None
    assert tiny.unit_passes == 0  # the old cache computed the whole depth, then threw it away


def test_chunked_depths_equal_one_pass_and_stay_within_budget(lite0_32, inputs):
    bb = lite0_32
    one = PrefixCache(bb, inputs, torch.device("cpu"), chunk=len(inputs)).at(12)
    pieces = PrefixCache(bb, inputs, torch.device("cpu"), chunk=5)
    # every row lands in its place (CPU kernels may round differently for another batch size)
    torch.testing.assert_close(pieces.at(12), one, rtol=1e-3, atol=1e-4)
    # a budget for about one depth: advancing keeps the newest depth only
    need = one.numel() * one.element_size()
    small = PrefixCache(bb, inputs, torch.device("cpu"), budget_mb=1.5 * need / 2**20, chunk=5)
    a = small.at(12)
    b = small.at(13)
    assert a is not None and b is not None
    assert small._bytes() <= small.budget
    assert list(small._depths) == [13]


def test_stopwatch_measures_on_the_cpu():
    with Stopwatch("cpu") as sw:
        torch.ones(64, 64) @ torch.ones(64, 64)
    assert sw.seconds > 0


def test_cli_rejects_a_malformed_device_with_exit_2(tmp_path):
    from click.testing import CliRunner

    from forkpoint.cli import main

    result = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), "evaluate", str(tmp_path), "--device", "cuda:x"])
    assert result.exit_code == 2, result.output
    assert "cuda:N" in result.output
