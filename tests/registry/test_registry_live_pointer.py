"""The live pointer: never silently broken, never silently moved back.

A pointer to a missing version makes loading refuse (LivePointerError, exit 1) instead of
serving without that task. A rollback while an add of the same task is in flight survives
the add: the pointer moves by compare-and-set, and the add is registered staged.
"""

from __future__ import annotations


import pytest
import sqlalchemy as sa

from forkpoint.registry import LivePointerError


def _break_pointer(reg, task: str, to: int) -> None:
    with reg.engine.begin() as c:
        c.execute(sa.text("UPDATE task SET live_version = :v WHERE name = :t"), {"v": to, "t": task})


def test_a_live_pointer_to_a_missing_version_refuses_to_load(reg, ready):
    ready.add("pets", seed=1)
    ready.add("birds", seed=2)
    _break_pointer(reg, "pets", 7)

    for load in (reg.live, lambda: reg.live(tasks=["pets"]), lambda: reg.load_tensors("pets")):
        with pytest.raises(LivePointerError, match=r"task 'pets' has live version v7, which does not exist") as e:
            load()
        assert "\n" not in str(e.value) and e.value.exit_code == 1
    # the other task is still served when asked for by name, and a retrain of pets may exclude it
    assert [r.task for r, _ in reg.live(tasks=["birds"])] == ["birds"]
    assert [r.task for r, _ in reg.live(exclude=["pets"])] == ["birds"]
    problems = reg.verify().problems
    assert "task 'pets': live version 7 does not exist" in problems
    assert any("the pointer was moved outside the registry" in p for p in problems)


def test_a_rollback_during_an_add_is_not_undone_when_the_add_commits(reg, ready):
    ready.add("pets", seed=1)
    ready.add("pets", seed=2)
    started_from = reg.get_task("pets").live_version  # the add reads this, then trains for minutes
    assert started_from == 2
    reg.rollback("pets", to=1)  # meanwhile, an operator rolls back a bad v2

    rec = reg.add_version("pets", ready.draft(seed=3), expect_live=started_from)
    assert (rec.version, rec.live, rec.status, rec.parent_version) == (3, False, "staged", 2)
    assert reg.get_task("pets").live_version == 1  # the rollback stands
    added = reg.audit_events(action="add_version")[-1].details
    assert added["promote_refused"] == "live moved from v2 to v1 after this version was started"
    assert (added["promoted"], added["live_before"], added["live_after"]) == (False, 1, 1)

    rec = reg.add_version("pets", ready.draft(seed=4), expect_live=1)  # nothing moved: promoted as asked
    assert (rec.version, rec.live, rec.status) == (4, True, "promoted")
    rec = reg.add_version("new-task", ready.draft(seed=5), expect_live=None)
    assert rec.live
    rec = reg.add_version("pets", ready.draft(seed=6))  # no expectation: unconditional, as before
    assert rec.live and reg.verify().ok
