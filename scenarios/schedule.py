"""Avalanche's strategies trained on SubTuning's schedule, with its early stopping on validation.

Naive/EWC/LwF/Replay keep Avalanche's own training loop and regularisers; this plugin
only replaces what would otherwise make them weaker than SubTuning for no reason of their
own: each experience gets the number of optimizer steps SubTuning's final training takes
for that task (:func:`forkpoint.learner.train.schedule` over the task's original training
images, its step floor included), fused AdamW with the recipe's weight decay (head at
``head_lr``, trunk at ``lr``), a cosine schedule over those steps, validation on the
task's carved validation images at the steps SubTuning scores its own, patience-based
early stopping and the best validation state restored before the experience ends (so
EWC's importances, LwF's teacher and Replay's buffer are taken from the kept state, as
the restore happens before Avalanche's end-of-experience hooks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin

from forkpoint.learner.device import inference_batch
from forkpoint.learner.train import KeepBest, TrainConfig, adamw, schedule

Split = tuple[torch.Tensor, torch.Tensor]  # backbone-ready images, labels


@torch.no_grad()
def split_scores(model: torch.nn.Module, split: Split, task_label: int, device: torch.device) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model``'s head ``task_label`` on ``split``, in eval mode (the mode is put back)."""
    x, y = split
    was_training = model.training
    model.eval()
    try:
        b = inference_batch(device)
        logits = torch.cat([model(x[i:i + b].to(device), task_label).float().cpu() for i in range(0, len(x), b)])
    finally:
        model.train(was_training)
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


class StepSchedule(SupervisedPlugin):
    """SubTuning's step budget, optimizer, schedule and validation-based early stopping for an Avalanche strategy.

    ``val[i]`` and ``epoch_sizes[i]`` belong to experience ``i`` (its carved validation split and
    its number of original training images: augmented views add what steps see, not how many).
    ``history[i]`` records the validation passes of experience ``i``.
    """

    def __init__(self, recipe: TrainConfig, val: list[Split], epoch_sizes: list[int], progress=None, label: str = "") -> None:
        super().__init__()
        self.recipe, self.val, self.epoch_sizes = recipe, val, epoch_sizes
        self.progress, self.label = progress, label
        self.history: list[list[dict]] = []
        self.steps: list[int] = []

    def before_training_exp(self, strategy, **kwargs) -> None:
        """Runs after Avalanche built the experience's dataloader, head and optimizer: replace the optimizer."""
        i = int(strategy.experience.current_experience)
        self.exp = i
        self.total, self.every = schedule(self.recipe, self.epoch_sizes[i])
        strategy.train_epochs = self.total  # an upper bound (each epoch is >= 1 step): the steps end training
        model = strategy.model
        head = [p for p in model.heads.parameters() if p.requires_grad]
        body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("heads.")]
        torch.manual_seed(self.recipe.seed + i)
        strategy.optimizer = adamw([{"params": head, "lr": self.recipe.head_lr}, {"params": body, "lr": self.recipe.lr}],
                                   self.recipe.weight_decay)
        self.cosine = torch.optim.lr_scheduler.CosineAnnealingLR(strategy.optimizer, T_max=self.total)
        self.keeper = KeepBest(self.recipe)
        self.step = 0
        self.history.append([])
        self.bar = None
        if self.progress is not None:
            self.bar = self.progress.add_task(f"{self.label}: task {i + 1} train", total=self.total)

    def after_update(self, strategy, **kwargs) -> None:
        self.cosine.step()
        self.step += 1
        if self.bar is not None:
            self.progress.advance(self.bar, 1)
        at_end = self.step >= self.total
        if not (at_end or (self.recipe.keep_best_epoch and self.step % self.every == 0)):
            return
        acc, loss = split_scores(strategy.model, self.val[self.exp], self.exp, strategy.device)
        self.history[-1].append({"step": self.step, "val_acc": acc, "val_loss": loss})
        stop = self.keeper.update(strategy.model, (acc, -loss), at_end)
        if stop or at_end:
            self.keeper.restore(strategy.model)  # before EWC/LwF/Replay read the model at the experience's end
            strategy.stop_training()

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.steps.append(self.step)
