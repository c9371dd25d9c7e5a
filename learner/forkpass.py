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


Rows = tuple[int, ...] | None  # the images (row indices) a task answers; None: all of them


def fork_groups(branches: Mapping[str, Branch], rows: Mapping[str, Rows] | None = None
                ) -> dict[int, dict[tuple[int, Rows], list[str]]]:
    """start -> (stop, rows) -> the tasks tuning exactly ``[start, stop)`` for those rows; head-only tasks left out."""
    groups: dict[int, dict[tuple[int, Rows], list[str]]] = {}
    for name, br in branches.items():
        if not br.spec.is_probe:
            sel = rows.get(name) if rows else None
            groups.setdefault(br.spec.start, {}).setdefault((br.spec.stop, sel), []).append(name)
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


def _pick(h: torch.Tensor, sel: Rows) -> torch.Tensor:
    return h if sel is None else h[torch.tensor(sel, dtype=torch.long, device=h.device)]


@torch.no_grad()
def shared_pass(backbone: Backbone, branches: Mapping[str, Branch], x: torch.Tensor,
                stacks: StackProvider | None = None, rows: Mapping[str, Rows] | None = None) -> dict[str, torch.Tensor]:
    """Logits of every branch in ``branches`` for the images ``x``, from one forked pass.

    ``rows`` (optional) limits a task to some of the images (a micro-batch of requests that asked
    for different tasks): the trunk runs once on every image, each task's branch only on its own."""
    if not branches:
        return {}
    n, batch = backbone.num_blocks, x.shape[0]
    groups = fork_groups(branches, rows)
    needs_trunk = any(br.spec.siamese or br.spec.is_probe for br in branches.values())  # the trunk's own features
    last_fork = max(groups, default=-1)
    h: torch.Tensor | None = backbone.stem(x)  # the trunk's rows: input of unit i
    stack: torch.Tensor | None = None
    order: list[tuple[str, int]] = []  # the stack's row blocks (name, rows), in order
    arriving: dict[int, list[tuple[list[tuple[str, int]], torch.Tensor]]] = {}
    for i in range(n + 1):
        for (stop, sel), group in groups.get(i, {}).items():
            k = batch if sel is None else len(sel)
            out = run_group(backbone, branches, group, i, stop, _pick(h, sel), stacks)
            arriving.setdefault(stop, []).append(([(t, k) for t in group], out))
        parts = arriving.pop(i, [])
        if h is not None and i >= last_fork:  # no fork left: the trunk's rows end here or join the stack
            if needs_trunk:
                parts.insert(0, ([(TRUNK, batch)], h))
            h = None
        if parts:
            order += [entry for blocks, _ in parts for entry in blocks]
            pieces = ([stack] if stack is not None else []) + [out for _, out in parts]
            stack = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        if i == n:
            break
        if h is not None:
            h = backbone.run_unit(i, h)
        if stack is not None:
            stack = backbone.run_unit(i, stack)
    feats = backbone.tail(stack) if stack is not None else None
    by_name, at = {}, 0
    for name, k in order:
        by_name[name] = feats[at:at + k]
        at += k
    trunk = by_name.get(TRUNK)
    out = {}
    for t, br in branches.items():
        sel = rows.get(t) if rows else None
        own_trunk = _pick(trunk, sel) if trunk is not None else None
        out[t] = br.logits(own_trunk if br.spec.is_probe else by_name[t], own_trunk)
    return out
