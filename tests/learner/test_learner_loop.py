"""The one training loop (learner.train.run_steps): schedule, validation passes, early stopping, best state kept."""

from __future__ import annotations

import torch

from forkpoint.learner.train import TrainConfig, run_steps, schedule


def _toy(cfg: TrainConfig, val_scores: list[float]):
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    x, y = torch.randn(20, 3), torch.arange(20) % 2
    scores = iter(val_scores)
    seen_weights = []

    def losses(order):
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            yield torch.nn.functional.cross_entropy(module(x[idx]), y[idx]), len(idx)

    def evaluate():
        seen_weights.append(module.weight.detach().clone())
        return next(scores), 0.0, None

    run = run_steps(module, [{"params": list(module.parameters()), "lr": 0.1}], cfg, len(x), len(x), losses, evaluate)
    return module, run, seen_weights


def test_the_schedule_and_the_validation_passes_follow_the_config():
    cfg = TrainConfig(epochs=2, batch_size=5, min_steps=12, max_evals=3, patience=0)
    total, every = schedule(cfg, 20)
    _, run, _ = _toy(cfg, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert run.steps == total == 12 and [h["step"] for h in run.history] == [4, 8, 12] and every == 4


def test_patience_stops_training_and_the_best_state_is_restored():
    cfg = TrainConfig(epochs=10, batch_size=5, max_evals=10, patience=2)
    module, run, seen = _toy(cfg, [0.5, 0.9, 0.4, 0.3, 0.99])
    assert len(run.history) == 4 and run.steps == 16  # two passes without improvement after the best one
    assert run.keeper.best_eval == 2 and torch.equal(module.weight, seen[1])
