#!/usr/bin/env python3
"""How well ``predict --route`` finds an image's task on the built-in domain stream.

Each of the four built-in domains (mnist, fashion, animals, digits; scenarios.streams.DOMAINS)
becomes a task whose routing record is fitted exactly as ``add-task`` fits it
(``workflows.routing.fit_routing`` on its train split, calibrated on its validation
split). Then every task's *test* images are routed among all four tasks. Reported:

* routing accuracy: share of test images sent to their own task;
* false-"none" rate: share of test images sent to no task (unlike all four);
* nearest-task accuracy: share whose nearest task is their own, ignoring the threshold;
* the confusion (true task -> routed task), and the same figures per task.

Records depend only on the frozen trunk and each task's own images, so no branch is
trained here; the label a routed image then gets is the task's own prediction. Records
are fitted one task at a time and never refitted, as in a home.

    .venv/bin/python scripts/routing-bench.py                      # 64 px, 100/20/100 per class
    .venv/bin/python scripts/routing-bench.py --out benchmarks/results/routing/cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))  # the repo root is the forkpoint package


def main() -> None:
    from forkpoint.contract.atomic import write_bytes
    from forkpoint.imagedata import limit_per_class, load_dataset
    from forkpoint.learner import load_backbone
    from forkpoint.learner.data import TaskData
    from forkpoint.scenarios.streams import DOMAINS
    from forkpoint.workflows import routing

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=ROOT / "data")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--train-per-class", type=int, default=100)
    ap.add_argument("--val-per-class", type=int, default=20)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="Write the results JSON here (e.g. benchmarks/results/routing/cpu.json).")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    bb = load_backbone(resolution=args.resolution)
    recs, tests = {}, {}
    for name in DOMAINS:
        ds = limit_per_class(load_dataset(name, root=args.data_root), args.train_per_class, seed=args.seed,
                             n_test=args.test_per_class, n_val=args.val_per_class)
        recs[name] = routing.fit_routing(bb, TaskData.from_dataset(ds), 0.15, args.seed)
        tests[name] = routing.trunk_features(bb, ds.test.images)
    proj = routing.projection(bb.num_features)
    names = list(DOMAINS)
    confusion = {t: {u: 0 for u in [*names, "none"]} for t in names}
    nearest_right = {t: 0 for t in names}
    for t in names:
        z = routing.embed(tests[t], proj)
        dist = {u: recs[u].distance(z) for u in names}
        for row in range(len(z)):
            d = {u: float(dist[u][row]) for u in names}
            confusion[t][routing.decide(d) or "none"] += 1
            nearest_right[t] += min(d, key=d.__getitem__) == t
    total = sum(len(tests[t]) for t in names)
    per_task = {t: {"images": len(tests[t]), "routed_right": confusion[t][t] / len(tests[t]),
                    "false_none": confusion[t]["none"] / len(tests[t]), "nearest_right": nearest_right[t] / len(tests[t])}
                for t in names}
    result = {
        "what": "routing among the four built-in domain tasks: each task's test images routed among all tasks",
        "method": routing.METHOD, "dim": routing.DIM, "quantile": routing.QUANTILE, "projection_seed": routing.SEED,
        "backbone": bb.arch, "resolution": args.resolution,
        "per_class": {"train": args.train_per_class, "val": args.val_per_class, "test": args.test_per_class},
        "routing_accuracy": sum(confusion[t][t] for t in names) / total,
        "false_none_rate": sum(confusion[t]["none"] for t in names) / total,
        "nearest_task_accuracy": sum(nearest_right.values()) / total,
        "images": total, "per_task": per_task, "confusion": confusion,
        "seconds": round(time.perf_counter() - started, 1), "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(args.out, (text + "\n").encode())


if __name__ == "__main__":
    main()
