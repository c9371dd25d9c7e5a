"""The serving benchmark's parts: its baseline computes what the shared pass computes, its load generator
stops by itself, and the docs table is exactly what the published JSON renders to."""

from __future__ import annotations

import json

import torch

from forkpoint.benchmarks import serving_bench as bench


def test_separate_models_answer_as_the_shared_pass_does(served_home):
    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.live import load_live_model

    with open_home(served_home.home) as home:
        shared = load_live_model(home).model.eval()
        separate = bench.SeparateModels(shared)
        assert separate.backbone is not shared.backbone  # its own trunk: N models, N trunks
        x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        want, got = shared(x), separate(x)
        assert got.keys() == want.keys() == {"digits", "mnist"}
        for t in want:
            torch.testing.assert_close(got[t], want[t], atol=1e-5, rtol=0)


def test_the_load_generator_is_bounded(served_home, samples, serve):
    live = serve(served_home.home)
    images = [samples["digits/1_0.png"].read_bytes()]
    row = bench.drive(live.url, images, concurrency=3, seconds=30, warmup=0, max_requests=6)
    assert row["requests"] <= 6 and row["errors"] == 0 and row["seconds"] < 30
    assert row["p50_ms"] <= row["p99_ms"] and row["mean_batch_images"] >= 1
    timed = bench.drive(live.url, images, concurrency=2, seconds=0.5, warmup=0.2, max_requests=10_000)
    assert timed["seconds"] < 5 and timed["requests"] > 0


def test_the_docs_table_is_rendered_from_the_published_json():
    assert bench.RESULTS.is_file(), "the serving figures are committed: run the benchmark with --publish"
    rec = json.loads(bench.RESULTS.read_text())
    text = bench.DOC.read_text()
    block = text.split(bench.BEGIN, 1)[1].split(bench.END, 1)[0]
    assert block.strip() == bench.render(rec).strip(), "docs/serving.md was edited by hand: run the benchmark with --publish"
    assert rec["machine"]["load_avg_1m_at_start"] is not None
    assert {(r["tasks"], r["concurrency"]) for r in rec["results"]} >= {(1, 1), (1, 16), (4, 1), (4, 16)}
