"""Forgetting: each task's accuracy right after it was added vs after the whole stream.

Two sources, both real stream runs:
* the accuracy section's SubTuning streams (or this section's own when run alone):
  every accuracy is read through the shared all-tasks forward, every frozen tensor's
  fingerprint compared;
* the scenarios harness (``scenarios.runner.run_stream``, Avalanche): SubTuning and the
  continual-learning baselines (Naive/EWC/LwF/Replay) on the same domain stream, same
  backbone, with Avalanche's own forgetting metric.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from forkpoint.benchmarks.context import BenchContext
from forkpoint.benchmarks.datasets import sample_task
from forkpoint.benchmarks.methods import affordable_units, run_subtuning, shared_model_accuracy
from forkpoint.benchmarks.sections.accuracy import available_tasks
from forkpoint.benchmarks.settings import DOMAIN_STREAM
from forkpoint.benchmarks.stats import mean_std, regime_label
from forkpoint.benchmarks.tables import TableSpec, num, pct
from forkpoint.learner import MultiTaskModel


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


def _harness(ctx: BenchContext) -> dict:
    """SubTuning and the CL baselines through the scenarios harness on the first tasks of the domain stream."""
    try:
        from forkpoint.scenarios.runner import RunConfig, run_stream
        from forkpoint.scenarios.streams import StreamOptions, load_stream
    except ImportError as exc:
        return {"error": f"the scenarios harness is not importable ({exc}): Naive/EWC/LwF/Replay left out"}
    s, bb = ctx.settings, ctx.backbone
    n_tasks = max(2, min(len(s.tasks), len(DOMAIN_STREAM)))
    seed = s.seeds[0]
    opts = StreamOptions(per_class=s.forgetting_per_class, test_per_class=s.test_per_class, seed=seed, num_tasks=n_tasks,
                         data_root=ctx.data_root)
    stream = load_stream("domains", opts)
    n_train = s.forgetting_per_class * len(stream.tasks[0].class_names)
    cfg = RunConfig(strategies=("subtuning",) + tuple(s.cl_baselines), resolution=bb.resolution, epochs=s.train_epochs,
                    profile_epochs=s.profile_epochs, candidates=affordable_units(bb, s), max_blocks=s.max_blocks,
                    batch_size=s.batch_for(n_train), lr=s.cl_lr, seed=seed, device=str(ctx.device))
    folder = ctx.out / "scenarios" / dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    advance = ctx.step("forgetting: scenarios harness", total=1)
    outcome = run_stream(stream, cfg, folder, backbone=bb)
    advance()
    return {
        "stream": [t.name for t in stream.tasks], "per_class": s.forgetting_per_class, "seed": seed, "report": str(folder / "report.md"),
        "strategies": {
            r.strategy: {"forgetting": r.forgetting, "forgetting_per_task": r.forgetting_per_task, "final_acc": r.final_acc,
                         "avg_acc": r.avg_acc, "train_seconds": sum(r.train_seconds), "checks": r.checks,
                         "chosen": r.selection.get("chosen"), "steps_per_task": r.selection.get("steps_per_task"),
                         "search_seconds": r.search_seconds}
            for r in outcome.results
        },
    }


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
    return {
        "subtuning": {"streams": per_stream, "max_abs_forgetting": max((abs(v) for v in values), default=0.0),
                      "mean_forgetting": mean_std(values)[0] if values else float("nan"),
                      "fingerprints_moved": sorted({k for st in streams for k in st["fingerprints_moved"]})},
        "harness": _harness(ctx),
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
    h = result.get("harness") or {}
    if h.get("strategies"):
        picked = any("chosen" in r for r in h["strategies"].values())  # results since baselines pick on validation
        brow = []
        for name, r in h["strategies"].items():
            per = [v for v in r["forgetting_per_task"] if v is not None]
            check = "" if not r["checks"] else ("passed" if r["checks"].get("passed") else "FAILED")
            row = [name, pct(r["avg_acc"]), num(100 * r["forgetting"]), num(100 * max(per)) if per else "–",
                   num(r["train_seconds"], 1), check]
            if picked:
                chosen = ", ".join(f"{k}={v:g}" for k, v in (r.get("chosen") or {}).items()) or "–"
                steps = "/".join(str(n) for n in r.get("steps_per_task") or []) or "–"
                row += [chosen, steps, num(r.get("search_seconds") or 0.0, 1)]
            brow.append(row)
        head = ["strategy", "final avg acc %", "forgetting (pt, Avalanche)", "max task forgetting (pt)", "train s (all tasks)", "exact check"]
        if picked:
            head += ["setting (picked on validation)", "steps per task", "search s (settings not kept)"]
        note = f"Full report: scenarios/{Path(h['report']).parent.name}/report.md in the run's --out folder (not committed)."
        if not picked:
            note += " Measured before the Avalanche baselines trained on SubTuning's schedule (Adam for the epochs, λ = 1000, α = 1, T = 2)."
        out.append(TableSpec(
            f"Same stream through the scenarios harness (Avalanche): {' → '.join(h['stream'])}, {h['per_class']} images/class, seed {h['seed']}",
            head, brow, note=note))
    elif h.get("error"):
        out.append(TableSpec("Continual-learning baselines", ["status"], [[h["error"]]]))
    return out
