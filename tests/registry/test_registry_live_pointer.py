"""The live pointer: never silently broken, never silently moved back.

A pointer to a missing version makes loading refuse (LivePointerError, exit 1) instead of
serving without that task. A rollback while an add of the same task is in flight survives
the add: the pointer moves by compare-and-set, and the add is registered staged.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

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


def test_the_add_task_workflow_starts_from_the_live_version_and_says_when_it_moved(reg, ready, monkeypatch, tmp_path):
    """workflows.tasks.add_task_version with the learner stubbed out: a rollback lands while it 'trains'."""
    from forkpoint.workflows import render, tasks

    ready.add("pets", seed=1)
    ready.add("pets", seed=2)
    home = SimpleNamespace(registry=reg, fingerprint=ready.fingerprint, path=tmp_path)
    branch = SimpleNamespace(tensors=lambda: ready.tensors(3))
    live = SimpleNamespace(model=SimpleNamespace(branches={"pets": branch}), versions={}, tasks=["pets"])

    def train(model, name, data, cfg, progress=None, plot_dir=None):
        reg.rollback("pets", to=1)  # someone else, while this trains
        return SimpleNamespace(plot=None, draft=lambda fp, tensors, **kw: ready.draft(seed=3, run_id=kw["run_id"]))

    monkeypatch.setattr(tasks, "load_live_model", lambda home, exclude=(): live)
    monkeypatch.setattr(tasks, "add_task", train)
    data = SimpleNamespace(class_names=ready.classes, task_data=None, md5=None, path=None, describe=lambda: {})
    added = tasks.add_task_version(home, "pets", data, cfg=None)

    assert (added.version.version, added.version.live) == (3, False) and reg.get_task("pets").live_version == 1
    assert added.notes == ("pets: the live version moved from v2 to v1 while v3 trained (a rollback or promote), "
                           "so v3 was registered staged, not live: `forkpoint promote pets 3` makes it live",)
    added.report = SimpleNamespace(val_acc=0.9, test_acc=0.9, extra_cost_pct=1.0, trainable_params=1, total_params=2,
                                   plot=None, timings={"total_s": 1.0}, device="cpu", fingerprints={}, to_dict=dict)
    assert render.added_dict(added)["notes"] == list(added.notes)
    from rich.console import Console

    console = Console(width=400, record=True, file=io.StringIO())
    console.print(render.added_table(added))
    shown = console.export_text()
    assert "(staged, not live)" in shown and "`forkpoint promote pets 3` makes it live" in shown
