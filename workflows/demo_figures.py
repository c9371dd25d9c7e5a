"""The README's demo figures, written by the demo itself (``forkpoint demo --publish``), never typed.

``summary`` turns a finished demo into a JSON-ready record (machine, time, per-task
accuracy, branch and cost); ``render`` turns that record into the README paragraph; and
``publish`` writes the record to ``benchmarks/results/demo/cpu.json`` and replaces the
paragraph between the README's ``demo:figures`` markers.
"""

from __future__ import annotations

import json
from pathlib import Path

from forkpoint.contract.docblock import publish_results

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "demo" / "cpu.json"
README = REPO / "README.md"
BEGIN, END = "<!-- demo:figures:begin (written by `forkpoint demo --publish`; do not edit) -->", "<!-- demo:figures:end -->"


def summary(result, resolution: int, load_at_start: float | None = None) -> dict:
    """What the README says about a demo run, from the run alone (``load_at_start``: the 1-minute
    load average read before the run, so a reader sees whether the cores were idle)."""
    import torch

    from forkpoint.benchmarks.machine import machine_info
    from forkpoint.workflows.render import branch_label

    info = machine_info(torch.device("cpu"))
    tasks = []
    for s in result.steps:
        r, v = s.added.report, s.added.version
        tasks.append({"task": s.task.name, "test_acc": r.test_acc, "val_acc": r.val_acc, "branch": branch_label(v),
                      "probe": v.units.is_probe, "adds_pct": round(result.marginal_cost_pct[s.task.name], 1),
                      "seconds": round(s.seconds, 1), "sizes": r.split_sizes})
    machine = {k: info.get(k) for k in ("date", "host_cpu", "cpu_count", "torch_threads", "torch", "git_commit")}
    if load_at_start is not None:
        machine["load_avg_1m_at_start"] = round(load_at_start, 2)
    return {"machine": machine,
            "resolution": resolution, "seconds": round(result.seconds, 1), "total_cost_pct": round(result.total_cost_pct, 1),
            "tasks": tasks}


def render(rec: dict) -> str:
    """The README paragraph for one demo record."""
    m, tasks = rec["machine"], rec["tasks"]
    accs = ", ".join(f"{100 * t['test_acc']:.1f}% ({t['task']})" for t in tasks)
    branches = ", ".join(f"{t['task']} {t['branch']} (+{t['adds_pct']:.1f}%)" for t in tasks)
    n = len(tasks)
    load = f", load {m['load_avg_1m_at_start']:.1f} at start" if m.get("load_avg_1m_at_start") is not None else ""
    return (f"Measured by `forkpoint demo --publish` on {m['cpu_count']} CPU cores ({m['host_cpu']}, "
            f"{m['torch_threads']} torch thread(s){load}, {m['date'][:10]}, commit {m['git_commit']}), {rec['resolution']} px: "
            f"{rec['seconds']:.0f} s in all; test accuracy {accs}. Branches and what each adds to the shared pass: "
            f"{branches}. Serving all {n} tasks in one shared pass costs {rec['total_cost_pct']:.1f}% of one trunk pass "
            f"({n} separate models: {100 * n}%); one task alone costs exactly one pass. "
            f"Figures: [benchmarks/results/demo/cpu.json](benchmarks/results/demo/cpu.json).")


def publish(rec: dict, results: Path = RESULTS, readme: Path = README) -> None:
    """Write the record and regenerate the README paragraph from it (refused before writing from a dirty checkout)."""
    publish_results(results, json.dumps(rec, indent=1) + "\n", readme, BEGIN, END, render(rec))
