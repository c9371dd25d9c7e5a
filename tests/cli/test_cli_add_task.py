"""add-task: what it registers, what it prints, and every way its input can be wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from forkpoint.imagedata import dvc_md5

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_add_task_json_reports_branch_accuracy_cost_and_fingerprints(trained):
    out = trained.added
    assert out["task"] == "mnist" and out["version"] == 1 and out["live"] is True
    report = out["report"]
    assert report["branch"]["start"] == 14 and report["branch"]["stop"] == 16  # --branch 14:15 is inclusive
    assert report["branch"]["block_names"] == ["blocks.5.3", "blocks.6.0"]
    assert 0.0 <= report["metrics"]["val_acc"] <= 1.0 and 0.0 <= report["metrics"]["test_acc"] <= 1.0
    assert 0.0 < report["extra_cost_pct"] < 100.0
    assert report["split_sizes"] == {"train": 50, "val": 30, "test": 50}  # 5 per class, validation 3 per class
    assert set(out["fingerprints"]) == {"trunk", "task:digits", "task:mnist"}


def test_the_version_records_data_version_config_and_profile(trained):
    v2 = trained.json("show", "digits")
    assert v2["version"] == 2 and v2["live"] is True and v2["parent_version"] == 1
    assert v2["description"] == "second try"
    assert v2["data_md5"] == dvc_md5(trained.data_root / "digits")  # the DVC version trained on
    assert Path(v2["data_path"]) == (trained.data_root / "digits").resolve()
    assert v2["config"]["data"]["limit_per_class"] == 5 and v2["split_seed"] == 1
    assert v2["config"]["selection"]["max_blocks"] == 1
    # profiled: candidates 14 and 15 alone; --no-probe: no probe fitted, the chosen one among them
    assert "probe" not in [c["stage"] for c in v2["profile"]]
    assert [c["start"] for c in v2["profile"] if c["stage"] == "profile"] == [14, 15]
    branch = v2["branch"]
    assert branch["stop"] == branch["start"] + 1 and branch["start"] in (14, 15)
    best = max((c for c in v2["profile"] if c["stage"] == "profile"), key=lambda c: (c["val_acc"], c["start"]))
    assert branch["start"] == best["start"]
    plot = Path(v2["config"]["profile_plot"])
    assert plot.is_file() and plot.read_bytes()[:8] == PNG_MAGIC
    assert plot.is_relative_to(trained.home)


def test_the_human_output_names_branch_accuracy_cost_and_plot(cli):
    cli.ok("init", "--resolution", "32")
    out = cli.ok("add-task", "digits", "--data", "digits", "--candidates", "15:16", "--profile-epochs", "1",
                 "--limit-per-class", "4", "--epochs", "1", "--no-probe").stdout
    for words in ("digits v1 registered (live)", "branch point", "validation accuracy",
                  "test accuracy", "extra inference cost", "profile plot", "digits-profile.png", "no forgetting"):
        assert words in out, words
    # profiled block 15 only; greedy may grow it leftwards (up to 3 blocks)
    assert re.search(r"1[3-5]:15 \(blocks\.[56]\.\d", out), out


def _versions(cli) -> dict[str, int]:
    return {t["name"]: t["num_versions"] for t in cli.json("tasks")["tasks"]}


@pytest.mark.parametrize("args, words", [
    (["add-task", "Bad Name", "--data", "digits"], "invalid task name"),
    (["add-task", "x", "--data", "/no/such/folder"], "not found"),
    (["add-task", "x", "--data", "digits", "--branch", "3-4"], "START:END"),
    (["add-task", "x", "--data", "digits", "--branch", "14:40", "--limit-per-class", "3"], "not a unit range"),
    (["add-task", "x", "--data", "digits", "--branch", "blocks.9.9:blocks.9.9"], "neither a block index nor a block name"),
    (["add-task", "x", "--data", "digits", "--candidates", "9:3", "--limit-per-class", "3"], "ends before it starts"),
    (["add-task", "x", "--data", "digits", "--candidates", "probe"], "not a range of blocks to profile"),
    (["add-task", "digits", "--data", "animals", "--limit-per-class", "3"], "different class set"),
    (["add-task", "x", "--data", "digits", "--limit-per-class", "1"], "--limit-per-class"),
    (["add-task", "x"], "--data"),
])
def test_bad_input_is_refused_with_one_line_and_writes_nothing(trained, one_line_error, args, words):
    before = _versions(trained)
    line = one_line_error(trained(*args))
    assert words in line
    assert _versions(trained) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_an_input_error(trained, one_line_error):
    line = one_line_error(trained("add-task", "x", "--data", "digits", "--device", "cuda", "--limit-per-class", "3", "--branch", "15:15"))
    assert "--device cpu" in line


def test_an_imagefolder_of_real_images_is_accepted(cli, tmp_path):
    """User data: an ImageFolder of PNGs written from real MNIST digits (two classes)."""
    cli.ok("init", "--resolution", "32")
    folder = tmp_path / "zero-vs-one"
    cli.ok("samples", "--data", "mnist", "--out", str(tmp_path / "all"), "--per-class", "12", "--split", "train")
    for cls in ("0", "1"):
        (folder / cls).mkdir(parents=True)
        for src in sorted((tmp_path / "all").glob(f"{cls}_*.png")):
            (folder / cls / src.name).write_bytes(src.read_bytes())
    made = cli.json("-q", "add-task", "zero-one", "--data", str(folder), "--branch", "15:15", "--epochs", "1")
    assert made["report"]["class_names"] == ["0", "1"]
    shown = cli.json("show", "zero-one")
    assert shown["data_md5"] == dvc_md5(folder) and shown["data_path"] == str(folder.resolve())
