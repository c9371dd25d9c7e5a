"""A task's branch: trainable copies of units ``[start, stop)`` plus a new linear head.

Units after the branch are the trunk's shared frozen originals, so a branch is small and
its bytes are all a task adds. ``start == stop == num_blocks`` is an empty branch: a
linear probe on the trunk's features.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from forkpoint.learner.backbone import Backbone
from forkpoint.contract.branch import BranchSpec, UnitRange
from forkpoint.contract.errors import BranchMismatchError, ConfigError


def check_range(backbone: Backbone, start: int, stop: int) -> None:
    UnitRange(start, stop).check(backbone.num_blocks)


class Branch(nn.Module):
    """Copies of the trunk's units ``start..stop-1`` (trainable) and a linear head."""

    def __init__(self, spec: BranchSpec, blocks: list[nn.Module], head: nn.Linear) -> None:
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    @classmethod
    def new(cls, backbone: Backbone, start: int, stop: int, num_classes: int, siamese: bool = False, seed: int = 0) -> "Branch":
        """Fresh branch: deep copies of the frozen units, a zero-bias head seeded for reproducibility."""
        check_range(backbone, start, stop)
        if num_classes < 2:
            raise ConfigError(f"a task needs at least 2 classes, got {num_classes}: add classes to the dataset")
        spec = BranchSpec(start, stop, num_classes, backbone.num_features, siamese)
        blocks = [copy.deepcopy(backbone.units[i].block) for i in range(start, stop)]
        for b in blocks:
            for p in b.parameters():
                p.requires_grad_(True)
        gen = torch.Generator().manual_seed(seed)
        head = nn.Linear(spec.head_in, num_classes)
        with torch.no_grad():
            bound = 1.0 / spec.head_in ** 0.5
            head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=gen))
            head.bias.zero_()
        device = next(backbone.parameters()).device
        return cls(spec, blocks, head).to(device)

    @classmethod
    def from_state(cls, backbone: Backbone, spec: BranchSpec, tensors: dict[str, torch.Tensor]) -> "Branch":
        """Rebuild a stored branch, refusing weights that do not fit this trunk or head."""
        try:
            check_range(backbone, spec.start, spec.stop)
        except ConfigError as exc:
            raise BranchMismatchError(f"stored branch does not fit the trunk: {exc}") from exc
        if spec.feature_dim != backbone.num_features:
            raise BranchMismatchError(
                f"stored branch expects {spec.feature_dim} trunk features but {backbone.arch} has {backbone.num_features}: load it on the backbone it was trained on"
            )
        branch = cls(spec, [copy.deepcopy(backbone.units[i].block) for i in range(spec.start, spec.stop)], nn.Linear(spec.head_in, spec.num_classes))
        own = branch.state_dict()
        missing = sorted(set(own) - set(tensors))
        extra = sorted(set(tensors) - set(own))
        bad = [k for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
        if missing or extra or bad:
            first = (missing or extra or bad)[0]
            raise BranchMismatchError(
                f"stored branch weights do not match branch {spec.start}:{spec.stop} with a {spec.num_classes}-class head "
                f"({len(missing)} missing, {len(extra)} unexpected, {len(bad)} wrong shape, e.g. {first}): the weights belong to another task or backbone"
            )
        branch.load_state_dict(tensors, strict=True)
        branch.freeze()
        return branch.to(next(backbone.parameters()).device)

    def train(self, mode: bool = True) -> "Branch":
        """No dropout or stochastic depth in a branch: always eval mode (see :meth:`adapt_batchnorm`)."""
        return super().train(False)

    def adapt_batchnorm(self, on: bool) -> None:
        """Let the private BatchNorm copies use batch statistics and update their running ones.

        Only this branch's copies move; the trunk and other tasks never see them. Everything
        else (dropout, drop-path) stays in eval mode.
        """
        for m in self.blocks.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train(on)

    @torch.no_grad()
    def init_head(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Start from a fitted probe (LP-FT); a Siamese head gets it on the branch half, zeros on the trunk half."""
        w = torch.zeros_like(self.head.weight)
        w[:, :weight.shape[1]] = weight.to(w)
        self.head.weight.copy_(w)
        self.head.bias.copy_(bias.to(self.head.bias))

    def freeze(self) -> "Branch":
        """A shipped branch is frozen exactly like the trunk."""
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        return self

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def features(self, backbone: Backbone, h_start: torch.Tensor) -> torch.Tensor:
        """Input of unit ``start`` -> this branch's feature vector (tuned units, then shared frozen ones)."""
        h = h_start
        for j, block in enumerate(self.blocks):
            h = backbone.run_unit(self.spec.start + j, h, block)
        h = backbone.run_units(h, self.spec.stop, backbone.num_blocks)
        return backbone.tail(h)

    def logits(self, feats: torch.Tensor, trunk_feats: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.siamese:
            if trunk_feats is None:
                raise ConfigError("a Siamese branch needs the frozen trunk's features as well")
            feats = torch.cat([feats, trunk_feats], dim=1)
        return self.head(feats)
