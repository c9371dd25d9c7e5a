"""Hypothesis state machine: add / promote / rollback / stale add / orphan / gc / verify in any order.

After every step: each live pointer names an existing version whose file exists and that
loads (sha256, seal, add event, file names all check); the audit chain verifies; every
version ever returned is unchanged. gc runs with the age floor off (no writer is in
flight here), so it would delete anything it wrongly thinks unreferenced.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlmodel import Session, select

from forkpoint.registry import Registry, UnknownTaskError, UnknownVersionError, chain, claims
from forkpoint.registry.models import AuditEvent

sys.path.insert(0, str(Path(__file__).parent))  # as registry_worker.py does: the sample drafts live there
from conftest import Sample  # noqa: E402

TASKS = st.sampled_from(["pets", "birds"])


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.floor, claims.FLOOR_S = claims.FLOOR_S, 0.0
        self.dir = Path(tempfile.mkdtemp(prefix="fp-stateful-"))
        self.reg = Registry.open(self.dir / "home")
        self.sample = Sample(self.reg)
        self.sample.backbone()
        self.seen: dict[tuple[str, int], dict] = {}  # every version as first returned, minus `live`
        self.live: dict[str, int] = {}
        self.ever_live: dict[str, list[int]] = {}
        self.seed = 0

    def teardown(self) -> None:
        self.reg.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        claims.FLOOR_S = self.floor

    def _versions(self, task: str) -> list[int]:
        return sorted(v for t, v in self.seen if t == task)

    def _record(self, rec) -> None:
        d = rec.to_dict()
        d.pop("live")
        self.seen[(rec.task, rec.version)] = d
        if rec.live:
            self.live[rec.task] = rec.version
            self.ever_live.setdefault(rec.task, []).append(rec.version)

    @rule(task=TASKS, promote=st.booleans())
    def add(self, task: str, promote: bool) -> None:
        self.seed += 1
        rec = self.reg.add_version(task, self.sample.draft(seed=self.seed), promote=promote)
        assert rec.version == len(self._versions(task)) + 1 and rec.live == promote
        self._record(rec)

    @rule(task=TASKS)
    def add_after_someone_moved_live(self, task: str) -> None:
        """An add that started from another live version: registered staged, the pointer stays."""
        self.seed += 1
        stale = self.live.get(task, 0) + 100
        rec = self.reg.add_version(task, self.sample.draft(seed=self.seed), expect_live=stale)
        assert not rec.live and rec.status == "staged"
        self._record(rec)

    @precondition(lambda self: self.seen)
    @rule(data=st.data())
    def promote(self, data: st.DataObject) -> None:
        task, version = data.draw(st.sampled_from(sorted(self.seen)))
        self.reg.promote(task, version)
        self.live[task] = version
        self.ever_live.setdefault(task, []).append(version)

    @rule(task=TASKS)
    def rollback(self, task: str) -> None:
        current = self.live.get(task)
        earlier = [v for v in self.ever_live.get(task, []) if current is not None and v < current]
        if not earlier:
            with pytest.raises((UnknownTaskError, UnknownVersionError)):  # nothing to roll back to
                self.reg.rollback(task)
            return
        rec = self.reg.rollback(task)
        assert rec.version == max(earlier)
        self.live[task] = rec.version
        self.ever_live[task].append(rec.version)

    @rule(content=st.binary(min_size=1, max_size=32))
    def orphan(self, content: bytes) -> None:
        self.reg.store.put(content)

    @rule()
    def gc(self) -> None:
        deleted = self.reg.gc(min_age_s=0)
        used = {rec["weights_sha256"] for rec in self.seen.values()}
        assert not {self.reg.store.digest_of(k) for k in deleted} & used

    @rule()
    def verify(self) -> None:
        report = self.reg.verify()
        assert report.ok, report.problems

    @invariant()
    def live_versions_exist_and_load(self) -> None:
        for task, version in self.live.items():
            rec = self.reg.show(task)
            assert rec.version == version and self.reg.store.exists(rec.weights_sha256)
            self.reg.load_tensors(task)  # refuses unless the seal, add event and file names check
        assert sorted(r.task for r, _ in self.reg.live()) == sorted(self.live)

    @invariant()
    def chain_verifies(self) -> None:
        with Session(self.reg.engine) as s:
            walked = chain.walk(s.exec(select(AuditEvent).order_by(AuditEvent.id)).all())
        assert walked.problems == []

    @invariant()
    def versions_are_immutable(self) -> None:
        for (task, version), then in self.seen.items():
            now = self.reg.show(task, version).to_dict()
            now.pop("live")
            assert now == then


RegistryMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=8, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRegistryStateful = RegistryMachine.TestCase
