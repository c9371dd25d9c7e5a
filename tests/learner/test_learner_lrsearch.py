"""A baseline's learning rate is picked on validation scores alone (learner.lrsearch)."""

from __future__ import annotations

import math

import pytest

from forkpoint.contract.errors import ConfigError
from forkpoint.learner.lrsearch import BRANCH_LRS, FULL_FT_LRS, pick_lr


def test_best_validation_accuracy_wins_then_lower_loss():
    scores = {1e-3: (0.8, 0.5), 3e-4: (0.9, 0.7), 1e-4: (0.9, 0.4)}
    choice = pick_lr((1e-3, 3e-4, 1e-4), lambda lr: scores[lr])
    assert choice.lr == 1e-4
    assert [t.lr for t in choice.trials] == [1e-3, 3e-4, 1e-4]
    assert choice.to_dict()["lr"] == 1e-4 and len(choice.to_dict()["trials"]) == 3


def test_an_exact_tie_goes_to_the_earlier_rate_and_a_nan_loss_ranks_last():
    assert pick_lr((3e-3, 1e-3), lambda lr: (0.5, 0.3)).lr == 3e-3
    choice = pick_lr((3e-3, 1e-3), lambda lr: (0.5, math.nan if lr == 3e-3 else 2.0))
    assert choice.lr == 1e-3 and choice.trials[0].val_loss == math.inf


def test_a_one_rate_grid_trains_nothing():
    calls = []
    choice = pick_lr((1e-3,), lambda lr: calls.append(lr) or (1.0, 0.0))
    assert choice.lr == 1e-3 and choice.trials == () and calls == [] and choice.seconds == 0


@pytest.mark.parametrize("grid", [(), (1e-3, 0.0), (-1e-3,)])
def test_a_grid_without_positive_rates_is_refused(grid):
    with pytest.raises(ConfigError, match="positive"):
        pick_lr(grid, lambda lr: (1.0, 0.0))


def test_the_grids_span_a_decade_around_each_method_usual_rate():
    assert 3e-4 in FULL_FT_LRS and 1e-3 in BRANCH_LRS
    assert max(FULL_FT_LRS) / min(FULL_FT_LRS) == pytest.approx(10) and max(BRANCH_LRS) / min(BRANCH_LRS) == pytest.approx(10)


def test_scaled_rates_keep_the_heads_ratio_and_factor_one_is_the_same_config():
    from forkpoint.learner.lrsearch import scaled_rates
    from forkpoint.learner.train import TrainConfig

    cfg = TrainConfig(lr=1e-3, head_lr=3e-3)
    assert scaled_rates(cfg, 1.0) is cfg
    fast = scaled_rates(cfg, 3.0)
    assert math.isclose(fast.lr, 3e-3) and math.isclose(fast.head_lr, 9e-3) and fast.epochs == cfg.epochs


@pytest.mark.parametrize("factors", [(), (1.0, 0.0), (-3.0,)])
def test_add_task_refuses_rate_factors_that_are_not_positive(factors):
    from forkpoint.learner.config import AddTaskConfig

    with pytest.raises(ConfigError, match="learning-rate factors"):
        AddTaskConfig(lr_factors=factors)
