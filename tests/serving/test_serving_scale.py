"""The many-tasks figures: committed, and the docs block is exactly what the committed JSON renders to."""

from __future__ import annotations

import json

from forkpoint.benchmarks import serving_scale as bench


def test_the_scale_block_is_rendered_from_the_published_json():
    assert bench.RESULTS.is_file() and bench.PLOT.is_file(), "run `python -m forkpoint.benchmarks.serving_scale --publish`"
    rec = json.loads(bench.RESULTS.read_text())
    block = bench.DOC.read_text().split(bench.BEGIN, 1)[1].split(bench.END, 1)[0]
    assert block.strip() == bench.render(rec).strip(), "docs/serving.md was edited by hand: publish again"
    assert [r["tasks"] for r in rec["results"]] == [1, 10, 100, 1000]
    assert rec["machine"]["load_avg_1m_at_start"] is not None
    for r in rec["results"]:
        assert all(r[k]["errors"] == 0 and r[k]["requests"] > 0 for k in ("one_c1", "one_c16", "all_c1", "all_c16"))
