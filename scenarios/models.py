"""The models every strategy trains, all Avalanche ``MultiTaskModule``s on one backbone.

- :class:`SubTuningModule`: our multi-task model; task label t runs task t's branch.
  The linear probe baseline is the same model with head-only branches.
- :class:`SharedTrunkMultiHead`: one trainable copy of the backbone + one head per task,
  for Naive/EWC/LwF/Replay (sharing the trunk is what makes them forget).
- :class:`PerTaskFullModels`: a fully finetuned copy of the pretrained model per task (the
  accuracy/storage upper reference).

The trainable copies are :mod:`forkpoint.learner.baselines`' (one BatchNorm rule for every
full copy, the benchmarks' included).

Heads are ``MultiHeadClassifier(masking=False)``: Avalanche's masking with class
timelines is a known source of IndexErrors, and task labels already pick the head.
Each model can also answer every task at once (:meth:`infer_all`) for the inference
timing, and say what a task costs (trainable parameters, stored bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from torch import nn

from forkpoint.contract.errors import ConfigError
from forkpoint.learner import Backbone, MultiTaskModel
from forkpoint.learner.baselines import FinetunedCopy, FullFinetune

PAD_LOGIT = -1e9  # padding for heads narrower than the widest one: never the argmax, exp() == 0


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def module_bytes(module: nn.Module) -> int:
    """Bytes of everything a module stores (parameters and buffers such as BatchNorm statistics)."""
    return tensor_bytes(module.state_dict().values())


@dataclass(frozen=True)
class TaskCost:
    trainable_params: int  # parameters updated while learning the task
    stored_bytes: int  # bytes the task adds to what is served (head, branch or model copy)


class TaskLabelledModule(MultiTaskModule):
    """MultiTaskModule whose batched forward pads narrow heads with a very low logit.

    Avalanche pads with 0, so a 2-class head next to a 10-class one could "predict" a
    padded class whenever both real logits are negative.
    """

    def forward(self, x: torch.Tensor, task_labels) -> torch.Tensor:
        if task_labels is None:
            return self.forward_all_tasks(x)
        if isinstance(task_labels, int):
            return self.forward_single_task(x, task_labels)
        outs = self.task_outputs(x, task_labels)
        width = max(self.max_class_label, *(o.shape[1] for o in outs.values()))
        out = torch.full((x.shape[0], width), PAD_LOGIT, device=x.device, dtype=next(iter(outs.values())).dtype)
        for t, o in outs.items():
            out[task_labels == t, :o.shape[1]] = o
        return out

    def task_outputs(self, x: torch.Tensor, task_labels: torch.Tensor) -> dict[int, torch.Tensor]:
        """Each task's logits for its own rows of a (possibly mixed, e.g. replay) batch."""
        return {int(t): self.forward_single_task(x[task_labels == t], int(t)) for t in torch.unique(task_labels)}

    def infer_all(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Logits of every learned task for ``x`` (what serving all tasks costs)."""
        return {t: self.forward_single_task(x, t) for t in sorted(self.known_train_tasks_labels)}

    def task_cost(self, task_label: int) -> TaskCost:
        raise NotImplementedError

    def serving_bytes(self) -> int:
        """Bytes needed to serve every learned task (shared parts counted once)."""
        return module_bytes(self)


class SubTuningModule(TaskLabelledModule):
    """Avalanche's view of a :class:`MultiTaskModel`: task label -> that task's frozen branch."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model
        self.task_names: dict[int, str] = {}
        self._trainable: dict[int, int] = {}

    def bind(self, task_label: int, name: str, trainable_params: int) -> None:
        """Route ``task_label`` to the branch ``name`` (added to the model by add_task or a restore)."""
        if name not in self.model.branches:
            raise ConfigError(f"task '{name}' has no branch in the model: add it before binding label {task_label}")
        self.task_names[int(task_label)] = name
        self._trainable[int(task_label)] = int(trainable_params)

    def name_of(self, task_label: int) -> str:
        name = self.task_names.get(int(task_label))
        if name is None:
            raise ConfigError(f"no SubTuning branch for task label {task_label} yet: train that experience first")
        return name

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        name = self.name_of(task_label)
        return self.model(x, tasks=[name])[name]

    def infer_all(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """One shared pass that forks per task (the point of SubTuning at inference)."""
        out = self.model(x, tasks=[self.task_names[t] for t in sorted(self.task_names)])
        return {t: out[self.task_names[t]] for t in sorted(self.task_names)}

    def task_cost(self, task_label: int) -> TaskCost:
        branch = self.model.branches[self.name_of(task_label)]
        return TaskCost(self._trainable[int(task_label)], module_bytes(branch))

    def serving_bytes(self) -> int:
        return module_bytes(self.model.backbone) + sum(module_bytes(b) for b in self.model.branches.values())


class SharedTrunkMultiHead(TaskLabelledModule):
    """One trainable trunk for all tasks and a head per task (what Avalanche's CL strategies finetune).

    Its BatchNorm layers follow train/eval mode (``bn_adapt``), as these methods are usually run.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.trunk = FinetunedCopy(backbone, bn_adapt=True)
        self.heads = MultiHeadClassifier(backbone.num_features, initial_out_features=2, masking=False)
        self._trunk_params = sum(p.numel() for p in self.trunk.parameters())

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self.heads.forward_single_task(self.trunk(x), task_label)

    def task_outputs(self, x: torch.Tensor, task_labels: torch.Tensor) -> dict[int, torch.Tensor]:
        """One trunk pass over the whole mixed batch (e.g. replay), then each task's head on its rows."""
        feats = self.trunk(x)
        return {int(t): self.heads.forward_single_task(feats[task_labels == t], int(t)) for t in torch.unique(task_labels)}

    def infer_all(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        feats = self.trunk(x)  # the trunk runs once, every head reads it
        return {t: self.heads.forward_single_task(feats, t) for t in sorted(self.known_train_tasks_labels)}

    def task_cost(self, task_label: int) -> TaskCost:
        head = self.heads.classifiers[str(task_label)]
        head_params = sum(p.numel() for p in head.parameters())
        return TaskCost(head_params + self._trunk_params, module_bytes(head))

    def serving_bytes(self) -> int:
        heads = [self.heads.classifiers[str(t)] for t in self.known_train_tasks_labels]
        return module_bytes(self.trunk) + sum(module_bytes(h) for h in heads)


class PerTaskFullModels(TaskLabelledModule):
    """A fully finetuned copy of the pretrained model (+ head) per task, frozen once learned."""

    def __init__(self) -> None:
        super().__init__()
        self.models = nn.ModuleDict()
        self._trainable: dict[int, int] = {}

    def add(self, task_label: int, model: FullFinetune, trainable_params: int) -> None:
        """Serve ``model`` for ``task_label`` from now on, frozen."""
        model.requires_grad_(False)
        self.models[str(int(task_label))] = model.eval()
        self._trainable[int(task_label)] = int(trainable_params)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        key = str(int(task_label))
        if key not in self.models:
            raise ConfigError(f"no finetuned model for task label {task_label} yet: train that experience first")
        return self.models[key](x)

    def infer_all(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        return {int(k): m(x) for k, m in sorted(self.models.items(), key=lambda kv: int(kv[0]))}

    def task_cost(self, task_label: int) -> TaskCost:
        return TaskCost(self._trainable[int(task_label)], module_bytes(self.models[str(int(task_label))]))

    def serving_bytes(self) -> int:
        return module_bytes(self.models)
