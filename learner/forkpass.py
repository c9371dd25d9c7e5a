"""One forked pass over any set of branches: the trunk once, same-range branches together, the rest stacked.

The trunk's rows run up to the deepest fork. At unit ``start`` the tasks that fork there take
the trunk's activation; tasks with the same ``[start, stop)`` run as one group (stacked into
one computation by a :data:`StackProvider`, or a loop of their own blocks when none is given
or the blocks cannot be stacked). When a group's tuned run ends its rows join one stack, and
every later frozen unit and the tail run once on that stack (exact: the frozen trunk is in
eval mode, so rows are independent). The stack grows by at most one concatenation per unit
(all groups arriving there at once), never one per task: copying stays linear in the tasks.

Callers choose which branches take part (a :class:`~forkpoint.learner.MultiTaskModel`'s, or
a server's cache of lazily loaded ones); nothing here keeps state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

import torch

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.branch import Branch
from forkpoint.learner.stacked import StackedBlocks

TRUNK = "__trunk__"
MIN_STACK = 2  # a group of one runs its own blocks

# (task names of a group, their branches, start, stop) -> the group stacked, or None (run the loop)
StackProvider = Callable[[tuple[str, ...], list[Branch], int, int], "StackedBlocks | None"]


def fork_groups(branches: Mapping[str, Branch]) -> dict[int, dict[int, list[str]]]:
    """start -> stop -> the tasks tuning exactly ``[start, stop)`` (in the given order); head-only tasks left out."""
    groups: dict[int, dict[int, list[str]]] = {}
    for name, br in branches.items():
        if not br.spec.is_probe:
            groups.setdefault(br.spec.start, {}).setdefault(br.spec.stop, []).append(name)
    return groups


def run_group(backbone: Backbone, branches: Mapping[str, Branch], group: list[str], start: int, stop: int,
              h: torch.Tensor, stacks: StackProvider | None) -> torch.Tensor:
    """The group's outputs of unit ``stop - 1`` from the trunk's input ``h`` of unit ``start``, task-major rows."""
    if stacks is not None and len(group) >= MIN_STACK:
        stacked = stacks(tuple(group), [branches[t] for t in group], start, stop)
        if stacked is not None:
            return stacked.run(h)
    outs = []
    for t in group:
        y = h
        for j, block in enumerate(branches[t].blocks):
            y = backbone.run_unit(start + j, y, block)
        outs.append(y)
    return torch.cat(outs) if len(outs) > 1 else outs[0]


@torch.no_grad()
def shared_pass(backbone: Backbone, branches: Mapping[str, Branch], x: torch.Tensor,
                stacks: StackProvider | None = None) -> dict[str, torch.Tensor]:
    """Logits of every branch in ``branches`` for the images ``x``, from one forked pass."""
    if not branches:
        return {}
    n, batch = backbone.num_blocks, x.shape[0]
    groups = fork_groups(branches)
    needs_trunk = any(br.spec.siamese or br.spec.is_probe for br in branches.values())  # the trunk's own features
    last_fork = max(groups, default=-1)
    h: torch.Tensor | None = backbone.stem(x)  # the trunk's rows: input of unit i
    stack: torch.Tensor | None = None
    order: list[str] = []  # the stack's row blocks (``batch`` rows each), in order
    arriving: dict[int, list[tuple[list[str], torch.Tensor]]] = {}
    for i in range(n + 1):
        for stop, group in groups.get(i, {}).items():
            arriving.setdefault(stop, []).append((group, run_group(backbone, branches, group, i, stop, h, stacks)))
        parts = arriving.pop(i, [])
        if h is not None and i >= last_fork:  # no fork left: the trunk's rows end here or join the stack
            if needs_trunk:
                parts.insert(0, ([TRUNK], h))
            h = None
        if parts:
            order += [t for group, _ in parts for t in group]
            pieces = ([stack] if stack is not None else []) + [rows for _, rows in parts]
            stack = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        if i == n:
            break
        if h is not None:
            h = backbone.run_unit(i, h)
        if stack is not None:
            stack = backbone.run_unit(i, stack)
    feats = backbone.tail(stack) if stack is not None else None
    rows = {k: feats[j * batch:(j + 1) * batch] for j, k in enumerate(order)} if feats is not None else {}
    trunk_feats = rows.get(TRUNK)
    return {t: br.logits(trunk_feats if br.spec.is_probe else rows[t], trunk_feats) for t, br in branches.items()}
