"""Class-incremental figures: predicting without a task name, on the four built-in domains, stage by stage.

    nice -n 10 .venv/bin/python -m forkpoint.benchmarks.agnostic_bench            # print the results
    nice -n 10 .venv/bin/python -m forkpoint.benchmarks.agnostic_bench --publish  # + results file, docs page, PNG

One fresh home at 32 px on the embedded real Lite0 trunk. The built-in datasets (mnist,
fashion, animals, digits: what scenarios' domain stream uses) are added one after another
through the real ``add_task_version(..., agnostic=True)`` (train 100 / validation 15 /
test 100 images per class by default; branches head-only unless ``--branch``, to keep the
run within minutes). After the last task, every stage (head version) is scored on the
test images of its tasks: the agnostic ridge head, NCM, routing + branch, and the
task-incremental accuracy of each task's own branch, all on the same images. The run also
checks that every earlier task's test logits are bit-identical to what they were when it
was added, and rebuilds the last head from its stored statistics in reversed task order.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from forkpoint.contract.atomic import write_json
from forkpoint.contract.docblock import publish_block

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "agnostic"
PAGE = ROOT / "docs" / "agnostic.md"
BEGIN, END = "<!-- agnostic:figures:begin (written by `python -m forkpoint.benchmarks.agnostic_bench --publish`; do not edit) -->", \
    "<!-- agnostic:figures:end -->"
DATASETS = ("mnist", "fashion", "animals", "digits")


def _test_inputs(home, data) -> tuple[torch.Tensor, torch.Tensor]:
    from forkpoint.learner.data import to_input

    spec = home.backbone.preprocessing
    test = data.task_data.test
    return to_input(test.images, spec.resolution, spec.mean, spec.std), torch.as_tensor(test.labels).long()


def _order_check(home, record) -> float:
    """Max |dW| between the stored head and one rebuilt from the same statistics in reversed member order."""
    from forkpoint.learner.agnostic import AgnosticHead, HeadConfig, TaskStatistics, projection
    from forkpoint.registry.heads import load_stats

    cfg = HeadConfig.from_dict(record.config)
    proj = projection(home.backbone.num_features, cfg.dim, cfg.seed)
    members = [(m.task, TaskStatistics.from_tensors(load_stats(home.registry, m))) for m in record.members]
    fwd, rev = AgnosticHead.build(members, proj, cfg), AgnosticHead.build(members[::-1], proj, cfg)
    cols = {c: j for j, c in enumerate(rev.classes)}
    back = rev.weights[:, [cols[c] for c in fwd.classes]]
    assert fwd.selection.lam == rev.selection.lam, "lambda depends on the order"
    return float((fwd.weights - back).abs().max())


def run(args: argparse.Namespace) -> dict:
    from forkpoint.benchmarks.machine import machine_info
    from forkpoint.contract.branch import parse_range
    from forkpoint.learner import add_task_config
    from forkpoint.registry.heads import head_versions
    from forkpoint.learner.agnostic import METHOD
    from forkpoint.workflows import add_task_version, init_home, load_task_data
    from forkpoint.workflows.agnostic_eval import score_live, score_stage, summary

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    home = init_home(Path(args.home), resolution=args.resolution).home
    branch = parse_range(args.branch, home.record.num_blocks)
    tasks, inputs, at_add, timings = [], {}, {}, {}
    for name in args.datasets:
        data = load_task_data(name, Path(args.data_root), limit=args.per_class, resolution=args.resolution,
                              val_limit=args.val_per_class, seed=args.seed)
        t0 = time.perf_counter()
        added = add_task_version(home, name, data, add_task_config(epochs=args.epochs, patience=0, branch=branch, seed=args.seed),
                                 agnostic=True)
        timings[name] = round(time.perf_counter() - t0, 1)
        inputs[name] = _test_inputs(home, data)
        with torch.no_grad():
            at_add[name] = added.live.model(inputs[name][0], tasks=[name])[name].clone()
        tasks.append({"task": name, "classes": len(data.class_names), "sizes": data.sizes, "add_seconds": timings[name],
                      "val_acc": added.version.metrics.get("val_acc"), "test_acc": added.version.metrics.get("test_acc"),
                      "branch": added.version.branch, "head_version": added.head.version,
                      "lambda": added.head.config["lambda"]})
    from forkpoint.workflows.live import load_live_model

    live = load_live_model(home)
    with torch.no_grad():
        identical = {t: bool(torch.equal(live.model(inputs[t][0], tasks=[t])[t], at_add[t])) for t in inputs}
    scored = {t: score_live(live, x, y) for t, (x, y) in inputs.items()}
    records = head_versions(home.registry, home.fingerprint, METHOD)
    stages = [score_stage(home, rec, scored) for rec in records]
    stats_bytes = sum(len(home.registry.store.get(m.stats_sha256)) for m in records[-1].members)
    result = {
        "what": "class-incremental (no task name) vs task-incremental accuracy on the built-in domains, stage by stage",
        "method": METHOD, "head": {k: v for k, v in records[-1].config.items() if k != "val_mse"},
        "val_mse_last": records[-1].config.get("val_mse"),
        "settings": {"resolution": args.resolution, "per_class": args.per_class, "val_per_class": args.val_per_class,
                     "test_per_class": args.per_class, "branch": args.branch, "epochs": args.epochs, "seed": args.seed,
                     "datasets": list(args.datasets), "threads": args.threads},
        "tasks": tasks, "stages": [s.to_dict() for s in stages], "summary": summary(stages),
        "checks": {"branch_logits_bit_identical": identical,
                   "reversed_order_max_abs_weight_diff": _order_check(home, records[-1])},
        "stats_bytes_per_task": stats_bytes // max(len(records[-1].members), 1) if stats_bytes else None,
        "seconds": round(time.perf_counter() - started, 1), "machine": machine_info(torch.device("cpu")),
    }
    home.close()
    return result


def plot(result: dict, path: Path) -> Path:
    """Accuracy per stage for each way of answering (x: tasks learnt so far)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forkpoint.learner.figures import save_figure

    labels = {"agnostic": "agnostic head (RanPAC ridge)", "ncm": "NCM (SimpleCIL)", "routing": "predict --route + branch",
              "task_incremental": "task given (own branch)"}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    x = list(range(1, len(result["stages"]) + 1))
    for way, label in labels.items():
        ys = [s["accuracy"][way] for s in result["stages"]]
        ax.plot(x, [100 * y if y is not None else float("nan") for y in ys], marker="o", label=label,
                linestyle="--" if way == "task_incremental" else "-")
    ax.set_xticks(x, [f"+{s['tasks'][-1]}\n({len(s['tasks'])} tasks)" for s in result["stages"]], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"{result['settings']['resolution']} px, {result['settings']['per_class']} images/class: accuracy after each task", fontsize=9)
    return save_figure(fig, path)


def block(result: dict) -> str:
    """The docs page's generated block: the table of stages and the summary."""
    s, st = result["settings"], result["summary"]
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    m = result["machine"]
    lines = [f"Measured by `python -m forkpoint.benchmarks.agnostic_bench --publish` on {m['host_cpu']} ({m['torch_threads']} torch "
             f"thread(s), load {m.get('load_avg_1m_at_start', '?')} at start), {m['date'][:10]}, commit {m['git_commit']}: "
             f"{s['resolution']} px, {s['per_class']} training / {s['val_per_class']} validation / {s['test_per_class']} test images "
             f"per class, branches `{s['branch']}`, {result['seconds']:.0f} s in all. Head: {result['head']['dim']} random features, "
             f"ridge λ = {result['head']['lambda']:g} chosen on validation MSE. "
             f"Results: [benchmarks/results/agnostic/cpu.json](../benchmarks/results/agnostic/cpu.json).", "",
             "| after adding | tasks | test images | agnostic head | NCM | routing + branch | task given (own branch) |",
             "|---|---|---|---|---|---|---|"]
    for stage in result["stages"]:
        a = stage["accuracy"]
        lines.append(f"| {stage['tasks'][-1]} | {len(stage['tasks'])} | {stage['images']} | {pct(a['agnostic'])} | {pct(a['ncm'])} | "
                     f"{pct(a['routing'])} | {pct(a['task_incremental'])} |")
    for what in ("average", "last"):
        lines.append(f"| **{what}** | | | **{pct(st['agnostic'][what])}** | {pct(st['ncm'][what])} | {pct(st['routing'][what])} | "
                     f"{pct(st['task_incremental'][what])} |")
    checks = result["checks"]
    lines += ["", f"Every earlier task's test logits after the last add were bit-identical to those when it was added: "
              f"{'yes' if all(checks['branch_logits_bit_identical'].values()) else 'NO'} "
              f"({', '.join(f'{t}: {v}' for t, v in checks['branch_logits_bit_identical'].items())}). The last head rebuilt from the "
              f"same statistics in reversed task order differs by at most {checks['reversed_order_max_abs_weight_diff']:.1e} in any "
              f"weight (same λ). Statistics stored per task: {(result['stats_bytes_per_task'] or 0) / 2**20:.1f} MiB.", "",
              "![accuracy per stage](../benchmarks/results/agnostic/stages.png)"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=ROOT / "data")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--per-class", type=int, default=100, help="training (and test) images per class")
    ap.add_argument("--val-per-class", type=int, default=15)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--branch", default="probe", help="branch of every task (probe = head only, fastest)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--home", type=Path, help="home to build (default: a temporary folder)")
    ap.add_argument("--publish", action="store_true", help="write benchmarks/results/agnostic/cpu.json, stages.png and docs/agnostic.md's block")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fp-agnostic-") as tmp:
        args.home = args.home or Path(tmp) / "home"
        result = run(args)
    print(json.dumps(result["summary"], indent=2))
    if args.publish:
        write_json(RESULTS / "cpu.json", result)
        plot(result, RESULTS / "stages.png")
        publish_block(PAGE, BEGIN, END, block(result))
        print(f"wrote {RESULTS / 'cpu.json'}, {RESULTS / 'stages.png'} and {PAGE}")


if __name__ == "__main__":
    main()
