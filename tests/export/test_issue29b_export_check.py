"""Issue 29 (b): an export records the task -> version map, and `export --check FILE` says whether it is stale."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]  # as tests/cli/conftest.py


def _with_metadata(src: Path, dst: Path, **changes: str | None) -> Path:
    """A copy of ``src`` whose ``forkpoint.<key>`` metadata is replaced (None: removed)."""
    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        meta.pop(f"forkpoint.{key}", None)
        if value is not None:
            meta[f"forkpoint.{key}"] = value
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(dst))
    return dst


def test_an_export_records_its_versions_and_checks_up_to_date(exported):
    meta = {p.key: p.value for p in onnx.load(str(exported.onnx), load_external_data=False).metadata_props}
    assert json.loads(meta["forkpoint.versions"]) == {"digits": 1, "mnist": 1}
    assert meta["forkpoint.selection"] == "all" and meta["forkpoint.trunk_registered_at"]
    result = exported.cli.ok("export", "--check", str(exported.onnx))
    assert f"{exported.onnx} is up to date: digits v1, mnist v1" in " ".join(result.stdout.split())
    out = exported.cli.json("export", "--check", str(exported.onnx))
    assert out["up_to_date"] is True and out["recorded"] == out["live"] == {"digits": 1, "mnist": 1}


def test_each_stale_task_is_named(exported, tmp_path, one_line_error):
    stale = _with_metadata(exported.onnx, tmp_path / "stale.onnx", versions=json.dumps({"digits": 2, "gone": 1}))
    line = one_line_error(exported.cli("export", "--check", str(stale)), code=1)
    assert "is out of date" in line
    assert "digits: v2 in the file, live v1 (differs)" in line
    assert "gone: v1 in the file, not live in the registry (missing)" in line
    assert "mnist: live v1, not in the file (new)" in line
    result = exported.cli("export", "--check", str(stale), "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["up_to_date"] is False


def test_a_task_left_out_with_task_is_not_news(exported, tmp_path):
    one = _with_metadata(exported.onnx, tmp_path / "one.onnx", versions=json.dumps({"mnist": 1}), selection="named")
    result = exported.cli.ok("export", "--check", str(one))
    assert "up to date: mnist v1" in result.stdout and "exported with --task): digits" in result.stderr


def test_a_file_without_version_records_predates_them(exported, tmp_path, one_line_error):
    old = _with_metadata(exported.onnx, tmp_path / "old.onnx", versions=None, tasks=None, selection=None)
    assert "predates version records" in one_line_error(exported.cli("export", "--check", str(old)), code=1)


def test_a_file_of_another_registry_is_stale(exported, tmp_path, one_line_error):
    other = _with_metadata(exported.onnx, tmp_path / "other.onnx", trunk_registered_at="2020-01-01T00:00:00")
    assert "exported from another registry" in one_line_error(exported.cli("export", "--check", str(other)), code=1)


def test_check_refuses_what_it_would_ignore_and_files_that_are_no_export(exported, tmp_path, one_line_error):
    line = one_line_error(exported.cli("export", "--check", str(exported.onnx), "--task", "digits"))
    assert "--check FILE writes nothing, so --task would be ignored" in line
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    assert "is neither an ONNX model nor a TorchScript file" in one_line_error(exported.cli("export", "--check", str(text)))
    assert "--out model.onnx" in one_line_error(exported.cli("export"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_a_new_task_makes_a_real_export_stale(cli, tmp_path, one_line_error):
    cli.ok("init", "--resolution", "32")
    cli.ok("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK)
    pt = tmp_path / "model.pt"
    cli.ok("-q", "export", "--format", "torchscript", "--out", str(pt))
    assert "up to date: digits v1" in cli.ok("export", "--check", str(pt)).stdout
    cli.ok("-q", "add-task", "mnist", "--data", "mnist", "--branch", "15:15", *QUICK)
    line = one_line_error(cli("export", "--check", str(pt)), code=1)
    assert "mnist: live v1, not in the file (new)" in line and "digits:" not in line
    assert f"forkpoint export --format torchscript --out {pt}" in line
