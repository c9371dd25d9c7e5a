"""PNG figures of a results dict (matplotlib, Agg backend): one file per section."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from forkpoint.learner.figures import save_figure  # noqa: E402

METHOD_COLORS = {"subtuning": "tab:orange", "subtuning-late": "tab:brown", "linear-probe": "tab:blue", "lora": "tab:green",
                 "full-ft": "tab:red"}


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path)


def _regime_order(regimes) -> list[str]:
    return sorted(set(regimes), key=lambda x: (x == "all", int(x.split("/")[0]) if x != "all" else 0))


def plot_accuracy(result: dict, path: Path) -> Path:
    summary = result["summary"]
    panels = result["tasks"] + ["mean"]
    regimes = _regime_order(r["regime"] for r in summary)
    timed = any(r.get("phases") for r in result["rows"])
    fig, axes = plt.subplots(1, len(panels) + timed, figsize=(3.6 * (len(panels) + timed), 3.6), squeeze=False, sharey=False)
    if timed:
        _plot_phases(axes[0][-1], result["rows"], regimes)
    for ax, task in zip(axes[0], panels):
        for method in result["methods"]:
            pts = {r["regime"]: r for r in summary if r["task"] == task and r["method"] == method}
            xs = [i for i, g in enumerate(regimes) if g in pts]
            if not xs:
                continue
            ys = [100 * pts[regimes[i]]["mean"] for i in xs]
            es = [100 * pts[regimes[i]]["std"] for i in xs]
            ax.errorbar(xs, ys, yerr=es, marker="o", ms=4, capsize=3, label=method, color=METHOD_COLORS.get(method))
        ax.set_xticks(range(len(regimes)), regimes, fontsize=8)
        ax.set_title("mean over tasks" if task == "mean" else task)
        ax.set_xlabel("training images")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][len(panels) - 1].legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _plot_phases(ax, rows: list[dict], regimes: list[str]) -> None:
    """Stacked bars: SubTuning's add-task seconds by phase, beside full finetuning's seconds, per regime."""
    from forkpoint.benchmarks.sections.accuracy import PHASES, phase_means

    colors = plt.get_cmap("tab10").colors
    for i, regime in enumerate(regimes):
        means = phase_means(rows, regime)
        bottom = 0.0
        for j, p in enumerate(p for p in PHASES if p != "test"):
            v = means.get(p, 0.0)
            ax.bar(i - 0.2, v, 0.4, bottom=bottom, color=colors[j % 10], label=p if i == 0 else None)
            bottom += v
        full = [r["seconds"] for r in rows if r["regime"] == regime and r["method"] == "full-ft"]
        if full:
            ax.bar(i + 0.2, sum(full) / len(full), 0.4, color=METHOD_COLORS["full-ft"], label="full FT" if i == 0 else None)
    ax.set_xticks(range(len(regimes)), regimes, fontsize=8)
    ax.set_title("seconds per task: add-task phases | full FT")
    ax.set_xlabel("training images")
    ax.legend(fontsize=6, loc="upper left")
    ax.grid(alpha=0.3, axis="y")


def plot_cost(result: dict, path: Path) -> Path:
    d, b, ft, lp, br = (result[k] for k in ("add_task_default", "add_task_budget", "full_ft", "linear_probe", "branch_alone"))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    labels = ["add_task\n(all units)", "add_task\n(budget units)", "branch\nalone", "linear\nprobe", "full\nfinetuning"]
    profile = [d["timings"]["profile_s"], b["timings"]["profile_s"], 0, 0, 0]
    select = [d["timings"]["select_s"], b["timings"]["select_s"], 0, 0, 0]
    train = [d["timings"]["train_s"], b["timings"]["train_s"], br["seconds"], lp["seconds"], ft["seconds"]]
    xs = range(len(labels))
    ax.bar(xs, profile, label="profile", color="tab:purple")
    ax.bar(xs, select, bottom=profile, label="select", color="tab:pink")
    ax.bar(xs, train, bottom=[p + s for p, s in zip(profile, select)], label="train", color="tab:gray")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"adding one task ({result['task']})")
    ax.legend(fontsize=8)
    growth, unc = result["profile_growth"], result["profile_uncached"]
    ax2.plot([g["candidates"] for g in growth], [g["seconds"] for g in growth], marker="o", label="cached")
    ax2.plot([unc["candidates"]], [unc["seconds"]], marker="s", color="tab:red", linestyle="none", label="uncached")
    ax2.set_xlabel("candidate units profiled (the last k)")
    ax2.set_ylabel("profile wall time (s)")
    ax2.set_title("profile cost vs candidates")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    return _save(fig, path)


def plot_throughput(result: dict, path: Path) -> Path:
    sizes = sorted({r["batch_size"] for r in result["rows"]})
    fig, axes = plt.subplots(1, len(sizes) + 1, figsize=(4.6 * (len(sizes) + 1), 3.8), squeeze=False)
    for ax, bs in zip(axes[0], sizes):
        rows = [r for r in result["rows"] if r["batch_size"] == bs]
        ns = [r["tasks"] for r in rows]
        for key, label, color in (("shared", "shared trunk", "tab:orange"), ("lower_bound", "lower bound", "tab:gray"),
                                  ("separate", "N separate models", "tab:red")):
            ax.plot(ns, [r["images_per_s"][key] for r in rows], marker="o", label=label, color=color,
                    linestyle="--" if key == "lower_bound" else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("tasks served per forward (N)")
        ax.set_ylabel("images / s (all N tasks answered)")
        ax.set_title(f"batch size {bs}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax = axes[0][-1]  # ratios: measured side by side, so robust to the machine's load
    for bs, marker in zip(sizes, "os^v"):
        rows = [r for r in result["rows"] if r["batch_size"] == bs]
        ns = [r["tasks"] for r in rows]
        ax.plot(ns, [r["speedup_vs_separate"] for r in rows], marker=marker, color="tab:orange", label=f"speedup vs separate, batch {bs}")
        ax.plot(ns, [r["shared_over_lower_bound_throughput"] for r in rows], marker=marker, color="tab:gray",
                label=f"shared / lower bound, batch {bs}")
    rows = [r for r in result["rows"] if r["batch_size"] == sizes[0]]
    ax.plot([r["tasks"] for r in rows], [r["flops_speedup_vs_separate"] for r in rows], linestyle=":", color="black", label="FLOPs model speedup")
    ax.axhline(0.9, color="tab:gray", linestyle="--", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks([r["tasks"] for r in rows], [str(r["tasks"]) for r in rows])
    ax.set_xlabel("tasks served per forward (N)")
    ax.set_ylabel("ratio")
    ax.set_title("ratios (targets: ≥ 0.9 lower bound, ≥ 4 at N=8)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return _save(fig, path)


def plot_storage(result: dict, path: Path) -> Path:
    rows = result["rows"]
    labels = ["probe" if r["start"] == r["stop"] else f"{r['start']}:{r['stop']}" for r in rows] + ["full"]
    vals = [r["pct_of_full_model"] for r in rows] + [100.0]
    colors = ["tab:orange" if r["chosen_by_subtuning"] else "tab:blue" for r in rows] + ["tab:red"]
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(labels) + 2), 3.6))
    ax.bar(range(len(labels)), vals, color=colors)
    ax.axhline(15, color="black", linestyle=":", label="target 15%")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("branch units (start:stop); orange = chosen by SubTuning")
    ax.set_ylabel("% of a full model's bytes")
    ax.set_title("storage per task")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_forgetting(result: dict, path: Path) -> Path:
    streams = result["subtuning"]["streams"]
    harness = (result.get("harness") or {}).get("strategies") or {}
    fig, axes = plt.subplots(1, 2 if harness else 1, figsize=(11 if harness else 6, 3.8), squeeze=False)
    ax = axes[0][0]
    labels, vals = [], []
    for st in streams:
        for t in st["tasks"]:
            labels.append(f"{t} {st['regime']} s{st['seed']}")
            vals.append(100 * (st["acc_after_add"][t] - st["acc_at_end"][t]))
    ax.bar(range(len(vals)), vals, color="tab:orange")
    ax.plot(range(len(vals)), vals, "o", color="tab:orange", ms=3)  # visible even when every bar is 0
    ax.axhline(0, color="black", linewidth=0.8)
    lim = max([1.0] + [abs(v) for v in vals])
    ax.set_ylim(-lim, lim)
    ax.set_xticks(range(len(labels)), labels, fontsize=5, rotation=90)
    ax.set_ylabel("forgetting (accuracy points)")
    ax.set_title(f"SubTuning streams: max |forgetting| {max([0.0] + [abs(v) for v in vals]):.2f} pt", fontsize=10)
    if harness:
        ax2 = axes[0][1]
        names = list(harness)
        vals2 = [100 * harness[n]["forgetting"] for n in names]
        ax2.bar(range(len(names)), vals2, color=["tab:orange" if n == "subtuning" else "tab:gray" for n in names])
        for i, v in enumerate(vals2):
            ax2.annotate(f"{v:+.1f}", (i, v), ha="center", va="bottom" if v >= 0 else "top", fontsize=8)
        ax2.axhline(0, color="black", linewidth=0.8)
        ax2.margins(y=0.15)
        ax2.set_xticks(range(len(names)), names, fontsize=8)
        ax2.set_ylabel("Avalanche stream forgetting (points)")
        ax2.set_title("same domain stream through the scenarios harness", fontsize=10)
    return _save(fig, path)


PLOTTERS = {"accuracy": plot_accuracy, "cost": plot_cost, "throughput": plot_throughput, "storage": plot_storage,
            "forgetting": plot_forgetting}


def plot_section(section: str, result: dict, out_dir: Path) -> Path:
    return PLOTTERS[section](result, Path(out_dir) / f"bench-{section}.png")
