"""Issue 25 part 5: a stream of two ImageFolders without test splits (sklearn digits 0-4 and 5-9 as
32 px PNGs) used to fail with "internal error IndexError" (Avalanche indexing an empty test set).
Now each folder holds out a seeded, stratified test split (``--test-fraction``, default 0.2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from forkpoint.scenarios.commands import stream_group


def _digit_folders(root: Path, per_class: int = 12) -> tuple[Path, Path]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.round(d.images * (255 / 16)), 0, 255).astype(np.uint8)
    out = []
    for name, classes in (("low", range(5)), ("high", range(5, 10))):
        for c in classes:
            folder = root / name / f"d{c}"
            folder.mkdir(parents=True)
            for i, idx in enumerate(np.nonzero(d.target == c)[0][:per_class]):
                Image.fromarray(images[idx]).resize((32, 32), Image.Resampling.BICUBIC).save(folder / f"{i}.png")
        out.append(root / name)
    return out[0], out[1]


def test_two_imagefolders_without_test_splits_run_subtuning_and_naive(tmp_path):
    a, b = _digit_folders(tmp_path)
    result = CliRunner().invoke(stream_group, [
        "run", "--benchmark", str(a), str(b), "--strategy", "subtuning,naive", "--epochs", "2",
        "--resolution", "32", "--per-class", "8", "--candidates", "15:16", "--device", "cpu",
        "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "done" and [r["strategy"] for r in report["results"]] == ["subtuning", "naive"]
    tasks = report["stream"]["tasks"]
    assert len(tasks) == 2 and all(t["test"] > 0 for t in tasks)
    assert all(len(r["acc_matrix"]) == 2 for r in report["results"])


def test_a_folder_without_test_images_is_a_one_line_error(tmp_path):
    from forkpoint.contract.errors import ConfigError
    from forkpoint.scenarios.streams import StreamOptions

    try:
        StreamOptions(test_fraction=0.0)
    except ConfigError as e:
        assert "--test-fraction" in str(e) and "\n" not in str(e)
    else:
        raise AssertionError("a zero test fraction must be refused")
