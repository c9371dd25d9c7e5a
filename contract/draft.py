"""A task version before it is registered: everything the registry records about it.

The learner's :class:`TaskReport` produces a draft (``report.draft(...)``); the registry
consumes it (``Registry.add_version(task, draft, promote=..., actor=...)``). Nothing
between them maps fields by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from forkpoint.contract.branch import BranchSpec


@dataclass(frozen=True)
class VersionDraft:
    """A trained branch and its provenance, ready to be stored as the next version of a task.

    ``tensors`` maps names to torch tensors (typed loosely so this module stays torch-free);
    ``block_names`` are the backbone's unit names, so the stored spec names the tuned blocks.
    """

    backbone_fingerprint: str
    class_names: tuple[str, ...]
    spec: BranchSpec
    block_names: tuple[str, ...]
    tensors: Mapping[str, Any]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    profile: tuple[Mapping[str, Any], ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    split_seed: int = 0
    split_sizes: Mapping[str, int] = field(default_factory=dict)
    trainable_params: int = 0
    total_params: int = 0
    extra_cost_pct: float = 0.0
    data_md5: str | None = None
    data_path: str | None = None
    description: str = ""
    run_id: str | None = None
    parent_version: int | None = None

    def branch_dict(self) -> dict[str, Any]:
        return self.spec.to_dict(self.block_names)

    def with_provenance(self, **changes: Any) -> "VersionDraft":
        """The same draft with data/run/description fields filled in by the caller."""
        return replace(self, **changes)
