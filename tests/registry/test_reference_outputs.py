"""``audit --deep``: every version's outputs recomputed against the ones stored when it was added.

One real home (embedded Lite0 at 32 px, real digits, one quick task); each planted fault
is a change that weight hashes and seals cannot see: a trunk weight changed in memory
after loading (trunk code), another resize rule (preprocessing), a timm block whose
forward changed (a library upgrade). Each must turn the verdict to "different" (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from click.testing import CliRunner
from PIL import Image

from forkpoint.cli import main
from forkpoint.registry import TamperedError
from forkpoint.workflows import deep_audit
from forkpoint.workflows.deep_audit import DIFFERENT, IDENTICAL, WITHIN, deep_check
from forkpoint.workflows.home import open_home

from .test_registry_tamper import behind_the_registry

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]


def _cli(home: Path, data: Path, *args: str):
    env = {"FORKPOINT_DATA": str(data), "FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def home_dir(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("deep")
    home, data = root / "home", root / "data"
    for args in (("init", "--resolution", "32"), ("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK)):
        r = _cli(home, data, *args)
        assert r.exit_code == 0, r.output
    return home, data


def _verdicts(home: Path) -> list:
    with open_home(home) as h:
        return deep_check(h)


def test_a_fresh_version_stores_its_reference_and_is_bit_identical(home_dir):
    home, data = home_dir
    with open_home(home) as h:
        stored, probes = h.registry.reference("digits", 1)
        assert set(probes) == {"heldout", "synthetic"} and 0 < len(probes["heldout"]) <= 64
        assert probes["synthetic"].shape[1:3] != (32, 32)  # the resize rule runs on it
        assert {"python", "torch", "timm", "numpy", "torch_threads"} <= set(stored.lib_versions)
        assert stored.outputs["heldout"]["shape"] == [len(probes["heldout"]), 10]
    r = _cli(home, data, "audit", "--deep", "--no-data", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [(c["version"], c["verdict"]) for c in out["reference_outputs"]] == [("digits@1", IDENTICAL)]


def test_a_changed_trunk_weight_is_different(home_dir):
    home, _ = home_dir
    with open_home(home) as h:
        with torch.no_grad():
            w = dict(h.backbone.named_parameters())["model.blocks.3.0.conv_pw.weight"]
            w.mul_(1.01)  # what a changed weight-loading rule would do, after the fingerprinted load
        (check,) = deep_check(h)
    assert check.verdict == DIFFERENT and not check.ok and "digits@1: different" in check.line()


def test_a_changed_resize_rule_is_different(home_dir, monkeypatch):
    from forkpoint.imagedata import convert

    def bilinear(img: Image.Image, size: int) -> Image.Image:
        w, h = img.size
        if (w, h) == (size, size):
            return img
        return img.resize((size, size), Image.Resampling.BILINEAR)  # squash instead of shorter-side + crop

    monkeypatch.setattr(convert, "fit_image", bilinear)
    (check,) = _verdicts(home_dir[0])
    assert check.verdict == DIFFERENT and "probe synthetic" in check.detail


def _shifted_timm_blocks(monkeypatch, eps: float) -> None:
    from timm.models import _efficientnet_blocks as blocks

    for cls in (blocks.InvertedResidual, blocks.DepthwiseSeparableConv):
        original = cls.forward
        monkeypatch.setattr(cls, "forward", lambda self, x, _f=original: _f(self, x) + eps)


def test_a_monkeypatched_timm_block_is_different_and_the_cli_exits_1(home_dir, monkeypatch):
    _shifted_timm_blocks(monkeypatch, 1e-3)
    (check,) = _verdicts(home_dir[0])
    assert check.verdict == DIFFERENT
    r = _cli(*home_dir, "audit", "--deep", "--no-data")
    assert r.exit_code == 1 and "digits@1: different from its stored reference outputs" in r.stderr


def test_within_tolerance_is_accepted_only_when_a_library_changed(home_dir, monkeypatch):
    linear = torch.nn.Linear.forward
    monkeypatch.setattr(torch.nn.Linear, "forward", lambda self, x: linear(self, x) + 2e-6)  # what a new kernel might do
    (check,) = _verdicts(home_dir[0])
    assert check.verdict == DIFFERENT and 1e-6 < check.max_abs_diff <= 1e-5  # nothing recorded changed, so the code did
    real = deep_audit.environment
    monkeypatch.setattr(deep_audit, "environment", lambda: {**real(), "torch": "9.9.9"})
    (check,) = _verdicts(home_dir[0])
    assert check.verdict == WITHIN and check.ok and "torch" in check.changed and "torch" in check.line()


def test_the_reference_row_is_sealed_and_its_probe_file_guarded(home_dir, tmp_path):
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(home_dir[0], home)
    with open_home(home) as h:
        stored, _ = h.registry.reference("digits", 1)
        assert h.registry.gc(0) == []  # the probe file is referenced
        assert h.registry.verify().ok
        with behind_the_registry(h.registry) as s:
            s.exec(sa.text("UPDATE reference_output SET outputs = '{}'"))  # type: ignore[call-overload]
        assert any("reference outputs row does not match its seal" in p for p in h.registry.verify().problems)
        with pytest.raises(TamperedError, match="reference outputs"):
            h.registry.reference("digits", 1)
        h.registry.store.path(stored.probe_sha256).unlink()
        problems = h.registry.verify().problems
        assert any("missing; used by reference probes of digits@1" in p for p in problems)
