"""Accuracy: SubTuning vs linear probe vs full finetuning vs LoRA vs a fixed late branch.

Every (task, data regime, seed) sample is shared by all five methods. The SubTuning
tasks of one (regime, seed) are added in stream order to one multi-task model, which
the forgetting section reads back afterwards.
"""

from __future__ import annotations

from forkpoint.benchmarks.context import BenchContext
from forkpoint.benchmarks.datasets import sample_task
from forkpoint.benchmarks.methods import (
    METHODS, SampleCaches, fixed_late_units, run_fixed_branch, run_full_finetune, run_linear_probe, run_lora,
    run_subtuning, shared_model_accuracy,
)
from forkpoint.benchmarks.stats import group, mean_std, regime_label
from forkpoint.benchmarks.tables import TableSpec, pm
from forkpoint.learner import MultiTaskModel
from forkpoint.contract.errors import DataError


def available_tasks(ctx: BenchContext) -> tuple[list[str], dict[str, str]]:
    """Stream tasks whose data loads here, and why the others were skipped."""
    ok, skipped = [], {}
    for name in ctx.settings.tasks:
        try:
            ctx.pool(name)
            ok.append(name)
        except DataError as exc:
            skipped[name] = str(exc)
    return ok, skipped


def _one_sample(ctx: BenchContext, model: MultiTaskModel, task: str, sample, regime: str) -> list[dict]:
    """All five methods on one sample; SubTuning's task stays attached to ``model``."""
    s, bb = ctx.settings, ctx.backbone
    sub = run_subtuning(model, task, sample, s)
    caches = SampleCaches(bb, sample)
    late = fixed_late_units(bb, s)
    lora = tuple(sub.trained) if sub.trained and sub.trained[0] < sub.trained[1] else late  # LoRA needs units to adapt
    # shallow to deep, so the shared prefix caches only move forward
    branch_methods = sorted(
        [
            (lora[0], lambda: run_lora(bb, sample, s, caches, *lora)),
            (late[0], lambda: run_fixed_branch(bb, sample, s, caches, *late)),
            (bb.num_blocks, lambda: run_linear_probe(bb, sample, s, caches)),
        ],
        key=lambda t: t[0],
    )
    results = [sub] + [fn() for _, fn in branch_methods] + [run_full_finetune(bb, sample, s)]
    base = {"task": task, "regime": regime, "per_class": sample.per_class, "seed": sample.seed, **sample.sizes()}
    return [{**base, **r.to_dict()} for r in results]


def run(ctx: BenchContext) -> dict:
    s, bb = ctx.settings, ctx.backbone
    tasks, skipped = available_tasks(ctx)
    rows: list[dict] = []
    streams: list[dict] = []
    combos = [(seed, regime) for regime in s.regimes for seed in s.seeds_for(regime)]
    advance = ctx.step("accuracy", total=len(combos) * len(tasks))
    for seed, per_class in combos:
        regime = regime_label(per_class)
        model = MultiTaskModel(bb)
        samples, after_add, fingerprints = {}, {}, {}
        for task in tasks:
            sample = sample_task(ctx.pool(task), per_class, s.all_cap_per_class, s.test_per_class, seed)
            rows += _one_sample(ctx, model, task, sample, regime)
            samples[task] = sample
            after_add[task] = shared_model_accuracy(model, {task: sample})[task]
            fingerprints[task] = model.fingerprints()
            advance()
        end = shared_model_accuracy(model, samples)
        final_fps = model.fingerprints()
        moved = sorted({k for fps in fingerprints.values() for k, v in fps.items() if final_fps.get(k) != v})
        streams.append({
            "seed": seed, "regime": regime, "tasks": list(tasks),
            "acc_after_add": after_add, "acc_at_end": end,
            "forgetting": {t: after_add[t] - end[t] for t in tasks},
            "fingerprints_moved": moved,
            "branches": {t: list(model.branches[t].spec.to_dict(bb.block_names)["block_names"]) for t in tasks},
        })
    return {"tasks": tasks, "skipped_tasks": skipped, "data_sources": {t: ctx.pool(t).source for t in tasks},
            "methods": list(METHODS), "rows": rows,
            "summary": summarize(rows), "streams": streams}


def summarize(rows: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (task, regime, method), plus the mean over tasks per (regime, method)."""
    out = []
    for (task, regime, method), rs in group(rows, lambda r: (r["task"], r["regime"], r["method"])).items():
        m, sd = mean_std(r["test_acc"] for r in rs)
        out.append({"task": task, "regime": regime, "method": method, "mean": m, "std": sd, "n": len(rs),
                    "seconds": mean_std(r["seconds"] for r in rs)[0],
                    "trainable_params": rs[0]["trainable_params"],
                    "branches": sorted({f"{r['start']}:{r['stop']}" for r in rs})})
    # across tasks: mean over tasks of the per-seed accuracy, std across seeds of that mean
    by_seed = group(rows, lambda r: (r["regime"], r["method"], r["seed"]))
    across = {}
    for (regime, method, seed), rs in by_seed.items():
        across.setdefault((regime, method), []).append(sum(r["test_acc"] for r in rs) / len(rs))
    for (regime, method), vals in across.items():
        m, sd = mean_std(vals)
        out.append({"task": "mean", "regime": regime, "method": method, "mean": m, "std": sd, "n": len(vals)})
    return out


PHASES = ("decode", "cache", "probe", "profile", "select", "train", "cv", "test")


def phase_means(rows: list[dict], regime: str) -> dict[str, float]:
    """Mean seconds per add_task phase over the regime's SubTuning rows (empty for results without phases)."""
    rs = [r for r in rows if r["regime"] == regime and r["method"] == "subtuning" and r.get("phases")]
    return {p: sum(r["phases"].get(p, 0.0) for r in rs) / len(rs) for p in PHASES} if rs else {}


def phase_breakdown(rows: list[dict], regimes: list[str]) -> list[list[str]]:
    out = []
    for regime in regimes:
        means = phase_means(rows, regime)
        full = [r["seconds"] for r in rows if r["regime"] == regime and r["method"] == "full-ft"]
        sub = [r["seconds"] for r in rows if r["regime"] == regime and r["method"] == "subtuning"]
        if not means or not full:
            continue
        f, a = sum(full) / len(full), sum(sub) / len(sub)
        out.append([regime, *(f"{means[p]:.1f}" for p in PHASES), f"{a:.1f}", f"{f:.1f}", f"{a / f:.2f}x"])
    return out


def lr_choices(rows: list[dict], regimes: list[str]) -> list[list[str]]:
    """Per (regime, trained baseline): how often validation chose each rate, and the search's mean seconds."""
    out = []
    for regime in regimes:
        for method in METHODS:
            rs = [r for r in rows if r["regime"] == regime and r["method"] == method and r.get("lr_trials")]
            if not rs:
                continue
            counts: dict[float, int] = {}
            for r in rs:
                counts[r["lr"]] = counts.get(r["lr"], 0) + 1
            rates = ", ".join(f"{lr:g} ×{n}" for lr, n in sorted(counts.items(), reverse=True))
            out.append([regime, method, rates, f"{sum(r['search_seconds'] for r in rs) / len(rs):.1f}"])
    return out


def _regimes_in_order(rows: list[dict]) -> list[str]:
    seen = []
    for r in rows:
        if r["regime"] not in seen:
            seen.append(r["regime"])
    return sorted(seen, key=lambda x: (x == "all", int(x.split("/")[0]) if x != "all" else 0))


def tables(result: dict) -> list[TableSpec]:
    summary = result["summary"]
    methods = result["methods"]
    regimes = _regimes_in_order(result["rows"])
    cell = {(r["task"], r["regime"], r["method"]): r for r in summary}
    out = []
    seeds_per_regime = {g: max(r["n"] for r in summary if r["regime"] == g and r["task"] != "mean") for g in regimes}
    if len(set(seeds_per_regime.values())) == 1:
        n = next(iter(seeds_per_regime.values()), 0)
        note = f"mean ± std over {n} seeds" if n > 1 else "one seed"
    else:
        note = "mean ± std over seeds (" + ", ".join(f"{g}: {n}" for g, n in seeds_per_regime.items()) + "); one seed shows no ±"
    for task in result["tasks"] + ["mean"]:
        rows = []
        for regime in regimes:
            row = [regime]
            for m in methods:
                c = cell.get((task, regime, m))
                row.append(pm(c["mean"], c["std"], c["n"]) if c else "–")
            rows.append(row)
        title = "Mean over tasks" if task == "mean" else f"{task}"
        out.append(TableSpec(f"Test accuracy (%), {title}", ["data"] + methods, rows, note=note))
    time_rows = []
    for regime in regimes:
        row = [regime]
        for m in methods:
            secs = [r["seconds"] for r in summary if r["regime"] == regime and r["method"] == m and r["task"] != "mean"]
            row.append(f"{sum(secs) / len(secs):.1f}" if secs else "–")
        time_rows.append(row)
    out.append(TableSpec("Seconds per task (mean over tasks and seeds)", ["data"] + methods, time_rows,
                         note="subtuning: the whole add_task but its test scoring (decode, prefix caches, probe, profile, select, "
                              "train with its augmented views, cross-validation); the others: training with per-epoch validation. "
                              "One CPU thread: compare within a row."))
    if breakdown := phase_breakdown(result["rows"], regimes):
        out.append(TableSpec("Where SubTuning's add-task time goes (seconds per task, mean over tasks and seeds)",
                             ["data", *PHASES, "add-task", "full FT", "ratio"], breakdown,
                             note="test: scoring the test images after the add (not in add-task's seconds); ratio: add-task over "
                                  "full finetuning, both on the same images in this run"))
    if picked := lr_choices(result["rows"], regimes):
        out.append(TableSpec("Learning rates the baselines' validation chose (runs per rate; search seconds per run)",
                             ["data", "method", "chosen rates", "search s"], picked, align_left=3,
                             note="each rate of the grid trained on the profile's short schedule and scored on validation; "
                                  "the winner then trained the full schedule (its seconds are the table above's)"))
    chosen = []
    for r in summary:
        if r["method"] == "subtuning" and r["task"] != "mean":
            chosen.append([r["task"], r["regime"], ", ".join(r["branches"]), f"{r['trainable_params']:,}", f"{r['seconds']:.1f}"])
    if chosen:
        out.append(TableSpec("Branches SubTuning chose (unit start:stop)", ["task", "data", "branches over seeds", "params (seed 0)", "add-task s"],
                             chosen, align_left=3))
    if result.get("skipped_tasks"):
        rows = [[k, v] for k, v in result["skipped_tasks"].items()]
        out.append(TableSpec("Skipped tasks", ["task", "why"], rows, align_left=2))
    return out
