"""Smoke test of the benchmark suite: it runs, writes every output, and its numbers are sane.

No timed assertions: wall times are only checked to be positive and finite.
"""

from __future__ import annotations

import math
import sys

import pytest
from click.testing import CliRunner

from forkpoint.benchmarks.commands import bench_command
from forkpoint.benchmarks.report import BEGIN, END, publish
from forkpoint.benchmarks.targets import MET, NOT_MEASURED, NOT_MET
from forkpoint.contract.errors import ConfigError

SECTIONS = ("cost", "accuracy", "throughput", "storage", "forgetting")


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_smoke_run_writes_every_output(smoke_run):
    out, res, output = smoke_run
    for name in SECTIONS:
        png = out / f"bench-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert res["tables"][name], name
    md = (out / "results.md").read_text()
    assert "Where each target stands" in md and "Test accuracy (%)" in md and "| --- |" in md
    m = res["machine"]
    assert m["device"] == "cpu" and m["torch"] and m["date"] and m["torch_threads"] >= 1
    assert res["settings"]["mode"] == "smoke" and res["backbone"]["weights_source"].startswith("embedded")
    assert set(res["sections"]) == set(SECTIONS)
    assert len(res["targets"]) == 9 and {t["status"] for t in res["targets"]} <= {MET, NOT_MET, NOT_MEASURED}
    assert "Where each target stands" in output


def test_smoke_accuracy_rows_cover_every_method(smoke_run):
    _, res, _ = smoke_run
    acc = res["sections"]["accuracy"]
    assert acc["tasks"] == ["mnist", "fashion"]
    combos = {(r["task"], r["method"]) for r in acc["rows"]}
    assert combos == {(t, m) for t in acc["tasks"] for m in acc["methods"]}
    for r in acc["rows"]:
        assert 0.0 <= r["test_acc"] <= 1.0 and _finite_positive(r["seconds"]) and r["trainable_params"] > 0
        assert r["train"] > 0 and r["val"] > 0 and r["test"] > 0
    by = {(r["task"], r["method"]): r for r in acc["rows"]}
    for t in acc["tasks"]:
        sub, lora, probe, full = by[(t, "subtuning")], by[(t, "lora")], by[(t, "linear-probe")], by[(t, "full-ft")]
        assert [lora["start"], lora["stop"]] == sub["trained"]  # LoRA on the units SubTuning trained
        assert probe["trainable_params"] < lora["trainable_params"] < full["trainable_params"]
        if sub["start"] == sub["stop"]:  # SubTuning served the probe: its trained branch did not beat it
            assert sub["trainable_params"] == probe["trainable_params"] and probe["start"] == sub["start"]
        else:
            assert [sub["start"], sub["stop"]] == sub["trained"]
            assert lora["trainable_params"] < sub["trainable_params"] < full["trainable_params"]
        # the trained baselines' rates were picked on validation: every rate of the grid tried, the best kept
        for r in (lora, by[(t, "subtuning-late")], full):
            trials = r["lr_trials"]
            assert len(trials) == 3 and r["search_seconds"] > 0 and r["lr"] in [x["lr"] for x in trials]
            best = max(trials, key=lambda x: (x["val_acc"], -x["val_loss"]))
            assert (best["val_acc"], best["val_loss"]) == next((x["val_acc"], x["val_loss"]) for x in trials if x["lr"] == r["lr"])
        assert probe["lr"] is None and probe["lr_trials"] is None and sub["lr_trials"] is None
    picked = next(t for t in res["tables"]["accuracy"] if t["title"].startswith("Learning rates"))
    assert {row[1] for row in picked["rows"]} == {"subtuning-late", "lora", "full-ft"}


def test_smoke_cost_throughput_storage_are_positive(smoke_run):
    _, res, _ = smoke_run
    cost = res["sections"]["cost"]
    assert all(_finite_positive(v) for v in cost["ratios"].values()), cost["ratios"]
    # caching can only remove unit passes, never add them (counted work, not time)
    assert cost["profile_growth"][-1]["unit_passes"] < cost["profile_uncached"]["unit_passes"]
    rows = res["sections"]["throughput"]["rows"]
    assert {(r["batch_size"], r["tasks"]) for r in rows} == {(b, n) for b in (1, 4) for n in (1, 2)}
    for r in rows:
        assert all(_finite_positive(v) for v in r["images_per_s"].values())
        assert _finite_positive(r["speedup_vs_separate"]) and _finite_positive(r["shared_over_lower_bound_throughput"])
        # the cost model: one task costs one pass; N tasks one pass plus what each adds after the first
        assert len(r["flops_marginal_pct"]) == r["tasks"] and all(m > 0 for m in r["flops_marginal_pct"])
        assert r["flops_speedup_vs_separate"] == pytest.approx(100.0 * r["tasks"] / r["flops_total_pct"])
        if r["tasks"] == 1:
            assert r["flops_total_pct"] == pytest.approx(100.0)
        else:
            assert 100.0 < r["flops_total_pct"] < 100.0 * r["tasks"]
    st = res["sections"]["storage"]
    assert all(0 < r["bytes"] < st["full_model_bytes"] for r in st["rows"])


def test_smoke_stream_forgets_nothing(smoke_run):
    _, res, _ = smoke_run
    fg = res["sections"]["forgetting"]["subtuning"]
    assert fg["max_abs_forgetting"] == 0.0 and fg["fingerprints_moved"] == []
    assert all(len(s["tasks"]) == 2 for s in fg["streams"])
    harness = res["sections"]["forgetting"]["harness"]
    assert set(harness["strategies"]) == {"subtuning", "naive"} and len(harness["stream"]) == 2
    sub = harness["strategies"]["subtuning"]
    assert sub["forgetting"] == 0.0 and sub["checks"]["passed"]
    assert all(0.0 <= a <= 1.0 for a in harness["strategies"]["naive"]["final_acc"])


def test_publish_rewrites_only_the_generated_region(smoke_run, tmp_path):
    out, res, _ = smoke_run
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nhand-written intro\n\n{BEGIN}\nold\n{END}\n\nhand-written notes\n")
    written = publish(res, out, results_dir=tmp_path / "results", img_dir=tmp_path / "img", page=page)
    text = page.read_text()
    assert "hand-written intro" in text and "hand-written notes" in text and "\nold\n" not in text
    assert "Where each target stands" in text and "img/bench-cpu-smoke-accuracy.png" in text
    assert (tmp_path / "results" / "cpu-smoke.json").is_file()
    assert sum(p.suffix == ".png" for p in written) == len(SECTIONS)


@pytest.mark.parametrize("args, fragment", [
    (["--seeds", "a,b"], "--seeds 'a,b'"),
    (["--arch", "resnet18"], "needs --weights"),
])
def test_bad_options_raise_config_errors(args, fragment):
    result = CliRunner().invoke(bench_command, ["--smoke", "--device", "cpu", *args])
    assert isinstance(result.exception, ConfigError) and fragment in str(result.exception)
    assert result.exception.exit_code == 2


def test_module_entry_point_reports_errors_in_one_line(monkeypatch, capsys):
    """``python -m forkpoint.benchmarks`` goes through the CLI's one error boundary."""
    from forkpoint.benchmarks.__main__ import main

    monkeypatch.setattr(sys, "argv", ["python -m forkpoint.benchmarks", "--smoke", "--seeds", "x"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --seeds 'x'") and "\n" not in err


def test_rerender_rebuilds_the_same_tables_from_json(smoke_run, tmp_path):
    out, res, _ = smoke_run
    result = CliRunner().invoke(bench_command, ["--from-results", str(out / "results.json"), "--out", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import json

    again = json.loads((tmp_path / "results.json").read_text())
    assert again["tables"] == res["tables"] and again["targets"] == res["targets"]
    assert all((tmp_path / f"bench-{name}.png").stat().st_size > 5000 for name in SECTIONS)


def test_gpu_mode_uses_a_bigger_model_only_from_local_weights(tmp_path):
    """A cached timm safetensors file is found and loads strictly; an empty cache falls back to the embedded Lite0."""
    import timm
    from safetensors.torch import save_file

    from forkpoint.benchmarks.backbones import build_backbone, local_timm_weights, pick_gpu_backbone
    from forkpoint.benchmarks.settings import preset

    snap = tmp_path / "models--timm--resnet10t.c3_in1k" / "snapshots" / "0123"
    snap.mkdir(parents=True)
    model = timm.create_model("resnet10t")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snap / "model.safetensors"))
    name, path = local_timm_weights("resnet10t", tmp_path)
    assert name == "resnet10t.c3_in1k" and path == snap / "model.safetensors"
    bb = build_backbone(name, str(path), 32)
    from forkpoint.learner.backbone import module_digest

    assert bb.weights_source == "file:model.safetensors" and bb.fingerprint() == module_digest(model)
    arch, weights, why = pick_gpu_backbone(tmp_path / "empty")
    assert arch == "tf_efficientnet_lite0" and weights is None and "embedded Lite0" in why
    gpu = preset("full", "cuda")
    assert gpu.resolution == 224 and gpu.bf16 and gpu.regimes == (10, 50, 100, None) and gpu.seeds_for(None) == (0, 1, 2)
