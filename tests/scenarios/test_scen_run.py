"""A small real stream (MNIST -> Fashion-MNIST, real Lite0 weights at 32 px) through
SubTuning, Naive and LwF with Avalanche's metrics: SubTuning forgets exactly nothing,
Naive forgets."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from forkpoint.contract.branch import UnitRange
from forkpoint.scenarios.runner import RunConfig, run_stream

# lr 3e-3 on SubTuning's schedule: Naive learns MNIST well above chance, then Fashion-MNIST overwrites it.
# LwF tries two (alpha, temperature) settings and keeps one on validation.
CONFIG = RunConfig(strategies=("subtuning", "naive", "lwf"), resolution=32, epochs=3, lr=3e-3,
                   candidates=UnitRange(13, 16), max_blocks=2, device="cpu", lwf_settings=((1.0, 2.0), (2.0, 1.0)))


def test_small_domain_stream(tmp_path, lite0_32, tiny_domains):
    """One run (pytest-xdist would repeat a module fixture per worker), every claim checked on it."""
    outcome = run_stream(tiny_domains, CONFIG, tmp_path, backbone=lite0_32)
    check_subtuning_forgets_exactly_nothing(outcome)
    check_naive_forgets_on_the_domain_stream(outcome)
    check_lwf_runs_the_whole_stream(outcome)
    check_baselines_train_on_subtunings_schedule_and_pick_on_validation(outcome, tiny_domains, lite0_32)
    check_costs_say_what_each_strategy_stores(outcome, lite0_32)
    check_reports_and_heatmaps_are_written(outcome)


def _result(outcome, name):
    return next(r for r in outcome.results if r.strategy == name)


def check_subtuning_forgets_exactly_nothing(outcome):
    r = _result(outcome, "subtuning")
    assert outcome.status == "done"
    assert r.forgetting == 0.0 and r.bwt == 0.0  # Avalanche's own metrics
    assert r.forgetting_per_task[0] == 0.0
    learned, later = r.acc_matrix[0][0], r.acc_matrix[1][0]
    assert learned == later  # the old task's accuracy is identical, not merely close
    assert r.avalanche_acc_matrix[0][0] == r.avalanche_acc_matrix[1][0]
    # The check compared every re-evaluated experience's logits bit for bit and every fingerprint.
    assert r.checks["passed"] and r.checks["violations"] == []
    assert r.checks["comparisons"] >= 2
    assert learned > 0.2  # it learned MNIST (10 classes): the equality is not two zeros


def check_naive_forgets_on_the_domain_stream(outcome):
    r = _result(outcome, "naive")
    assert r.acc_matrix[0][0] > 0.3  # learned the first task...
    assert r.forgetting > 0.0  # ...and lost some of it to the second (Avalanche's StreamForgetting)
    assert r.acc_matrix[1][0] < r.acc_matrix[0][0]
    assert r.bwt == pytest.approx(-r.forgetting)


def check_lwf_runs_the_whole_stream(outcome):
    r = _result(outcome, "lwf")
    assert len(r.acc_matrix) == 2 and all(v is not None for v in r.acc_matrix[1])
    assert r.acc_matrix[0][1] is None  # not evaluated before it was learned


def check_baselines_train_on_subtunings_schedule_and_pick_on_validation(outcome, stream, backbone):
    from forkpoint.learner.train import schedule
    from forkpoint.scenarios.baselines import train_val

    cfg = CONFIG.baseline()
    n_train = [len(train_val(t, backbone, cfg)[0][1]) for t in stream.tasks]
    budget = [schedule(cfg.recipe.train, n)[0] for n in n_train]  # SubTuning's final training: epochs or the step floor
    assert budget[0] >= cfg.recipe.train.min_steps > 0
    for name in ("naive", "lwf"):
        sel = _result(outcome, name).selection
        assert len(sel["steps_per_task"]) == 2
        assert all(0 < s <= b for s, b in zip(sel["steps_per_task"], budget))  # the budget, or fewer on early stopping
        history = sel["val_history"]
        assert all(h and h[-1]["step"] == s for h, s in zip(history, sel["steps_per_task"]))
        assert all(0.0 <= v["val_acc"] <= 1.0 for h in history for v in h)
    lwf = _result(outcome, "lwf").selection
    assert [t["setting"] for t in lwf["trials"]] == [{"alpha": 1.0, "temperature": 2.0}, {"alpha": 2.0, "temperature": 1.0}]
    best = max(lwf["trials"], key=lambda t: t["mean_val_acc"])
    assert lwf["chosen"] == best["setting"] and len(best["val_acc"]) == 2
    assert "trials" not in _result(outcome, "naive").selection  # nothing to pick
    assert _result(outcome, "lwf").search_seconds > 0


def check_costs_say_what_each_strategy_stores(outcome, lite0_32):
    sub, naive = _result(outcome, "subtuning"), _result(outcome, "naive")
    trunk_params = sum(p.numel() for p in lite0_32.parameters())
    assert all(p == trunk_params + 1280 * 10 + 10 for p in naive.trainable_params)  # whole trunk + head
    assert all(0 < p < trunk_params for p in sub.trainable_params)  # a few blocks + head
    assert all(b > 1280 * 10 * 4 for b in sub.stored_bytes)  # a branch is more than a head
    head_bytes = (1280 * 10 + 10) * 4
    assert naive.stored_bytes == [pytest.approx(head_bytes, abs=64)] * 2  # a head per task on the shared (overwritten) trunk
    assert sub.serving_bytes == pytest.approx(sum(sub.stored_bytes) + naive.serving_bytes - sum(naive.stored_bytes))
    for r in outcome.results:
        assert len(r.train_seconds) == 2 and all(s > 0 for s in r.train_seconds)
        assert r.infer_ms_per_image > 0


def check_reports_and_heatmaps_are_written(outcome):
    folder = outcome.folder
    report = json.loads((folder / "report.json").read_text())
    assert report["status"] == "done" and report["run_id"] == outcome.run_id
    assert [r["strategy"] for r in report["results"]] == ["subtuning", "naive", "lwf"]
    assert report["results"][0]["forgetting"] == 0.0
    md = (folder / "report.md").read_text()
    assert "| subtuning |" in md and "| naive |" in md and "forgetting" in md
    for name in ("subtuning", "naive", "lwf"):
        with Image.open(folder / f"heatmap-{name}.png") as img:
            assert img.format == "PNG" and img.size[0] > 100
    assert json.loads((folder / "run.json").read_text())["status"] == "done"
