"""Every committed CPU run side by side: how each recipe change moved SubTuning against the alternatives.

The benchmarks page shows each results file in full; this one table puts their headline
figures next to each other (mean test accuracy over the stream's tasks, per regime and
method, and the add-task time over full finetuning's), so a rerun is read against the run
it replaced without scrolling between blocks. Everything is computed from the files.
"""

from __future__ import annotations

from pathlib import Path

from forkpoint.benchmarks.tables import TableSpec, pct
from forkpoint.benchmarks.targets import regime_size, time_ratios

# what each kept run was; the newest (cpu.json) is the shipped recipe
LABELS = {
    "cpu": "shipped recipe",
    "cpu-recipe5": "recipe 5",
    "cpu-recipe3": "recipe 3",
    "cpu-before-fair-baselines": "before fair baselines",
}
METHODS = ("subtuning", "full-ft", "linear-probe", "lora", "subtuning-late")


def _order(tag: str) -> tuple[int, str]:
    return (0 if tag == "cpu" else 1, tag)


def runs_table(runs: dict[str, dict]) -> TableSpec | None:
    """One row per (run, regime); ``runs`` maps a results file's stem to its contents. None when no run has accuracy."""
    rows = []
    for tag in sorted(runs, key=_order):
        res = runs[tag]
        acc = res["sections"].get("accuracy")
        if not acc:
            continue
        means = {(r["regime"], r["method"]): r["mean"] for r in acc["summary"] if r["task"] == "mean"}
        regimes = sorted({g for g, _ in means}, key=regime_size)
        ratios = dict(time_ratios({"accuracy": acc}, acc["tasks"], regimes))
        for g in regimes:
            sub, ft = means.get((g, "subtuning")), means.get((g, "full-ft"))
            gap = f"{100 * (sub - ft):+.1f}" if sub is not None and ft is not None else "–"
            rows.append([LABELS.get(tag, tag), str(res["machine"].get("git_commit")).split(" ")[0], g,
                         *[pct(means.get((g, m))) for m in METHODS], gap,
                         f"{ratios[g]:.2f}×" if g in ratios else "–"])
    if not rows:
        return None
    return TableSpec("Runs side by side (mean test accuracy % over the stream's tasks)",
                     ["run", "commit", "data", *METHODS, "SubTuning − full FT (pt)", "add-task / full FT time"], rows,
                     note="Each run's own block below has the per-task figures, seeds and machine; the time ratio is "
                          "SubTuning's whole add-task over full finetuning's training, summed over tasks, in the same run.",
                     align_left=3)


def load_runs(results_dir: Path) -> dict[str, dict]:
    import json

    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("cpu*.json"))}
