"""Multi-task inference: one shared-trunk forward for N tasks vs N separate models.

Three ways to answer N tasks for one batch, timed round-robin:
* shared: ``MultiTaskModel`` (trunk once, fork, stack the frozen tail);
* separate: N full models, one after the other;
* lower bound: the trunk up to the deepest fork once, plus each branch measured alone
  from its fork input (no fork/stack bookkeeping at all).
The FLOPs model is ``MultiTaskModel.total_cost_pct``: what one shared pass runs, in % of
one trunk pass (one pass, plus each task's units from its fork on and the tail, minus the
deepest fork's share, which the trunk's own rows no longer run).
Branch weights do not matter for timing; they fork at the units the default cost
budget allows (the last two or three, depending on resolution), cycling from the last.
"""

from __future__ import annotations

import contextlib

import torch

from forkpoint.benchmarks.context import BenchContext
from forkpoint.benchmarks.methods import affordable_units
from forkpoint.benchmarks.stats import ratio
from forkpoint.benchmarks.tables import TableSpec, num
from forkpoint.benchmarks.timing import interleaved_medians
from forkpoint.learner import Branch, MultiTaskModel
from forkpoint.learner.baselines import FullFinetune
from forkpoint.learner.train import autocast_for

NUM_CLASSES = 10


def _autocast(device: torch.device, enabled: bool):
    return autocast_for(device) if enabled else contextlib.nullcontext()


def fork_starts(affordable: range, n: int) -> list[int]:
    """Fork units of N tasks: every unit the cost budget allows, deepest first, in turn."""
    units = list(reversed(affordable))
    return [units[i % len(units)] for i in range(n)]


def run(ctx: BenchContext) -> dict:
    s, bb, device = ctx.settings, ctx.backbone, ctx.device
    nb = bb.num_blocks
    n_max = max(s.task_counts)
    units = affordable_units(bb, s)
    starts = fork_starts(range(units.start, units.stop), n_max)
    branches = [Branch.new(bb, st, nb, NUM_CLASSES, seed=i).freeze() for i, st in enumerate(starts)]
    separate = [FullFinetune(bb, NUM_CLASSES, seed=i).to(device).eval() for i in range(n_max)]
    names = [str(c) for c in range(NUM_CLASSES)]
    advance = ctx.step("throughput", total=len(s.batch_sizes) * len(s.task_counts))
    rows = []
    for bs in s.batch_sizes:
        x = torch.randn(bs, 3, bb.resolution, bb.resolution, device=device)
        for n in s.task_counts:
            model = MultiTaskModel(bb)
            for i in range(n):
                model.add(f"t{i}", branches[i], names)
            deepest = max(starts[:n])
            with torch.inference_mode(), _autocast(device, s.bf16):
                fork_inputs = {st: bb.prefix(x, st) for st in set(starts[:n])}

            def timed(fn):
                def call():
                    with _autocast(device, s.bf16):
                        return fn()
                return call

            fns = {
                "shared": timed(lambda: model(x)),
                "separate": timed(lambda: [m(x) for m in separate[:n]]),
                "trunk": timed(lambda: bb.prefix(x, deepest)),
            }
            for i in range(n):
                br, h = branches[i], fork_inputs[starts[i]]
                fns[f"branch{i}"] = timed(lambda br=br, h=h: br.logits(br.features(bb, h)))
            # small batches are cheap and noisier: more repeats
            med = interleaved_medians(fns, device, s.warmup, s.repeats * (3 if bs <= 8 else 1))
            lower = med["trunk"] + sum(med[f"branch{i}"] for i in range(n))
            rows.append({
                "batch_size": bs, "tasks": n, "fork_units": starts[:n],
                "seconds": {"shared": med["shared"], "separate": med["separate"], "lower_bound": lower, "trunk": med["trunk"],
                            "branches": [med[f"branch{i}"] for i in range(n)]},
                "images_per_s": {"shared": bs / med["shared"], "separate": bs / med["separate"], "lower_bound": bs / lower},
                "shared_over_lower_bound_throughput": ratio(lower, med["shared"]),
                "speedup_vs_separate": ratio(med["separate"], med["shared"]),
                "flops_total_pct": model.total_cost_pct(),  # one shared pass, % of one trunk pass
                "flops_marginal_pct": [model.marginal_cost_pct(f"t{i}") for i in range(n)],
                "flops_speedup_vs_separate": n * 100.0 / model.total_cost_pct(),
            })
            advance()
    forks = sorted(set(starts), reverse=True)
    return {"rows": rows, "fork_units": forks, "fork_extra_cost_pct": [round(bb.extra_cost_pct(u), 1) for u in forks],
            "max_extra_cost": s.max_extra_cost, "resolution": bb.resolution, "bf16": s.bf16}


def tables(result: dict) -> list[TableSpec]:
    out = []
    for bs in sorted({r["batch_size"] for r in result["rows"]}):
        rows = []
        for r in [r for r in result["rows"] if r["batch_size"] == bs]:
            ips = r["images_per_s"]
            total = r.get("flops_total_pct", r["tasks"] * 100.0 / r["flops_speedup_vs_separate"])  # older results: derived
            rows.append([str(r["tasks"]), num(ips["shared"], 1), num(ips["lower_bound"], 1), num(ips["separate"], 1),
                         num(r["shared_over_lower_bound_throughput"]), num(r["speedup_vs_separate"]), num(total, 1),
                         num(r["flops_speedup_vs_separate"])])
        out.append(TableSpec(
            f"Inference throughput, batch size {bs} ({result['resolution']} px{', bf16' if result['bf16'] else ''})",
            ["tasks N", "shared img/s", "lower bound img/s", "N separate img/s", "shared / lower bound", "speedup vs separate",
             "shared pass FLOPs (% of one pass)", "FLOPs speedup (model)"],
            rows, note="Images/s counts each input image once (all N tasks answered). Branches fork in turn at units "
                       + ", ".join(f"{u} ({c}% of a pass from the fork on)" for u, c in zip(result["fork_units"], result["fork_extra_cost_pct"]))
                       + f": those the default {result['max_extra_cost']:g}% budget allows; each tunes to the last unit. "
                       "One task costs one pass; each further task (forking no deeper than the others) adds its share from its fork on."))
    return out

