"""Add-task cost, side by side on one task: SubTuning vs full finetuning vs linear probe.

Answers the learner issue's three questions in one run on the same images:
profile time with vs without prefix caching, branch training vs full finetuning for
the same epochs, and the three methods' accuracy; plus how the profile's cost grows
with the number of candidate units. Work is also counted in unit passes (images x
units run), which does not depend on how busy the machine is.
"""

from __future__ import annotations

import torch

from forkpoint.benchmarks.context import BenchContext
from forkpoint.benchmarks.datasets import sample_task
from forkpoint.benchmarks.methods import SampleCaches, affordable_units, run_fixed_branch, run_full_finetune, run_linear_probe, subtuning_config, train_config
from forkpoint.benchmarks.stats import ratio
from forkpoint.benchmarks.tables import TableSpec, num, pct
from forkpoint.contract.branch import UnitRange
from forkpoint.learner import MultiTaskModel, add_task
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.device import Stopwatch, warm_up
from forkpoint.learner.profile import run_profile


def _profile_run(ctx: BenchContext, sample, lo: int, hi: int, cached: bool) -> dict:
    """One profile over units lo..hi-1 with fresh caches (cache on or off)."""
    bb, s = ctx.backbone, ctx.settings
    data = sample.inputs(bb.resolution, bb.mean, bb.std)
    train = PrefixCache(bb, data["train"][0], ctx.device, enabled=cached)
    val = PrefixCache(bb, data["val"][0], ctx.device, enabled=cached)
    with Stopwatch(ctx.device) as sw:
        cands = run_profile(bb, range(lo, hi), (train, data["train"][1], val, data["val"][1]), sample.num_classes,
                            train_config(s, len(sample.train[1]), s.profile_epochs, sample.seed))
    return {"candidates": hi - lo, "lo": lo, "hi": hi, "cached": cached, "seconds": sw.seconds,
            "unit_passes": train.unit_passes + val.unit_passes, "best": max(c.val_acc for c in cands)}


def _tuned(blocks: list[str]) -> str:
    return "head only" if not blocks else blocks[0] if len(blocks) == 1 else f"{blocks[0]}..{blocks[-1]}"


def _report_dict(r) -> dict:
    return {"start": r.spec.start, "stop": r.spec.stop, "blocks": r.branch_dict()["block_names"], "test_acc": r.test_acc,
            "val_acc": r.val_acc, "timings": r.timings, "candidates": len(r.profile), "greedy_steps": len(r.greedy),
            "trainable_params": r.trainable_params, "extra_cost_pct": r.extra_cost_pct}


def run(ctx: BenchContext) -> dict:
    s, bb = ctx.settings, ctx.backbone
    n = bb.num_blocks
    sample = sample_task(ctx.pool(s.cost_task), s.cost_per_class, s.all_cap_per_class, s.test_per_class, seed=0)
    counts = sorted({min(k, n) for k in s.growth_counts})
    advance = ctx.step("cost", total=5 + len(counts) + 1)
    # CUDA's start-up (context, kernels, allocator) must not land in the first timed add_task
    warm_up(ctx.device, bb, torch.zeros(2, 3, bb.resolution, bb.resolution))

    n_train = len(sample.train[1])
    add_all = add_task(MultiTaskModel(bb), s.cost_task, sample.task_data(),
                       subtuning_config(s, n_train, sample.seed, candidates=UnitRange(0, n)))
    advance()
    lo = affordable_units(bb, s).start
    add_budget = add_task(MultiTaskModel(bb), s.cost_task, sample.task_data(), subtuning_config(s, n_train, sample.seed))
    advance()
    full = run_full_finetune(bb, sample, s)
    advance()
    probe = run_linear_probe(bb, sample, s, SampleCaches(bb, sample))
    advance()
    # the chosen branch trained alone from fresh caches at add_task's own rate: what "training one branch" costs
    branch = run_fixed_branch(bb, sample, s, SampleCaches(bb, sample), add_all.spec.start, add_all.spec.stop, "branch", lrs=(s.lr,))
    advance()
    growth = []
    for k in counts:
        growth.append(_profile_run(ctx, sample, n - k, n, cached=True))
        advance()
    uncached = _profile_run(ctx, sample, n - counts[-1], n, cached=False)
    advance()
    cached = growth[-1]
    return {
        "task": s.cost_task, "sizes": sample.sizes(), "profile_epochs": s.profile_epochs, "train_epochs": s.train_epochs,
        "add_task_default": _report_dict(add_all),
        "add_task_budget": {**_report_dict(add_budget), "candidate_range": [lo, n]},
        "full_ft": full.to_dict(), "linear_probe": probe.to_dict(), "branch_alone": branch.to_dict(),
        "profile_growth": growth, "profile_uncached": uncached,
        "ratios": {
            "profile_cached_over_uncached_time": ratio(cached["seconds"], uncached["seconds"]),
            "profile_cached_over_uncached_unit_passes": ratio(cached["unit_passes"], uncached["unit_passes"]),
            "branch_train_over_full_ft_time": ratio(branch.seconds, full.seconds),
            "add_task_default_over_full_ft_time": ratio(add_seconds(add_all.timings), full.seconds),
            "add_task_budget_over_full_ft_time": ratio(add_seconds(add_budget.timings), full.seconds),
            "profile_default_over_branch_train_time": ratio(add_all.timings["profile_s"], branch.seconds),
            "profile_budget_over_branch_train_time": ratio(add_budget.timings["profile_s"], branch.seconds),
        },
    }


def add_seconds(timings: dict[str, float]) -> float:
    """add_task's seconds without its test scoring, as the baselines' training seconds are counted."""
    return timings["total_s"] - timings.get("test_s", 0.0)


def tables(result: dict) -> list[TableSpec]:
    r = result["ratios"]
    d, b, ft, lp, br = result["add_task_default"], result["add_task_budget"], result["full_ft"], result["linear_probe"], result["branch_alone"]
    sz = result["sizes"]
    cmp_rows = [
        ["SubTuning, add_task (all 16 units profiled: the old default)", _tuned(d["blocks"]), pct(d["test_acc"]),
         num(d["timings"]["profile_s"], 1), num(d["timings"]["select_s"], 1), num(d["timings"]["train_s"], 1), num(add_seconds(d["timings"]), 1),
         num(add_seconds(d["timings"]) / ft["seconds"])],
        [f"SubTuning, add_task (units {b['candidate_range'][0]}..{b['candidate_range'][1] - 1} in the cost budget)", _tuned(b["blocks"]),
         pct(b["test_acc"]), num(b["timings"]["profile_s"], 1), num(b["timings"]["select_s"], 1), num(b["timings"]["train_s"], 1),
         num(add_seconds(b["timings"]), 1), num(add_seconds(b["timings"]) / ft["seconds"])],
        ["chosen branch trained alone (fresh cache)", f"units {br['start']}:{br['stop']}", pct(br["test_acc"]), "–", "–", num(br["seconds"], 1),
         num(br["seconds"], 1), num(br["seconds"] / ft["seconds"])],
        ["linear probe", "head only", pct(lp["test_acc"]), "–", "–", num(lp["seconds"], 1), num(lp["seconds"], 1), num(lp["seconds"] / ft["seconds"])],
        ["full finetuning", "all weights", pct(ft["test_acc"]), "–", "–", num(ft["seconds"], 1), num(ft["seconds"], 1), "1.00"],
    ]
    side = TableSpec(
        f"Add-task cost and accuracy on {result['task']} ({sz['train']} train / {sz['val']} val / {sz['test']} test images, "
        f"{result['profile_epochs']} profile epoch(s), {result['train_epochs']} training epochs for every method)",
        ["method", "tuned", "test acc %", "profile s", "select s", "train s", "total s", "× full FT time"], cmp_rows, align_left=2)
    unc, growth = result["profile_uncached"], result["profile_growth"]
    cache_rows = [
        ["profile time (s)", num(growth[-1]["seconds"], 1), num(unc["seconds"], 1), num(r["profile_cached_over_uncached_time"])],
        ["unit passes (images × units run)", f"{growth[-1]['unit_passes']:,}", f"{unc['unit_passes']:,}", num(r["profile_cached_over_uncached_unit_passes"])],
    ]
    cache = TableSpec(f"Prefix caching: profile of the last {growth[-1]['candidates']} units, cached vs uncached",
                      ["measure", "cached", "uncached", "cached / uncached"], cache_rows)
    grow = TableSpec("Profile cost vs number of candidate units (cached, last k units)", ["k", "seconds", "unit passes", "s per candidate"],
                     [[str(g["candidates"]), num(g["seconds"], 1), f"{g['unit_passes']:,}", num(g["seconds"] / g["candidates"])] for g in growth])
    ratios = TableSpec("Ratios", ["ratio", "value"], [[k.replace("_", " "), num(v)] for k, v in r.items()])
    return [side, cache, grow, ratios]
