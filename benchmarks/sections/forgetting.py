"""Forgetting: each task's accuracy right after it was added vs after the whole stream.

SubTuning's figure comes from real stream runs (the accuracy section's, or its own when
run alone): every accuracy is read through the shared all-tasks forward, and every
frozen tensor's fingerprint is compared. Naive / EWC / LwF / Replay on the same stream
belong to the scenarios harness (``scenarios/``); they are included when it provides them.
"""

from __future__ import annotations

import importlib

from benchmarks.context import BenchContext
from benchmarks.datasets import sample_task
from benchmarks.methods import run_subtuning, shared_model_accuracy
from benchmarks.sections.accuracy import available_tasks
from benchmarks.stats import mean_std, regime_label
from benchmarks.tables import TableSpec, num, pct
from learner import MultiTaskModel

HARNESS_HOOK = "benchmark_forgetting"  # scenarios.<hook>(settings) -> {method: {task: forgetting}}


def _own_stream(ctx: BenchContext) -> list[dict]:
    s, bb = ctx.settings, ctx.backbone
    tasks, _ = available_tasks(ctx)
    seed = s.seeds[0]
    model = MultiTaskModel(bb)
    samples, after = {}, {}
    fps = {}
    advance = ctx.step("forgetting", total=len(tasks))
    for task in tasks:
        sample = sample_task(ctx.pool(task), s.forgetting_per_class, s.all_cap_per_class, s.test_per_class, seed)
        run_subtuning(model, task, sample, s)
        samples[task] = sample
        after[task] = shared_model_accuracy(model, {task: sample})[task]
        fps.update(model.fingerprints())
        advance()
    end = shared_model_accuracy(model, samples)
    final = model.fingerprints()
    return [{"seed": seed, "regime": regime_label(s.forgetting_per_class), "tasks": tasks, "acc_after_add": after, "acc_at_end": end,
             "forgetting": {t: after[t] - end[t] for t in tasks}, "fingerprints_moved": sorted(k for k, v in fps.items() if final.get(k) != v)}]


def _harness(ctx: BenchContext) -> dict | None:
    """Baselines from the scenarios harness, when it exposes the hook (None otherwise)."""
    try:
        mod = importlib.import_module("scenarios")
    except ImportError:
        return None
    hook = getattr(mod, HARNESS_HOOK, None)
    return hook(ctx.settings) if callable(hook) else None


def run(ctx: BenchContext) -> dict:
    streams = ctx.results.get("accuracy", {}).get("streams") or _own_stream(ctx)
    values = [f for st in streams for f in st["forgetting"].values()]
    per_stream = []
    for st in streams:
        tasks = st["tasks"]
        mean_f = sum(st["forgetting"].values()) / len(tasks) if tasks else float("nan")
        per_stream.append({"seed": st["seed"], "regime": st["regime"], "tasks": tasks, "mean_forgetting": mean_f,
                           "max_abs_forgetting": max((abs(v) for v in st["forgetting"].values()), default=0.0),
                           "fingerprints_moved": st["fingerprints_moved"],
                           "acc_at_end": st["acc_at_end"], "acc_after_add": st["acc_after_add"]})
    harness = _harness(ctx)
    return {
        "subtuning": {"streams": per_stream, "max_abs_forgetting": max((abs(v) for v in values), default=0.0),
                      "mean_forgetting": mean_std(values)[0] if values else float("nan"),
                      "fingerprints_moved": sorted({k for st in streams for k in st["fingerprints_moved"]})},
        "baselines": harness,
        "baselines_note": None if harness is not None else
        "Naive/EWC/LwF/Replay come from the scenarios harness (scenarios/), which did not provide them in this run.",
    }


def tables(result: dict) -> list[TableSpec]:
    sub = result["subtuning"]
    rows = []
    for st in sub["streams"]:
        order = " → ".join(st["tasks"])
        accs = ", ".join(f"{t} {pct(st['acc_after_add'][t])}→{pct(st['acc_at_end'][t])}" for t in st["tasks"])
        rows.append([st["regime"], str(st["seed"]), order, accs, num(100 * st["mean_forgetting"]), num(100 * st["max_abs_forgetting"]),
                     str(len(st["fingerprints_moved"]))])
    out = [TableSpec("SubTuning forgetting on the stream (accuracy % right after adding → after the last task)",
                     ["data", "seed", "stream", "per task", "mean forgetting (pt)", "max |forgetting| (pt)", "frozen tensors moved"],
                     rows, align_left=4)]
    base = result.get("baselines")
    if base:
        brow = []
        for method, per_task in base.items():
            vals = list(per_task.values())
            brow.append([method, num(100 * sum(vals) / len(vals)) if vals else "–", num(100 * max(vals)) if vals else "–"])
        out.append(TableSpec("Forgetting of continual-learning baselines on the same stream (scenarios harness)",
                             ["method", "mean forgetting (pt)", "max forgetting (pt)"], brow))
    elif result.get("baselines_note"):
        out.append(TableSpec("Continual-learning baselines", ["status"], [[result["baselines_note"]]]))
    return out
