"""evaluate: scores on the user's own labelled folder or CSV, checked against predict on the same files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]  # as tests/cli/conftest.py


@pytest.fixture
def two_tasks(own_trained):
    """digits v1 and mnist v1 (both classes 0..9), in a private home the test may log events into."""
    own_trained.ok("-q", "add-task", "mnist", "--data", "mnist", "--branch", "15:15", *QUICK)
    return own_trained


@pytest.fixture
def digit_folder(two_tasks, tmp_path) -> Path:
    out = tmp_path / "my-digits"
    result = two_tasks.ok("samples", "--data", "digits", "--out", str(out), "--per-class", "3", "--layout", "imagefolder")
    assert "wrote 30 image(s)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [str(c) for c in range(10)]
    return out


def test_evaluate_scores_every_matching_task_as_predict_does(two_tasks, digit_folder, tmp_path):
    out = two_tasks.json("evaluate", str(digit_folder), "--plot", str(tmp_path / "cm.png"), "--top-wrong", "50")
    assert out["data"]["images"] == 30 and out["data"]["classes"] == [str(c) for c in range(10)]
    assert set(out["tasks"]) == {"digits", "mnist"}  # both tasks' classes are 0..9: one shared pass scores both
    preds = two_tasks.json("predict", str(digit_folder))
    for task, scored in out["tasks"].items():
        right = sum(Path(i["path"]).parent.name == i["tasks"][task]["label"] for i in preds["images"])
        assert scored["correct"] == right and scored["accuracy"] == pytest.approx(right / 30)
        assert sum(map(sum, scored["confusion"])) == 30
        assert len(scored["mistakes"]) == 30 - right
        assert all(m["true"] != m["predicted"] and m["probability"] >= m["true_probability"] for m in scored["mistakes"])
        assert sum(c["images"] for c in scored["per_class"].values()) == 30
        png = Path(out["plots"][task])
        assert png.name == f"cm.{task}.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = two_tasks.json("history", "digits")
    [event] = [e for e in history["events"] if e["action"] == "evaluate"]
    assert event["version"] == 1 and event["details"]["data_md5"] == out["data"]["md5"]
    assert event["details"]["accuracy"] == pytest.approx(out["tasks"]["digits"]["accuracy"], abs=1e-6)
    assert two_tasks.json("audit", "--no-data")["ok"] is True  # the event is part of the sealed chain


def test_a_csv_gives_the_same_scores_and_the_table_reads(two_tasks, digit_folder):
    csv = digit_folder / "labels.csv"
    csv.write_text("path,label\n" + "".join(f"{p.relative_to(digit_folder)},{p.parent.name}\n"
                                            for p in sorted(digit_folder.rglob("*.png"))))
    from_folder = two_tasks.json("evaluate", str(digit_folder), "--task", "digits")
    from_csv = two_tasks.json("evaluate", str(csv), "--task", "digits")
    assert list(from_csv["tasks"]) == ["digits"]
    assert from_csv["tasks"]["digits"]["confusion"] == from_folder["tasks"]["digits"]["confusion"]
    table = two_tasks.ok("evaluate", str(digit_folder), "--task", "digits").stdout
    assert "digits v1: accuracy" in table and "confusion (rows true, columns predicted)" in table


def test_classes_no_task_knows_are_refused(two_tasks, tmp_path, one_line_error):
    for cls in ("cat", "dog"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp_path / "pets" / cls / "a.png")
    assert "no live task has the classes cat, dog" in one_line_error(two_tasks("evaluate", str(tmp_path / "pets")))
    line = one_line_error(two_tasks("evaluate", str(tmp_path / "pets"), "--task", "digits"))
    assert "task 'digits' does not know (cat, dog)" in line
