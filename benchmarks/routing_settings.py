"""Which routing-record settings route a task's own images best? Chosen on training-pool images only.

``python -m forkpoint.benchmarks.routing_settings [--publish]``: every built-in domain
(mnist, fashion, animals, digits) registered as a task; each record fitted on the
``train`` split and calibrated on the ``calibrate`` split of
:func:`~forkpoint.benchmarks.routing_ood.split_pool` (both from the datasets' *training*
pools) at the shipped quantile, for every setting of a small grid: projected dimensions,
a diagonal or an isotropic (one shared) spread, L2-normalised features or raw ones.

The rule (:func:`choose`): the highest mean share of each domain's ``select`` images
(more training-pool images, disjoint from the others) routed to its own task; settings
within :data:`TIE` of the best are tied, and a tie goes to the smaller record (fewer
dimensions), then to the shipped setting. The test split is scored for the report only:
it never chooses. ``--publish`` writes ``benchmarks/results/routing/settings.json`` and
regenerates the block in docs/routing.md.
"""

from __future__ import annotations

import time
from itertools import product
from pathlib import Path

import click

from forkpoint.benchmarks.routing_ood import SPLITS, TEST_PER_CLASS, _rates, measure_and_publish, split_features
from forkpoint.contract.docblock import REPO, git_describe
from forkpoint.workflows.routing import DIM

RESULTS = REPO / "benchmarks" / "results" / "routing" / "settings.json"
PAGE = REPO / "docs" / "routing.md"
BEGIN, END = ("<!-- routing:settings:begin (written by `python -m forkpoint.benchmarks.routing_settings --publish`; do not edit) -->",
              "<!-- routing:settings:end -->")
DIMS = (16, 32, 64, 128, 256)
TIE = 0.005  # half a point of routed-right share: closer than that is noise on 20 images per class
SHIPPED = {"dim": DIM, "isotropic": False, "normalise": True}  # what record_from_features fits by default


def grid() -> list[dict]:
    """Every setting compared: projected dims x spread x L2-normalisation."""
    return [{"dim": d, "isotropic": iso, "normalise": norm} for d, iso, norm in product(DIMS, (False, True), (True, False))]


def choose(scores: list[dict]) -> dict:
    """The setting the rule keeps from ``[{"setting": ..., "select": {"routed_right": ...}}, ...]``."""
    best = max(s["select"]["routed_right"] for s in scores)
    tied = [s for s in scores if s["select"]["routed_right"] >= best - TIE]
    return min(tied, key=lambda s: (s["setting"]["dim"], s["setting"] != SHIPPED))["setting"]


def measure(data_root: Path, resolution: int, seed: int) -> dict:
    from forkpoint.workflows.routing import QUANTILE, projection, record_from_features

    started = time.perf_counter()
    domains, feats, labels, classes, num_features = split_features(data_root, resolution, seed)
    scores = []
    for setting in grid():
        proj = projection(num_features, setting["dim"])
        recs = {d: record_from_features(feats[d]["train"], labels[d], feats[d]["calibrate"], classes[d], QUANTILE,
                                        dim=setting["dim"], isotropic=setting["isotropic"], normalise=setting["normalise"])
                for d in domains}
        scores.append({"setting": setting, **{split: _rates(recs, feats, domains, None, split, proj, setting["normalise"])
                                              for split in ("select", "test")}})
    return {"domains": domains, "grid": [s["setting"] for s in scores], "scores": scores, "chosen": choose(scores),
            "shipped": SHIPPED, "quantile": QUANTILE, "tie": TIE, "splits_per_class": SPLITS, "test_per_class": TEST_PER_CLASS,
            "resolution": resolution, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "git_commit": git_describe(), "date": time.strftime("%Y-%m-%d")}


def render(rec: dict) -> str:
    """The docs/routing.md block for one results record."""
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    rows = ["| dims | spread | L2-normalised | own task (select) | false none (select) | own task (test) | false none (test) | |",
            "|---:|---|---|---:|---:|---:|---:|---|"]
    for s in rec["scores"]:
        st, sel, test = s["setting"], s["select"], s["test"]
        mark = " ".join(m for m, on in (("**chosen**", st == rec["chosen"]), ("shipped", st == rec["shipped"])) if on)
        rows.append(f"| {st['dim']} | {'isotropic' if st['isotropic'] else 'diagonal'} | {'yes' if st['normalise'] else 'no'} | "
                    f"{pct(sel['routed_right'])} | {pct(sel['false_none'])} | {pct(test['routed_right'])} | "
                    f"{pct(test['false_none'])} | {mark} |")
    sp, ch = rec["splits_per_class"], rec["chosen"]
    same = ch == rec["shipped"]
    verdict = ("the rule keeps the shipped setting" if same else
               f"the rule picks {ch['dim']} dims, {'isotropic' if ch['isotropic'] else 'diagonal'} spread, "
               f"L2 {'on' if ch['normalise'] else 'off'}; see the text below for what ships")
    return ("Measured by `python -m forkpoint.benchmarks.routing_settings --publish` "
            f"({rec['date']}, commit {rec['git_commit']}, {rec['resolution']} px, {rec['seconds']:.0f} s): all four domains "
            f"registered, records fitted on {sp['train']} and calibrated on {sp['calibrate']} training-pool images per class "
            f"at the shipped quantile {rec['quantile']:g}; the setting is chosen on {sp['select']} more training-pool images "
            f"per class (own task routed right, the best within {100 * rec['tie']:.1f} points, then fewer dimensions, then "
            f"the shipped setting): {verdict}. The test columns ({rec['test_per_class']} test images per class) are reported, "
            "never used to choose. Figures: [benchmarks/results/routing/settings.json](../benchmarks/results/routing/settings.json)."
            "\n\n" + "\n".join(rows))


@click.command()
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=REPO / "data", show_default=True)
@click.option("--resolution", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--publish", is_flag=True, help="Write benchmarks/results/routing/settings.json and the docs/routing.md block.")
def main(data_root: Path, resolution: int, seed: int, publish: bool) -> None:
    measure_and_publish(measure, render, RESULTS, (PAGE, BEGIN, END), data_root, resolution, seed, publish)

if __name__ == "__main__":
    main()
