"""add-task's plan (learner.plan): every phase that will run, why its steps exceed --epochs, a rough duration."""

from __future__ import annotations

from forkpoint.contract.branch import UnitRange
from forkpoint.learner import add_task_config
from forkpoint.learner.plan import plan_note, plan_phases


def test_one_epoch_names_the_floor_the_profile_and_the_cross_validation():
    cfg = add_task_config(epochs=1, batch_size=64)
    phases = {p.name: p for p in plan_phases(cfg, n_train=85, n_val=15, units=[13, 14, 15])}
    assert list(phases) == ["profile", "select", "train", "cross-validate"]
    assert phases["profile"].trainings == 3
    train = phases["train"]
    assert train.steps == cfg.train.min_steps and "--min-steps" in train.why and "1 epoch(s) x 2 steps" in train.why
    assert "15 validation images < 30" in phases["cross-validate"].why


def test_a_fixed_branch_and_a_large_validation_split_plan_one_training():
    cfg = add_task_config(epochs=20, batch_size=64, branch=UnitRange(13, 16))
    phases = plan_phases(cfg, n_train=900, n_val=150, units=[])
    assert [p.name for p in phases] == ["train"]
    assert phases[0].steps == 20 * 15 and "floor" not in phases[0].why


def test_the_note_gives_a_duration_for_this_machine(lite0_32):
    note = plan_note(lite0_32, add_task_config(epochs=1), {"train": 100, "val": 0, "test": 40})
    first = note.splitlines()[0]
    assert first.startswith("plan: about ") and (" s " in first or " min " in first)
    assert "profile:" in note and "train:" in note
