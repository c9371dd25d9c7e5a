"""Every generated docs block equals what its renderer makes from the committed results JSON.

A figure in the docs is only as honest as its path from a results file: a page edited by
hand, or a renderer changed without republishing, fails here. Each case is (page, begin,
end, render(json)) exactly as the publisher calls it; docs/benchmarks.md and
docs/ablation.md are rendered whole by their own functions into a temporary copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from forkpoint.contract.docblock import REPO

RESULTS = REPO / "benchmarks" / "results"


def _block(page: Path, begin: str, end: str) -> str:
    text = page.read_text()
    assert begin in text and end in text, f"{page.name} lost its generated block markers {begin} ... {end}"
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def _load(rel: str) -> dict:
    path = RESULTS / rel
    assert path.is_file(), f"{path} is missing: the page's figures have no committed source"
    return json.loads(path.read_text())


def _cases() -> list[tuple[str, Path, str, str, Callable[[], str]]]:
    from forkpoint.benchmarks import agnostic_bench, ray_bench, routing_ood, routing_settings, serving_bench, serving_scale, store_bench
    from forkpoint.workflows import demo_figures, tutorial_timing

    docs = REPO / "docs"
    return [
        ("README demo", REPO / "README.md", demo_figures.BEGIN, demo_figures.END,
         lambda: demo_figures.render(_load("demo/cpu.json"))),
        ("scale: store", docs / "scale.md", store_bench.BEGIN, store_bench.END, lambda: store_bench.table(_load("store/cpu.json"))),
        ("scale: ray", docs / "scale.md", ray_bench.BEGIN, ray_bench.END, lambda: ray_bench.table(_load("ray/cpu.json"))),
        ("serving", docs / "serving.md", serving_bench.BEGIN, serving_bench.END,
         lambda: serving_bench.render(_load("serving/cpu.json"))),
        ("serving: scale", docs / "serving.md", serving_scale.BEGIN, serving_scale.END,
         lambda: serving_scale.render(_load("serving/scale.json"))),
        ("agnostic", docs / "agnostic.md", agnostic_bench.BEGIN, agnostic_bench.END,
         lambda: agnostic_bench.block(_load("agnostic/cpu.json"))),
        ("README tutorial", REPO / "README.md", tutorial_timing.BEGIN, tutorial_timing.END,
         lambda: tutorial_timing.render(_load("tutorial/cpu.json"))),
        ("routing: unknown domains", docs / "routing.md", routing_ood.BEGIN, routing_ood.END,
         lambda: routing_ood.render(_load("routing/ood.json"))),
        ("routing: settings", docs / "routing.md", routing_settings.BEGIN, routing_settings.END,
         lambda: routing_settings.render(_load("routing/settings.json"))),
    ]


@pytest.mark.parametrize("case", range(9), ids=["readme-demo", "scale-store", "scale-ray", "serving", "serving-scale", "agnostic",
                                                "readme-tutorial", "routing-ood", "routing-settings"])
def test_a_generated_block_is_its_committed_json_rendered(case):
    name, page, begin, end, render = _cases()[case]
    assert _block(page, begin, end) == render().strip("\n"), f"{name}: {page.name} differs from its results JSON rendered"


def test_the_benchmarks_page_is_its_committed_results_rendered(tmp_path):
    from forkpoint.benchmarks import report

    page = tmp_path / "benchmarks.md"
    shutil.copyfile(report.DOCS_PAGE, page)
    report.regenerate_docs(page, report.RESULTS_DIR)
    assert page.read_text() == report.DOCS_PAGE.read_text(), "docs/benchmarks.md differs from benchmarks/results/*.json rendered"


def test_the_ablation_page_is_its_committed_results_rendered():
    from forkpoint.benchmarks import ablation

    res = ablation.upgrade(json.loads(ablation.RESULTS.read_text()))
    page = ablation.published_page(res)
    assert page == ablation.PAGE.read_text(), "docs/ablation.md differs from benchmarks/results/ablation/*.json rendered"


def test_export_snippet_is_the_tested_one():
    """docs/export.md's block is code, not figures: tests/export/test_export_docs.py runs it; here, that it exists."""
    text = (REPO / "docs" / "export.md").read_text()
    assert "<!-- export:snippet:begin -->" in text and "<!-- export:snippet:end -->" in text
