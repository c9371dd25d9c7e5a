"""Crash safety: SIGKILL a real child process at each named point of add_version.

Afterwards the registry must pass verify with, at most, one orphan file (which gc
removes), and the interrupted version must not exist in any form (row, live pointer,
audit event).
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
        new_object = after.store.rel(_digest_of(ready.tensors(1)))
        expected_orphans = () if point == "before_write" else (new_object,)
        assert report.orphans == expected_orphans
        assert after.gc(min_age_s=0) == list(expected_orphans)
        assert after.verify().orphans == ()

        # the registry is fully usable: the next add gets the number the crashed one never took
        rec = ready.add("pets", seed=1)
        assert (rec.version, rec.live) == (2, True)
        assert torch.equal(after.load_tensors("pets")["head.weight"], ready.tensors(1)["head.weight"])


def _digest_of(tensors) -> str:
    from forkpoint.registry.codec import encode, sha256

    return sha256(encode(tensors))
