"""Serving many tasks: branches load when first asked for, into a cache bounded by bytes; a moved pointer
reloads only its task (everything else keeps the very same objects); `predict --task X` reads X alone."""

from __future__ import annotations

import os
import time

import pytest
import torch

from forkpoint.registry import Registry
from forkpoint.workflows.branch_cache import BranchCache, BranchLoadError, branch_key, nbytes_of
from forkpoint.workflows.home import open_home
from forkpoint.workflows.live import LiveSet, live_records, load_live_model


def test_startup_loads_nothing_and_a_request_for_one_task_loads_that_one(served_home, serve, samples, files):
    live = serve(served_home.home)
    cache = live.server.follower.cache
    assert cache.stats()["entries"] == 0  # ready, verified rows and trunk, no branch read yet
    r = live.client.post("/v1/predict", files=files(samples["digits/3_0.png"]), data={"tasks": "digits"})
    assert r.status_code == 200 and r.json()["versions"] == {"digits": 2}
    served = live.server.follower.current
    assert cache.cached(served.live.versions["digits"]) and not cache.cached(served.live.versions["mnist"])
    both = live.client.post("/v1/predict", files=files(samples["digits/3_0.png"]))
    assert both.status_code == 200 and set(both.json()["versions"]) == {"digits", "mnist"}
    assert cache.stats()["entries"] == 2


def test_a_rollback_reloads_only_the_moved_task(served_home, serve, samples, files):
    live = serve(served_home.home, poll_s=0.1)
    live.client.post("/v1/predict", files=files(samples["mnist/3_0.png"]))  # load both
    before = live.server.follower.current
    mnist = before.live.cache.get(before.live.versions["mnist"])
    with Registry.open(served_home.home) as reg:
        try:
            reg.rollback("digits", to=1, actor="test")
            live.wait_versions({"digits": 1, "mnist": 1})
            after = live.server.follower.current
            assert after.moved == ("digits",)
            assert after.live.cache.cached(after.live.versions["digits"])  # loaded and probed before the swap
            assert after.live.cache.get(after.live.versions["mnist"]) is mnist  # the same object, not a copy
            assert after.fingerprints["task:mnist"] == before.fingerprints["task:mnist"]
            assert after.fingerprints["task:digits"] != before.fingerprints["task:digits"]
        finally:
            reg.promote("digits", 2, actor="test")
    live.wait_versions({"digits": 2, "mnist": 1})


def test_the_cache_stays_within_its_budget_and_reloads_verified(served_home):
    with open_home(served_home.home) as home:
        recs = live_records(home)
        sizes = {t: nbytes_of(BranchCache(home).get(r)) for t, r in recs.items()}
        budget = max(sizes.values()) + 1  # room for one branch only
        cache = BranchCache(home, budget)
        first = cache.get(recs["digits"])
        cache.get(recs["mnist"])
        st = cache.stats()
        assert st["entries"] == 1 and st["evictions"] == 1 and st["bytes"] <= budget
        again = cache.get(recs["digits"])  # evicted: read, verified and rebuilt again, same digest
        assert again is not first and cache.digest(recs["digits"]) is not None
        torch.testing.assert_close(again.head.weight, first.head.weight, atol=0, rtol=0)
        # a pass over both tasks with room for one runs in chunks, and answers as the unbounded model does
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        bounded = LiveSet.of(home, recs, BranchCache(home, budget * 2))
        assert len(bounded._chunks(bounded.tasks)) == 2
        want = load_live_model(home).model.forward_each(x)
        got = bounded(x)
        for t in want:
            torch.testing.assert_close(got[t], want[t], atol=1e-5, rtol=0)


def test_a_tampered_branch_is_refused_when_it_is_first_loaded(served_home):
    with open_home(served_home.home) as home:
        recs = live_records(home)  # rows only: a bad file is not noticed until its task is needed
        path = home.registry.store.path(recs["mnist"].weights_sha256)
        original = path.read_bytes()
        try:
            os.chmod(path, 0o644)
            path.write_bytes(original[:-8] + bytes(8))
            live = load_live_model(home, tasks=["digits"])  # predict --task digits: mnist is never read
            assert live.tasks == ["digits"] and list(live.model.branches) == ["digits"]
            with pytest.raises(Exception) as err:
                BranchCache(home).get(recs["mnist"])
            assert "mnist" in str(err.value) and "sha256" in str(err.value).lower()
        finally:
            path.write_bytes(original)
        cache = BranchCache(home)
        branch = cache.get(recs["mnist"])
        cache._digests[branch_key(recs["mnist"])] = "0" * 64  # as if it had loaded with another digest before
        cache._entries.clear()
        with pytest.raises(BranchLoadError, match="another branch digest"):
            cache.get(recs["mnist"])


def test_add_task_leaves_the_other_tasks_stored(served_home):
    """add-task's view of the home: other tasks are never read; their fingerprint is the stored digest."""
    with open_home(served_home.home) as home:
        start = time.perf_counter()
        live = load_live_model(home, exclude={"digits"}, lazy=True)
        assert time.perf_counter() - start < 5
        assert live.tasks == ["mnist"] and live.model.branches == {}
        fps = live.model.fingerprints()
        assert fps["task:mnist"] == f"stored:{live.versions['mnist'].weights_sha256}"
        assert live.model.total_cost_pct() == pytest.approx(100.0)  # the cost model needs only the spec
        x = torch.randn(1, 3, 32, 32)
        out = live.model(x)  # a pass loads it, verified, after which it is fingerprinted from memory
        assert out["mnist"].shape == (1, 10) and list(live.model.branches) == ["mnist"]
        assert not live.model.fingerprints()["task:mnist"].startswith("stored:")


def test_a_bad_branch_fails_only_the_requests_that_need_it(served_home, serve, samples, files):
    live = serve(served_home.home)
    with Registry.open(served_home.home) as reg:
        path = reg.store.path(reg.show("mnist").weights_sha256)
    original = path.read_bytes()
    try:
        os.chmod(path, 0o644)
        path.write_bytes(original[:-8] + bytes(8))
        image = files(samples["digits/5_0.png"])
        assert live.client.post("/v1/predict", files=image, data={"tasks": "digits"}).status_code == 200
        bad = live.client.post("/v1/predict", files=image)  # every task: mnist's file fails its sha256
        assert bad.status_code == 500 and "mnist" in bad.json()["error"]
        assert live.client.post("/v1/predict", files=image, data={"tasks": "digits"}).status_code == 200
    finally:
        path.write_bytes(original)
    assert live.client.post("/v1/predict", files=files(samples["digits/5_0.png"])).status_code == 200
