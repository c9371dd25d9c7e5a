"""gc in a tight loop against concurrent adds: no version ever goes live without its weights file.

The operator's report: ``gc --min-age 0`` deleted a new version's file after it was renamed
into place and before its row committed. Here the hard age floor is switched off, so only
the claims and the store lock (registry/claims.py) stand between gc and the writers.
"""

from __future__ import annotations

import threading
import time

import pytest

from forkpoint.registry import Registry, claims

ADDERS = 2
PER_ADDER = 5


def test_gc_loop_never_deletes_a_file_a_concurrent_add_needs(home, db_url, reg, ready, monkeypatch):
    monkeypatch.setattr(claims, "FLOOR_S", 0.0)
    done = threading.Event()
    errors: list[BaseException] = []
    runs = [0]
    deleted: list[str] = []

    def collect() -> None:
        with Registry.open(home, db_url) as r:
            while not done.is_set():
                r.store.put(f"orphan {runs[0]}".encode())  # something for gc to delete every round
                deleted.extend(r.gc(min_age_s=0))
                runs[0] += 1
                time.sleep(0.001)

    def add(n: int) -> None:
        with Registry.open(home, db_url) as r:
            for i in range(PER_ADDER):
                # two adders on one task (renumbering), the other on its own task
                seen = runs[0]
                r.add_version("pets" if i % 2 else f"task-{n}", ready.draft(seed=100 * n + i))
                deadline = time.monotonic() + 10  # interleave however loaded the machine: a gc round between adds
                while runs[0] <= seen + 1 and time.monotonic() < deadline:
                    time.sleep(0.005)

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    gc_thread = threading.Thread(target=guarded, args=(collect,))
    adders = [threading.Thread(target=guarded, args=(add, n)) for n in range(ADDERS)]
    gc_thread.start()
    for t in adders:
        t.start()
    for t in adders:
        t.join(timeout=120)
    done.set()
    gc_thread.join(timeout=60)
    assert not errors, errors
    assert runs[0] >= PER_ADDER and deleted, "gc did not run concurrently with the adds"

    versions = [v for t in reg.list_tasks() for v in reg.versions(t.name)]
    assert len(versions) == ADDERS * PER_ADDER
    for v in versions:
        assert reg.store.exists(v.weights_sha256), f"{v.ref} lost its weights file"
        reg.load_tensors(v.task, v.version)  # seal, add event, file names: all intact
    assert [r.task for r, _ in reg.live()] == [t.name for t in sorted(reg.list_tasks(), key=lambda t: t.created_at)]
    report = reg.verify()
    assert report.ok, report.problems
    assert ready.claims() == 0  # every claim was released with its row (or after a lost number)


@pytest.mark.parametrize("min_age", [0, 30])
def test_gc_never_deletes_a_claimed_or_young_object(reg, ready, min_age):
    """A claimed object survives gc whatever its age, an unclaimed one younger than the floor too."""
    from datetime import datetime, timedelta, timezone

    import sqlalchemy as sa

    from forkpoint.registry.models import ObjectClaim

    claimed_sha = reg.store.put(b"a file an add in flight is about to reference")
    young_sha = reg.store.put(b"an unreferenced file written just now")
    with reg.engine.begin() as c:
        c.execute(sa.insert(ObjectClaim).values(sha256=claimed_sha, claimed_at=datetime.now(timezone.utc), actor="writer"))
    ready.age_store(2 * claims.FLOOR_S)  # both files old enough; the claim made just as old, which is still fresh
    reg.store.path(young_sha).touch()  # rewritten just now
    assert reg.gc(min_age_s=min_age) == [] and reg.store.exists(claimed_sha) and reg.store.exists(young_sha)
    with reg.engine.begin() as c:  # the writer died an hour ago: its claim is stale
        c.execute(sa.update(ObjectClaim).values(claimed_at=datetime.now(timezone.utc) - timedelta(seconds=claims.STALE_S + 1)))
    assert reg.gc(min_age_s=min_age) == [reg.store.rel(claimed_sha)] and ready.claims() == 0
