"""`forkpoint export`: the ONNX graph run by onnxruntime gives forkpoint's logits on real images."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

TOL = 1e-4


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session, x):
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": x.numpy()})))


def test_onnx_matches_forkpoint_logits_on_real_images(exported):
    x, want = exported.live_logits()
    assert len(exported.images) == 20 and x.shape == (20, 3, 32, 32)
    got = _run(_session(exported.onnx), x)
    assert sorted(got) == ["logits_digits", "logits_mnist"]
    for task, logits in want.items():
        diff = np.abs(got[f"logits_{task}"] - logits).max()
        assert diff <= TOL, f"{task}: onnxruntime differs from forkpoint by {diff}"
        assert (got[f"logits_{task}"].argmax(1) == logits.argmax(1)).all()
    # the command checked itself the same way and says so
    r = exported.report
    assert r["format"] == "onnx" and r["exporter"] == "torchscript" and r["notes"] == []  # auto: the faster exporter first
    assert 0 <= r["max_abs_diff"] <= r["tolerance"] == TOL and r["checked_batches"] == [1, 3]
    assert r["bytes"] == exported.onnx.stat().st_size > 10_000_000  # the whole trunk, weights inside


def test_onnx_answers_like_predict(exported):
    """The labels a consumer reads from the graph are `forkpoint predict`'s labels, image by image."""
    x, _ = exported.live_logits()
    got = _run(_session(exported.onnx), x)
    meta = _session(exported.onnx).get_modelmeta().custom_metadata_map
    predicted = exported.cli.json("predict", str(exported.samples))["images"]
    assert [p["path"] for p in predicted] == [str(p) for p in exported.images]
    for t in json.loads(meta["forkpoint.tasks"]):
        labels = [t["class_names"][i] for i in got[t["output"]].argmax(1)]
        assert labels == [p["tasks"][t["task"]]["label"] for p in predicted]


def test_onnx_graph_is_valid_with_dynamic_batch_and_forkpoints_metadata(exported):
    model = onnx.load(str(exported.onnx))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "images" and isinstance(dims[0], str) and dims[1:] == [3, 32, 32]
    meta = {p.key: p.value for p in model.metadata_props}
    info = exported.cli.json("info")
    tasks = {t["name"]: t for t in exported.cli.json("tasks")["tasks"]}
    assert meta["forkpoint.backbone_fingerprint"] == info["fingerprint"]
    assert json.loads(meta["forkpoint.preprocessing"]) == info["preprocessing"]
    assert meta["forkpoint.input"] == "images" and meta["forkpoint.format"] == "onnx"
    from forkpoint import __version__

    assert meta["forkpoint.version"] == __version__ and model.producer_name == "forkpoint"
    recorded = json.loads(meta["forkpoint.tasks"])
    assert [t["task"] for t in recorded] == ["digits", "mnist"]
    assert [o.name for o in model.graph.output] == [t["output"] for t in recorded] == ["logits_digits", "logits_mnist"]
    for t in recorded:
        assert t["version"] == tasks[t["task"]]["live_version"] == 1
        assert t["class_names"] == tasks[t["task"]]["class_names"] == [str(i) for i in range(10)]
        assert (t["branch"]["start"], t["branch"]["stop"]) == (tasks[t["task"]]["branch"]["start"], tasks[t["task"]]["branch"]["stop"])
    assert {t["task"]: t["branch"]["start"] for t in recorded} == {"digits": 15, "mnist": 13}  # two different forks in one graph


def test_selected_task_export_has_only_that_output(exported, tmp_path):
    out = tmp_path / "mnist.onnx"
    r = json.loads(exported.cli.ok("-q", "export", "--task", "mnist", "--onnx-exporter", "torchscript",
                                   "--out", str(out), "--json").stdout)
    assert r["exporter"] == "torchscript" and r["outputs"] == {"mnist": "logits_mnist"}
    session = _session(out)
    assert [o.name for o in session.get_outputs()] == ["logits_mnist"]
    assert [t["task"] for t in json.loads(session.get_modelmeta().custom_metadata_map["forkpoint.tasks"])] == ["mnist"]
    x, want = exported.live_logits(tasks=["mnist"])
    got = _run(session, x)
    assert np.abs(got["logits_mnist"] - want["mnist"]).max() <= TOL
    assert out.stat().st_size < exported.onnx.stat().st_size  # digits' private block is not in it


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_format_matches_and_carries_the_same_metadata(exported, tmp_path):
    import torch

    out = tmp_path / "model.pt"
    r = json.loads(exported.cli.ok("-q", "export", "--format", "torchscript", "--out", str(out), "--json").stdout)
    assert r["format"] == "torchscript" and r["max_abs_diff"] <= TOL
    extra = {"forkpoint.json": ""}
    module = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["forkpoint.json"])
    onnx_meta = {p.key: p.value for p in onnx.load(str(exported.onnx), load_external_data=False).metadata_props}
    differ = {k for k in meta if meta[k] != onnx_meta.get(k)}
    assert differ == {"forkpoint.format", "forkpoint.exporter"}
    x, want = exported.live_logits()
    with torch.no_grad():
        got = module(x)
    for t, logits in zip([t["task"] for t in json.loads(meta["forkpoint.tasks"])], got):
        assert np.abs(logits.numpy() - want[t]).max() <= TOL


@pytest.mark.parametrize("output_names", [(["a.b", "a_b", "c-d"], ["logits_a_b", "logits_a_b_2", "logits_c_d"])])
def test_output_names_are_identifiers_and_never_clash(output_names):
    from forkpoint.serving.export_graph import output_names as names

    tasks, expected = output_names
    assert list(names(tasks).values()) == expected
