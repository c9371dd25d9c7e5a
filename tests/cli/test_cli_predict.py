"""predict: one shared pass over image files, checked against the learner on the same real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forkpoint.imagedata import load_dataset
from forkpoint.learner.data import to_input
from forkpoint.workflows import load_live_model, open_home


@pytest.fixture(scope="module")
def digit_pngs(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("digit-pngs")
    trained.ok("samples", "--data", "digits", "--out", str(out), "--per-class", "1")
    return out


def test_predict_json_has_every_task_for_every_image(trained, digit_pngs):
    out = trained.json("predict", str(digit_pngs))
    assert out["versions"] == {"digits": 2, "mnist": 1}
    assert len(out["images"]) == 10
    for image in out["images"]:
        assert set(image["tasks"]) == {"digits", "mnist"}
        for pred in image["tasks"].values():
            probs = [t["probability"] for t in pred["top"]]
            assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
            assert pred["label"] == pred["top"][0]["label"] == str(pred["index"])


def test_predict_equals_the_learner_on_the_same_images(trained, digit_pngs):
    """PNG files -> CLI must give what the registry-rebuilt model gives on the dataset's own arrays."""
    out = trained.json("predict", str(digit_pngs), "--top-k", "10")
    test = load_dataset("digits", root=trained.data_root).test
    first = [int(np.flatnonzero(test.labels == c)[0]) for c in range(10)]  # what `samples` wrote, class by class
    with open_home(trained.home) as home:
        live = load_live_model(home)
        bb = live.model.backbone
        x = to_input(np.array(test.images[first]), bb.resolution, bb.mean, bb.std)
        probs = {t: torch.softmax(v, dim=1) for t, v in live.model.forward_each(x).items()}
    for row, image in enumerate(out["images"]):
        assert image["path"].endswith(f"{row}_0.png")
        for task, pred in image["tasks"].items():
            got = {t["label"]: t["probability"] for t in pred["top"]}
            want = {live.model.class_names[task][j]: float(p) for j, p in enumerate(probs[task][row])}
            assert got.keys() == want.keys()
            for label in got:
                assert got[label] == pytest.approx(want[label], abs=1e-5)


def test_predict_for_named_tasks_only(trained, digit_pngs):
    both = trained.json("predict", str(digit_pngs))
    one = trained.json("predict", str(digit_pngs), "--task", "digits")
    assert one["versions"] == {"digits": 2}
    for a, b in zip(both["images"], one["images"]):
        assert set(b["tasks"]) == {"digits"}
        assert b["tasks"]["digits"]["label"] == a["tasks"]["digits"]["label"]
        # another task set stacks other rows into the shared units: float32 kernels may round differently
        assert b["tasks"]["digits"]["probability"] == pytest.approx(a["tasks"]["digits"]["probability"], abs=1e-5)
    table = trained.ok("predict", str(digit_pngs / "7_0.png")).stdout
    assert "7_0.png" in table and "digits" in table and "mnist" in table


def test_predict_input_errors(trained, tmp_path, one_line_error):
    assert "does not exist" in one_line_error(trained("predict", str(tmp_path / "missing.png")))
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    assert "cannot read" in one_line_error(trained("predict", str(fake)))
    (tmp_path / "empty").mkdir()
    assert "no image files" in one_line_error(trained("predict", str(tmp_path / "empty")))
    assert "unknown task" in one_line_error(trained("predict", str(fake), "--task", "nope"))
    assert "Missing argument" in one_line_error(trained("predict"))


def test_predict_without_tasks_says_what_to_do(cli, tmp_path, one_line_error):
    cli.ok("init", "--resolution", "32")
    cli.ok("samples", "--data", "digits", "--out", str(tmp_path / "s"))
    assert "add-task" in one_line_error(cli("predict", str(tmp_path / "s")))
