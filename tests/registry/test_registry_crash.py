"""Crash safety: SIGKILL a real child process at each named point of add_version.

Afterwards the registry must pass verify with, at most, one orphan file, and the
interrupted version must not exist in any form (row, live pointer, audit event). The
orphan stays claimed (gc leaves it alone) until the claim is stale; then gc removes it.
"""

from __future__ import annotations

import signal

import pytest
import torch

from forkpoint.registry import Registry
from forkpoint.registry.crashpoints import ENV, POINTS


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_during_add_version_leaves_a_consistent_registry(home, db_url, reg, ready, forker, point):
    ready.add("pets", seed=0)
    before = reg.history("pets")
    job = {"task": "pets", "count": 1, "seed": 1, "kwargs": ready.kwargs(1)}

    [child] = forker.run(home, db_url, [job], env={ENV: point})
    assert child["signal"] == signal.SIGKILL, f"child was not killed at {point}: {child}"
    assert child["result"] is None

    with Registry.open(home, db_url) as after:  # fresh connections, as the next command would have
        assert after.history("pets") == before
        assert [e.action for e in after.audit_events()] == ["register_backbone", "add_version"]
        report = after.verify()
        assert report.ok, report.problems
        new_object = after.store.rel(ready.file_digest("pets", 2, 1))
        expected_orphans = () if point in ("before_write", "after_claim") else (new_object,)
        assert report.orphans == expected_orphans
        assert ready.claims() == (0 if point == "before_write" else 1)  # the dead writer's claim
        assert after.gc(min_age_s=0) == []  # claimed, and younger than the floor
        ready.age_store()
        assert after.gc(min_age_s=0) == list(expected_orphans)  # stale claim: collected
        assert after.verify().orphans == () and ready.claims() == 0

        # the registry is fully usable: the next add gets the number the crashed one never took
        rec = ready.add("pets", seed=1)
        assert (rec.version, rec.live) == (2, True)
        assert torch.equal(after.load_tensors("pets")["head.weight"], ready.tensors(1)["head.weight"])
        assert after.verify().ok
