"""Bad input exits 2 with one line naming the fix; a failed check exits 1; neither writes anything."""

from __future__ import annotations


def test_out_in_a_missing_folder(cli, one_line_error, tmp_path):
    # an uninitialised home: the target is refused before the home or any model is opened
    line = one_line_error(cli("export", "--out", str(tmp_path / "nowhere" / "m.onnx")))
    assert "does not exist" in line and "mkdir -p" in line
    assert not (tmp_path / "nowhere").exists()


def test_out_is_a_directory(cli, one_line_error, tmp_path):
    line = one_line_error(cli("export", "--out", str(tmp_path)))
    assert "is a directory" in line and "model.onnx" in line


def test_unknown_task(exported, one_line_error, tmp_path):
    line = one_line_error(exported.cli("export", "--task", "nope", "--out", str(tmp_path / "m.onnx")))
    assert "nope" in line and "tasks" in line.split(":")[-1]
    assert list(tmp_path.iterdir()) == []


def test_no_live_tasks(cli, one_line_error, tmp_path):
    cli.ok("init", "--resolution", "32")
    line = one_line_error(cli("export", "--out", str(tmp_path / "m.onnx")))
    assert "no live tasks" in line and "add-task" in line
    assert not (tmp_path / "m.onnx").exists()


def test_bad_format_is_a_usage_error(cli, one_line_error, tmp_path):
    line = one_line_error(cli("export", "--format", "tflite", "--out", str(tmp_path / "m.tflite")))
    assert "tflite" in line and "onnx" in line


def test_a_graph_that_fails_its_check_is_not_written(exported, one_line_error, tmp_path, monkeypatch):
    """Plant an impossible tolerance: the real exported graph is run, refused, and the old file stays."""
    from forkpoint.serving import export_graph

    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous export")
    monkeypatch.setattr(export_graph, "TOLERANCE", -1.0)
    line = one_line_error(exported.cli("-q", "export", "--onnx-exporter", "torchscript", "--out", str(out)), code=1)
    assert "differs from forkpoint's logits" in line and "(allowed -1)" in line and "nothing was written" in line
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left behind



def test_auto_falls_back_when_the_torchscript_exporter_fails(exported, tmp_path, monkeypatch):
    """Plant a failing TorchScript exporter: `auto` still writes a checked graph, built by the dynamo exporter, and says why."""
    import json

    from forkpoint.serving import onnx_export

    def broken(plan):
        raise RuntimeError("planted: the tracer is gone")

    monkeypatch.setitem(onnx_export.BUILDERS, "torchscript", broken)
    out = tmp_path / "m.onnx"
    result = exported.cli("export", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["exporter"] == "dynamo" and report["max_abs_diff"] <= 1e-4 and out.is_file()
    assert report["notes"] == ["torchscript exporter: RuntimeError: planted: the tracer is gone; used the dynamo exporter instead"]
    assert "used the dynamo exporter instead" in result.stderr
