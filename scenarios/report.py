"""What a stream run reports: per-strategy results, a strategy x metric table, heatmaps.

``report.json`` holds everything (accuracy matrices, per-task costs, checks);
``report.md`` the table and the matrices; ``heatmap-<strategy>.png`` one accuracy
matrix per strategy.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from forkpoint.contract.atomic import write_json, write_text
from forkpoint.learner.figures import save_figure
from forkpoint.scenarios.class_incremental import markdown as ci_markdown
from forkpoint.scenarios.metrics import mean


@dataclass
class StrategyResult:
    strategy: str
    tasks: list[str]
    acc_matrix: list[list[float | None]]  # [after step i][experience j], None above the diagonal
    forgetting: float  # Avalanche StreamForgetting after the last step (mean over earlier tasks)
    bwt: float  # Avalanche StreamBWT after the last step
    forgetting_per_task: list[float | None]
    trainable_params: list[int]
    stored_bytes: list[int]
    serving_bytes: int
    train_seconds: list[float]
    infer_ms_per_image: float
    avalanche_acc_matrix: list[list[float]] | None = None  # Avalanche's AccuracyMatrix metric (float32)
    checks: dict = field(default_factory=dict)
    registry: list[str] = field(default_factory=list)  # task@version recorded by this run
    restored: list[str] = field(default_factory=list)  # task@version restored on resume
    class_incremental: dict = field(default_factory=dict)  # SubTuning: stages without a task name (scenarios/class_incremental.py)
    # what was picked on validation (EWC's lambda, LwF's alpha/temperature, full's rates) and the steps trained per task
    selection: dict = field(default_factory=dict)
    search_seconds: float = 0.0  # training of the settings validation did not keep (not in train_seconds)

    @property
    def final_acc(self) -> list[float | None]:
        return list(self.acc_matrix[-1]) if self.acc_matrix else []

    @property
    def avg_acc(self) -> float:
        return mean(self.final_acc)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(final_acc=self.final_acc, avg_acc=self.avg_acc)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StrategyResult":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def _fmt(v: float | None, pattern: str = "{:.3f}") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else pattern.format(v)


TABLE_HEADER = ("strategy", "avg acc", "forgetting", "BWT", "trainable params/task", "stored KB/task",
                "serving MB (all tasks)", "train s/task", "infer ms/img (all tasks)")


def table_rows(results: list[StrategyResult]) -> list[list[str]]:
    rows = []
    for r in results:
        rows.append([
            r.strategy, _fmt(r.avg_acc), _fmt(r.forgetting, "{:+.4f}"), _fmt(r.bwt, "{:+.4f}"),
            f"{mean(r.trainable_params):,.0f}", f"{mean(r.stored_bytes) / 1024:,.1f}", f"{r.serving_bytes / 2**20:,.2f}",
            _fmt(mean(r.train_seconds), "{:.1f}"), _fmt(r.infer_ms_per_image, "{:.2f}"),
        ])
    return rows


def markdown(run: dict, results: list[StrategyResult], heatmaps: dict[str, str]) -> str:
    lines = [f"# Stream run {run['run_id']}", ""]
    stream = run["stream"]
    lines.append(f"Stream **{stream['name']}**: " + " → ".join(
        f"{t['name']} ({len(t['classes'])} classes, {t['train']} train / {t['test']} test)" for t in stream["tasks"]))
    lines += ["", f"Settings: `{json.dumps(run['settings'])}`", "",
              f"Backbone: {run['backbone']['arch']} ({run['backbone']['weights_source']}) at {run['backbone']['resolution']} px, "
              f"trunk {run['backbone']['fingerprint'][:12]}", "", f"Status: **{run['status']}**", ""]
    lines.append("| " + " | ".join(TABLE_HEADER) + " |")
    lines.append("|" + "|".join("---" for _ in TABLE_HEADER) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    lines += ["", "Forgetting and BWT are Avalanche's stream metrics after the last task (forgetting > 0 means "
              "earlier tasks got worse). Accuracy is on each task's test images after the last task.", ""]
    for r in results:
        lines += [f"## {r.strategy}", ""]
        if r.strategy in heatmaps:
            lines += [f"![{r.strategy} accuracy matrix]({heatmaps[r.strategy]})", ""]
        lines.append("| after \\ on | " + " | ".join(r.tasks) + " |")
        lines.append("|---|" + "|".join("---" for _ in r.tasks) + "|")
        for i, row in enumerate(r.acc_matrix):
            lines.append(f"| {r.tasks[i]} | " + " | ".join(_fmt(v) for v in row) + " |")
        if r.checks:
            lines += ["", f"Checks: {r.checks}"]
        if r.class_incremental:
            lines += ["", *ci_markdown(r.class_incremental)]
        if r.registry or r.restored:
            lines += ["", f"Registry: recorded {', '.join(r.registry) or 'none'}; restored {', '.join(r.restored) or 'none'}"]
        lines.append("")
    return "\n".join(lines)


def heatmap(result: StrategyResult, path: Path) -> Path:
    """The accuracy matrix as a PNG (rows: after training task i; columns: evaluated on task j)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.array([[np.nan if v is None else v for v in row] for row in result.acc_matrix], dtype=float)
    n = len(result.tasks)
    fig, ax = plt.subplots(figsize=(1.3 * n + 2.2, 1.1 * n + 1.6))
    im = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
    for i in range(n):
        for j in range(n):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color="white" if m[i, j] < 0.6 else "black", fontsize=9)
    ax.set_xticks(range(n), result.tasks, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), result.tasks, fontsize=8)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("after training")
    ax.set_title(f"{result.strategy}: forgetting {_fmt(result.forgetting, '{:+.3f}')}, avg acc {_fmt(result.avg_acc)}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, path)


def write_reports(folder: Path, run: dict, results: list[StrategyResult]) -> dict[str, Path]:
    """report.json, report.md and one heatmap PNG per strategy; returns their paths."""
    folder = Path(folder)
    heatmaps = {r.strategy: heatmap(r, folder / f"heatmap-{r.strategy}.png").name for r in results if r.acc_matrix}
    write_json(folder / "report.json", {**run, "results": [r.to_dict() for r in results]})
    write_text(folder / "report.md", markdown(run, results, heatmaps))
    return {"json": folder / "report.json", "markdown": folder / "report.md",
            **{f"heatmap-{k}": folder / v for k, v in heatmaps.items()}}
