"""predict: one shared pass over image files, checked against the learner on the same real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from PIL import Image

from forkpoint.contract.preprocessing import Preprocessing
from forkpoint.imagedata import load_dataset
from forkpoint.learner.data import load_inputs, to_input
from forkpoint.workflows import load_live_model, open_home
from forkpoint.workflows.datasets import load_task_data


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


def test_predict_refuses_a_decompression_bomb(trained, png_bomb, one_line_error):
    """15000x15000 px in a few hundred KB: refused from the header, before anything is decoded."""
    line = one_line_error(trained("predict", str(png_bomb(15000, 15000))))
    assert "225,000,000 px, over the 178,956,970-pixel limit" in line and "downscale it" in line


@pytest.fixture
def awkward_folder(tmp_path):
    """A user dataset (train/ and val/ given, so rows keep file order) of every shape and mode predict may meet."""
    rng = np.random.default_rng(13)

    def noise(h, w, *c):
        return rng.integers(0, 256, (h, w, *c), dtype=np.uint8)

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display": a phone photo
    files = {
        "train/cat/0_wide.png": (Image.fromarray(noise(41, 97, 3)), {}),
        "train/cat/1_tall_gray.png": (Image.fromarray(noise(120, 50)), {}),
        "train/cat/2_rgba.png": (Image.fromarray(noise(60, 80, 4), "RGBA"), {}),
        "train/cat/3_rotated.jpg": (Image.fromarray(noise(90, 150, 3)), {"exif": exif.tobytes()}),
        "train/dog/0_big.jpg": (Image.fromarray(noise(300, 500, 3)).resize((2000, 1200)), {"quality": 90}),
        "train/dog/1_palette.png": (Image.fromarray(noise(70, 90, 3)).convert("P"), {}),
        "train/dog/2_16bit.png": (Image.fromarray(noise(64, 48).astype(np.uint16) * 257), {}),
        "train/dog/3_big_wide.png": (Image.fromarray(noise(200, 900, 3)).resize((3000, 1100)), {}),
        "val/cat/0.png": (Image.fromarray(noise(40, 40, 3)), {}),
        "val/dog/0.png": (Image.fromarray(noise(40, 40, 3)), {}),
    }
    for rel, (img, kw) in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp_path / rel, **kw)
    return tmp_path


def test_training_and_predict_turn_the_same_files_into_identical_tensors(awkward_folder):
    """Issue 13's skew: the training path (add-task's loader, then the learner's to_input) and
    predict's load_inputs give bit-identical tensors: non-square, gray, alpha, palette, 16-bit,
    EXIF-rotated and large (reduced while decoding) files alike."""
    spec = Preprocessing(48, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what Backbone.preprocessing gives
    data = load_task_data(str(awkward_folder), resolution=spec.resolution)  # as add-task loads --data
    train = data.task_data.train
    trained_on = to_input(train.images, spec.resolution, spec.mean, spec.std)  # as learner.task prepares it
    files = sorted((awkward_folder / "train").rglob("*.*"))
    assert [data.class_names[int(y)] for y in train.labels] == [f.parent.name for f in files]
    served = load_inputs(files, spec)  # what predict_images feeds the model
    assert trained_on.shape == served.shape == (8, 3, 48, 48)
    for f, a, b in zip(files, trained_on, served):
        assert torch.equal(a, b), f"{f.name}: training and predict tensors differ"
    wide = served[[f.name for f in files].index("0_wide.png")]
    assert not torch.equal(wide, load_inputs([awkward_folder / "val/cat/0.png"], spec)[0])  # a real comparison


def test_arrays_and_their_files_give_identical_tensors(trained, digit_pngs):
    """Built-ins are stored as small arrays and resized by to_input; their PNGs go through predict's decoder."""
    test = load_dataset("digits", root=trained.data_root).test
    first = [int(np.flatnonzero(test.labels == c)[0]) for c in range(10)]
    spec = Preprocessing(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    from_arrays = to_input(np.array(test.images[first]), spec.resolution, spec.mean, spec.std)
    from_files = load_inputs([digit_pngs / f"{c}_0.png" for c in range(10)], spec)
    assert torch.equal(from_arrays, from_files)
