"""Two processes adding versions of the same (new) task at once: distinct numbers, no lost write."""

from __future__ import annotations

import torch

PER_WORKER = 4


def test_two_processes_add_versions_of_one_task_concurrently(reg, ready, home, db_url, forker):
    seeds = [100, 200]
    jobs = [{"task": "pets", "count": PER_WORKER, "seed": s, "kwargs": ready.kwargs(0)} for s in seeds]
    children = forker.run(home, db_url, jobs)
    assert [c["exit"] for c in children] == [0, 0], [c["error"] for c in children]
    results = [c["result"] for c in children]

    numbers = [v for r in results for v, _ in r]
    assert sorted(numbers) == list(range(1, 2 * PER_WORKER + 1))  # distinct, gap-free, none lost
    for r in results:
        assert [v for v, _ in r] == sorted(v for v, _ in r)  # each writer's own versions in order

    # every write landed with the right bytes: version n holds exactly what its writer sent
    sent = {v: sha for r in results for v, sha in r}
    by_seed = {}
    for r, s in zip(results, seeds):
        for i, (v, sha) in enumerate(r):
            assert sha == ready.file_digest("pets", v, s + i)  # the file names the number it finally got
            by_seed[v] = s + i
    versions = reg.versions("pets")
    assert {v.version: v.weights_sha256 for v in versions} == sent
    for v in (versions[0], versions[-1]):
        assert torch.equal(reg.load_tensors("pets", v.version)["head.weight"], ready.tensors(by_seed[v.version])["head.weight"])
    adds = reg.audit_events(action="add_version")
    assert sorted(e.version for e in adds) == sorted(numbers)
    assert reg.get_task("pets").live_version in numbers
    report = reg.verify()
    assert report.ok, report.problems
    # a writer that lost its number to the other one wrote its file again for the next number; the first file
    # is an orphan (never referenced, never claimed once that writer moved on) that gc removes when old enough
    assert ready.claims() == 0
    ready.age_store()
    assert set(reg.gc(min_age_s=0)) == set(report.orphans)
    assert reg.verify().ok and reg.verify().orphans == () and all(reg.store.exists(v.weights_sha256) for v in versions)
