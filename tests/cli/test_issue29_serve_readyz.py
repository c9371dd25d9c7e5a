"""Issue 29: ``/readyz`` names a live pointer the server refuses to serve, instead of a plain "ready".

The follower is real; the registry's pointers and the load are stand-ins (what a failed check
raises is the loader's business, tested with real files in tests/serving): a pointer moves to a
version whose load fails, the old model keeps answering, and readiness says so until it moves back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from forkpoint.contract.errors import ForgettingError
from forkpoint.serving import follow
from forkpoint.serving.app import readiness
from forkpoint.serving.follow import Follower

FP = "f" * 64


@dataclass
class FakeRegistry:
    live: dict[str, int] = field(default_factory=lambda: {"digits": 2, "mnist": 1})

    def list_tasks(self):
        return [SimpleNamespace(name=t, backbone_fingerprint=FP, live_version=v) for t, v in self.live.items()]


@pytest.fixture
def follower(monkeypatch):
    registry = FakeRegistry()
    home = SimpleNamespace(fingerprint=FP, registry=registry)

    def load_served(home, tasks, previous=None, device="cpu", cache=None):
        if registry.live.get("digits") == 1:
            raise ForgettingError("task 'digits' v1: weights file ab/ab.safetensors is corrupt: refusing to load")
        return SimpleNamespace(versions=dict(registry.live), fingerprint=FP, fingerprints={"trunk": FP}, loaded_at=1.0,
                               moved=())

    monkeypatch.setattr(follow, "load_served", load_served)
    f = Follower(home, None, retry_s=0.0)
    f.load()
    f.registry = registry  # type: ignore[attr-defined]
    return f


def test_readyz_names_the_refused_pointer_and_clears_when_it_moves_back(follower):
    body, code = readiness(follower)
    assert code == 200 and body["status"] == "ok" and body["refused"] == []

    follower.registry.live["digits"] = 1  # a rollback onto weights that fail their checks
    assert follower.check() is False
    body, code = readiness(follower)
    assert body["versions"] == {"digits": 2, "mnist": 1}  # the verified model keeps answering
    assert body["status"] == "stale"
    assert [(r["task"], r["live_version"], r["served_version"]) for r in body["refused"]] == [("digits", 1, 2)]
    assert "corrupt" in body["refused"][0]["error"] and "digits" in body["follow"]["error"]

    follower.registry.live["digits"] = 2
    follower.check()
    body, _ = readiness(follower)
    assert body["status"] == "ok" and body["refused"] == [] and body["follow"]["error"] is None


def test_readyz_is_503_before_a_model_is_loaded():
    body, code = readiness(None)
    assert code == 503 and body["ready"] is False
