"""Does ``predict --route`` say "none of them" for images of a domain no task was added for?

``python -m forkpoint.benchmarks.routing_ood [--publish]``: leave one built-in domain out
(mnist, fashion, animals, digits), register the other three as tasks, and route the left-out
domain's test images: each should go to no task. The routing records' only free setting, the
validation quantile their threshold sits at, is chosen on images drawn from the datasets'
*training* pools (never on a test image): the quantile rejecting the most left-out-domain
images while at most :data:`MAX_FALSE_NONE` of the registered tasks' own images are
answered "none". Each fold's
quantile is chosen on the other three folds only (nested), so the left-out domain's images
never choose the setting they are scored with; the shipped default is the choice over all
four folds. ``--publish`` writes ``benchmarks/results/routing/ood.json`` and regenerates
the block in docs/routing.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from forkpoint.contract.docblock import REPO, git_describe, publish_results, require_publishable

RESULTS = REPO / "benchmarks" / "results" / "routing" / "ood.json"
PAGE = REPO / "docs" / "routing.md"
BEGIN, END = ("<!-- routing:ood:begin (written by `python -m forkpoint.benchmarks.routing_ood --publish`; do not edit) -->",
              "<!-- routing:ood:end -->")
QUANTILES = (0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)
# The operating point: reject as many unknown-domain images as possible while at most this share of
# the tasks' own images is answered "none" (a balanced score picked the grid's lowest quantile,
# trading 14 points of the tasks' own routing for rejection: too costly for a user).
MAX_FALSE_NONE = 0.05
SPLITS = {"train": 100, "calibrate": 20, "select": 20}  # per class, disjoint, all from the training pool
TEST_PER_CLASS = 100


def _per_class(labels: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(np.flatnonzero(labels == c))[:n] for c in np.unique(labels)]


def split_pool(pool, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Disjoint train / calibrate / select images per class from the training pool, and test images."""
    rng = np.random.default_rng(seed)
    need = sum(SPLITS.values())
    chosen = _per_class(pool.labels, need, rng)
    out, at = {}, 0
    for name, n in SPLITS.items():
        idx = np.sort(np.concatenate([c[at:at + n] for c in chosen]))
        out[name] = (pool.images[idx], pool.labels[idx])
        at += n
    test = np.sort(np.concatenate(_per_class(pool.test_labels, TEST_PER_CLASS, np.random.default_rng(seed + 1))))
    out["test"] = (pool.test_images[test], pool.test_labels[test])
    return out


def _rates(records: dict, feats: dict, registered: list[str], left_out: str | None, split: str, proj,
           normalise: bool = True) -> dict[str, float]:
    """Registered domains' images routed to their own task, sent to none; the left-out domain's rejected
    (no ``ood_rejected`` when none is left out: benchmarks/routing_settings.py registers every domain)."""
    from forkpoint.workflows.routing import decide, embed

    def routed(domain: str) -> list[str | None]:
        z = embed(feats[domain][split], proj, normalise)
        dist = {t: records[t].distance(z) for t in registered}
        return [decide({t: float(dist[t][i]) for t in registered}) for i in range(len(z))]

    own = [routed(d) for d in registered]
    right = float(np.mean([np.mean([r == d for r in rs]) for d, rs in zip(registered, own)]))
    none = float(np.mean([np.mean([r is None for r in rs]) for rs in own]))
    if left_out is None:
        return {"routed_right": right, "false_none": none}
    rejected = float(np.mean([r is None for r in routed(left_out)]))
    return {"routed_right": right, "false_none": none, "ood_rejected": rejected, "balanced": (right + rejected) / 2}


def split_features(data_root: Path, resolution: int, seed: int) -> tuple[list[str], dict, dict, dict, int]:
    """Trunk features of every domain's :func:`split_pool` splits, computed once: (domains, features
    per domain and split, train labels, class counts, the trunk's feature size)."""
    import torch

    from forkpoint.benchmarks.datasets import load_pool
    from forkpoint.learner import load_backbone
    from forkpoint.scenarios.streams import DOMAINS
    from forkpoint.workflows.routing import trunk_features

    torch.set_num_threads(1)
    bb = load_backbone(resolution=resolution)
    domains = list(DOMAINS)
    feats, labels, classes = {}, {}, {}
    for d in domains:
        pool = load_pool(d, data_root)
        parts = split_pool(pool, seed)
        feats[d] = {k: trunk_features(bb, x) for k, (x, _) in parts.items()}
        labels[d] = torch.from_numpy(parts["train"][1])
        classes[d] = len(pool.class_names)
    return domains, feats, labels, classes, bb.num_features


def measure(data_root: Path, resolution: int, seed: int) -> dict:
    from forkpoint.workflows.routing import projection, record_from_features

    started = time.perf_counter()
    domains, feats, labels, classes, num_features = split_features(data_root, resolution, seed)
    proj = projection(num_features)
    recs = {q: {d: record_from_features(feats[d]["train"], labels[d], feats[d]["calibrate"], classes[d], q) for d in domains}
            for q in QUANTILES}
    folds = {}
    for out in domains:
        reg = [d for d in domains if d != out]
        folds[out] = {"select": {str(q): _rates(recs[q], feats, reg, out, "select", proj) for q in QUANTILES},
                      "test": {str(q): _rates(recs[q], feats, reg, out, "test", proj) for q in QUANTILES}}

    def best(over: list[str]) -> float:
        mean = lambda q, key: float(np.mean([folds[f]["select"][str(q)][key] for f in over]))  # noqa: E731
        ok = [q for q in QUANTILES if mean(q, "false_none") <= MAX_FALSE_NONE] or [max(QUANTILES)]
        return max(ok, key=lambda q: (mean(q, "ood_rejected"), q))

    for out in domains:
        folds[out]["chosen"] = best([f for f in domains if f != out])  # nested: never this fold's own images
    return {"domains": domains, "quantiles": list(QUANTILES), "splits_per_class": SPLITS, "test_per_class": TEST_PER_CLASS,
            "resolution": resolution, "seed": seed, "max_false_none": MAX_FALSE_NONE, "shipped": best(domains), "before": 0.99, "folds": folds,
            "seconds": round(time.perf_counter() - started, 1), "git_commit": git_describe(),
            "date": time.strftime("%Y-%m-%d")}


def render(rec: dict) -> str:
    """The docs/routing.md block for one results record."""
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    rows = ["| left-out domain (no task) | quantile chosen (other folds) | rejected at 0.99 | rejected at chosen "
            "| own tasks routed right at 0.99 | at chosen | false none at chosen |", "|---|---|---|---|---|---|---|"]
    for d in rec["domains"]:
        f = rec["folds"][d]
        old, new = f["test"][str(rec["before"])], f["test"][str(f["chosen"])]
        rows.append(f"| {d} | {f['chosen']:g} | {pct(old['ood_rejected'])} | {pct(new['ood_rejected'])} | "
                    f"{pct(old['routed_right'])} | {pct(new['routed_right'])} | {pct(new['false_none'])} |")
    mean = lambda key, which: np.mean([rec["folds"][d]["test"][str(which(d))][key] for d in rec["domains"]])  # noqa: E731
    old_q = lambda d: rec["before"]  # noqa: E731
    new_q = lambda d: rec["folds"][d]["chosen"]  # noqa: E731
    rows.append(f"| **mean** | | {pct(mean('ood_rejected', old_q))} | {pct(mean('ood_rejected', new_q))} | "
                f"{pct(mean('routed_right', old_q))} | {pct(mean('routed_right', new_q))} | {pct(mean('false_none', new_q))} |")
    sp = rec["splits_per_class"]
    return ("Measured by `python -m forkpoint.benchmarks.routing_ood --publish` "
            f"({rec['date']}, commit {rec['git_commit']}, {rec['resolution']} px, {rec['seconds']:.0f} s): each domain left out in "
            f"turn, the other three registered (records fitted on {sp['train']} and calibrated on {sp['calibrate']} training-pool "
            f"images per class), then {rec['test_per_class']} test images per class of every domain routed. The quantile is "
            f"chosen from {', '.join(f'{q:g}' for q in rec['quantiles'])} on {sp['select']} more training-pool images per "
            f"class (never a test image): the most left-out images rejected while at most {100 * rec['max_false_none']:.0f}% "
            "of the tasks' own images are answered none; for each fold on the other three folds only; "
            f"over all four folds it is **{rec['shipped']:g}**, the shipped default (`workflows.routing.QUANTILE`). "
            f"Figures: [benchmarks/results/routing/ood.json](../benchmarks/results/routing/ood.json).\n\n" + "\n".join(rows))


@click.command()
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=REPO / "data", show_default=True)
@click.option("--resolution", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--publish", is_flag=True, help="Write benchmarks/results/routing/ood.json and the docs/routing.md block.")
def main(data_root: Path, resolution: int, seed: int, publish: bool) -> None:
    measure_and_publish(measure, render, RESULTS, (PAGE, BEGIN, END), data_root, resolution, seed, publish)


def measure_and_publish(measure_fn, render_fn, results: Path, block: tuple[Path, str, str], data_root: Path,
                        resolution: int, seed: int, publish: bool) -> None:
    """Measure, print the block, and with ``publish`` write the results JSON and the docs block (clean tree only)."""
    if publish:
        require_publishable()  # before the run, once: the writes below dirty the tree
    rec = measure_fn(data_root, resolution, seed)
    if publish:
        publish_results(results, json.dumps(rec, indent=1) + "\n", *block, render_fn(rec))
    click.echo(render_fn(rec))


if __name__ == "__main__":
    main()
