"""All tasks in one forward pass: a shared frozen trunk that forks per task.

The trunk runs once up to the earliest fork. Each task runs its own tuned units from its
fork point; when a task's tuned run ends, its activations join one stacked batch, and
every later frozen unit (and the tail) runs once on that stack instead of once per task
(batch-axis concatenation is exact because the trunk is in eval mode).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from forkpoint.learner.backbone import Backbone, module_digest
from forkpoint.learner.branch import Branch
from forkpoint.learner.forkpass import shared_pass
from forkpoint.learner.stacked import StackedBlocks, stack_blocks
from forkpoint.contract.branch import BranchSpec
from forkpoint.contract.errors import ConfigError
from forkpoint.contract.names import check_task_name


class MultiTaskModel(nn.Module):
    """A frozen :class:`Backbone` plus any number of frozen task branches."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self._branch_list = nn.ModuleList()  # registered so .to() moves branches too
        self.branches: dict[str, Branch] = {}  # the branches in memory
        self.class_names: dict[str, list[str]] = {}
        self._order: list[str] = []
        self._stored: dict[str, tuple[BranchSpec, str, Callable[[], Branch]]] = {}  # not loaded yet: spec, digest, loader
        self._stacks: dict[tuple, StackedBlocks | None] = {}

    @property
    def tasks(self) -> list[str]:
        return list(self._order)

    def add(self, name: str, branch: Branch, class_names: list[str]) -> None:
        self._check_new(name, branch.spec, class_names)
        self._attach(name, branch)
        self._order.append(name)
        self.class_names[name] = list(class_names)

    def add_stored(self, name: str, spec: BranchSpec, class_names: list[str], digest: str, load: Callable[[], Branch]) -> None:
        """A task whose branch stays where it is stored until a pass needs it (``load()`` then builds and verifies it).

        Its fingerprint is ``stored:<digest>`` (the stored weights' sha256) until it is loaded: a branch
        that is not in memory cannot move, so checking it means checking that digest, once, when loading."""
        self._check_new(name, spec, class_names)
        self._stored[name] = (spec, digest, load)
        self._order.append(name)
        self.class_names[name] = list(class_names)

    def _check_new(self, name: str, spec: BranchSpec, class_names: list[str]) -> None:
        check_task_name(name)
        if name in self.class_names:
            raise ConfigError(f"task '{name}' already exists in this model: pick another name or add a new version through the registry")
        if len(class_names) != spec.num_classes:
            raise ConfigError(f"task '{name}' has {len(class_names)} class names but a {spec.num_classes}-class head")

    def _attach(self, name: str, branch: Branch) -> None:
        branch.freeze()
        self.branches[name] = branch
        self._branch_list.append(branch)
        self._stacks.clear()

    def branch(self, name: str) -> Branch:
        """The task's branch, loading a stored one now (on the trunk's device)."""
        if name not in self.branches:
            spec, _, load = self._stored.pop(self._select([name])[0])
            branch = load().to(next(self.backbone.parameters()).device)
            if branch.spec != spec:
                raise ConfigError(f"task '{name}' loaded a branch {branch.spec} but was registered as {spec}")
            self._attach(name, branch)
        return self.branches[name]

    def spec(self, name: str) -> BranchSpec:
        return self.branches[name].spec if name in self.branches else self._stored[name][0]

    def fingerprints(self) -> dict[str, str]:
        fps = {"trunk": self.backbone.fingerprint()}
        for t in self._order:
            fps[f"task:{t}"] = module_digest(self.branches[t]) if t in self.branches else f"stored:{self._stored[t][1]}"
        return fps

    def _select(self, tasks) -> list[str]:
        names = list(self._order) if tasks is None else list(tasks)
        unknown = [t for t in names if t not in self.class_names]
        if unknown:
            raise ConfigError(f"unknown task '{unknown[0]}': known tasks are {', '.join(self._order) or 'none'}")
        return names

    # -- cost model: what `forward` runs, in % of one trunk pass's FLOPs ---------------
    def total_cost_pct(self, tasks=None) -> float:
        """FLOPs of one shared pass over ``tasks`` (default: all), in % of one trunk pass.

        Mirrors :meth:`forward` unit by unit: the stem runs once; the trunk's own rows run
        up to the deepest fork and are dropped there, unless a head-only or Siamese task
        needs the trunk's features, which keeps them to the end (tail included); each task
        with tuned units runs every unit from its fork on, and the tail, on its own rows.
        So one task costs exactly 100%, and N forking tasks cost the sum of their suffixes
        minus the deepest fork's suffix, plus 100%. Linear heads are left out (negligible).
        """
        specs = [self.spec(t) for t in self._select(tasks)]
        if not specs:
            return 0.0  # a pass over no task runs nothing (``shared_pass`` returns before the stem)
        suffix = self.backbone.extra_cost_pct  # % of a pass from unit `start` through the tail
        if any(s.siamese or s.is_probe for s in specs):
            trunk = 100.0  # the trunk's rows run to the end: a whole pass
        else:
            trunk = 100.0 - suffix(max((s.start for s in specs), default=0))  # stem + units before the deepest fork
        return trunk + sum(suffix(s.start) for s in specs if not s.is_probe)

    def marginal_cost_pct(self, task: str, tasks=None) -> float:
        """What ``task`` adds to one shared pass over ``tasks`` (default: all): total with it minus total without it."""
        names = self._select(tasks)
        self._select([task])
        others = [t for t in names if t != task]
        return self.total_cost_pct(others + [task]) - self.total_cost_pct(others)

    def extra_cost_pct(self, tasks=None) -> float:
        """FLOPs of one shared pass over ``tasks`` beyond one trunk pass, in % of one pass (0 without tasks)."""
        return self.total_cost_pct(tasks) - 100.0 if self._select(tasks) else 0.0

    def stacked(self, names: tuple[str, ...], branches: list[Branch], start: int, stop: int) -> StackedBlocks | None:
        """The stacked form of these same-range branches, built once per task set and device (:func:`stack_blocks`)."""
        key = (names, str(next(self.backbone.parameters()).device))
        if key not in self._stacks:
            self._stacks[key] = stack_blocks(self.backbone, branches, start, stop)
        return self._stacks[key]

    @torch.no_grad()
    def forward(self, x: torch.Tensor, tasks=None, batched: bool = True) -> dict[str, torch.Tensor]:
        """Logits per task from one shared pass (:func:`shared_pass`); ``batched=False`` loops over same-range tasks."""
        names = self._select(tasks)
        return shared_pass(self.backbone, {t: self.branch(t) for t in names}, x, self.stacked if batched else None)

    @torch.no_grad()
    def forward_each(self, x: torch.Tensor, tasks=None) -> dict[str, torch.Tensor]:
        """Reference path: every task run alone as its own model (what `forward` must equal)."""
        out = {}
        for t in self._select(tasks):
            br = self.branch(t)
            trunk_feats = self.backbone(x) if br.spec.siamese else None
            out[t] = br.logits(br.features(self.backbone, self.backbone.prefix(x, br.spec.start)), trunk_feats)
        return out
