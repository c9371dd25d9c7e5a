"""Input checks run before anything is written, so bad input leaves no trace.

The registry checks what it knows: names, JSON-ability, and that a draft's branch fits
the backbone's recorded block list and the task's classes. Deep shape checks against
real modules belong to the learner. torch is imported only to look at tensors.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from forkpoint.contract.branch import BranchSpec
from forkpoint.contract.draft import VersionDraft
from forkpoint.contract.errors import ConfigError
from forkpoint.contract.names import InvalidNameError as ContractNameError
from forkpoint.contract.names import check_task_name
from forkpoint.registry.errors import BranchSpecError, InvalidInputError, InvalidNameError

if TYPE_CHECKING:
    import torch

SHA256_RE = re.compile(r"[0-9a-f]{64}")


def task_name(name: object) -> str:
    """A safe task name: lower-case, no path separators, no '..'-only names, ≤ 64 chars."""
    try:
        return check_task_name(name)
    except ContractNameError as exc:
        raise InvalidNameError(str(exc)) from None


def fingerprint(fp: object) -> str:
    if not isinstance(fp, str) or not SHA256_RE.fullmatch(fp):
        raise InvalidInputError(f"invalid backbone fingerprint {fp!r}: pass the trunk's sha256 as 64 lower-case hex digits")
    return fp


def jsonable(what: str, value: Any) -> Any:
    """Round-trip through strict JSON (no NaN/inf, str keys) so both backends store the same thing."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what} cannot be stored as JSON ({e}): pass plain str/int/float/bool/list/dict values") from None


def nonneg_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{what} {value!r} is not usable: pass a non-negative integer")
    return value


def finite_float(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{what} {value!r} is not usable: pass a finite number")
    return float(value)


def class_names(names: Any) -> list[str]:
    if (
        not isinstance(names, (list, tuple))
        or len(names) < 2
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise InvalidInputError(f"class_names {names!r} is not usable: pass at least 2 distinct non-empty strings")
    return list(names)


def branch(spec: object, draft_blocks: Sequence[str], backbone_blocks: Sequence[str], n_classes: int) -> dict[str, Any]:
    """The stored form of a draft's branch, after one check against the backbone and the task's classes.

    The range rule is the contract's (:meth:`UnitRange.check`: half-open ``[start, stop)``,
    a head-only branch is ``start == stop == num_blocks``); the registry adds only what it
    knows: the draft was cut from this backbone, and the head has one row per class name.
    """
    if not isinstance(spec, BranchSpec):
        raise BranchSpecError(f"branch spec is a {type(spec).__name__}: pass a forkpoint.contract.BranchSpec (TaskReport.draft builds one)")
    if list(draft_blocks) != list(backbone_blocks):
        raise BranchSpecError(
            f"the draft names blocks {_span(draft_blocks)}, the backbone has {_span(backbone_blocks)}: the branch was cut from another backbone"
        )
    for what in ("start", "stop", "num_classes", "feature_dim"):
        value = getattr(spec, what)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BranchSpecError(f"branch {what} is {value!r}: pass an integer")
    if not isinstance(spec.siamese, bool):
        raise BranchSpecError(f"branch siamese is {spec.siamese!r}: pass True or False")
    if spec.feature_dim <= 0:
        raise BranchSpecError(f"branch feature_dim is {spec.feature_dim}: pass the trunk's feature width (positive)")
    try:
        spec.check(len(backbone_blocks))
    except ConfigError as exc:
        raise BranchSpecError(str(exc)) from None
    if spec.num_classes != n_classes:
        raise BranchSpecError(f"branch has num_classes={spec.num_classes} but {n_classes} class names were given: make them agree")
    return jsonable("branch", spec.to_dict(list(backbone_blocks)))


def _span(names: Sequence[str]) -> str:
    names = list(names)
    return f"{names[0]}..{names[-1]} ({len(names)})" if names else "none"


def head_present(tensors: Mapping[str, torch.Tensor], head_shape: Sequence[int]) -> None:
    """The weights must contain a head matrix of the declared shape."""
    import torch

    if not any(isinstance(t, torch.Tensor) and tuple(t.shape) == tuple(head_shape) for t in tensors.values()):
        raise BranchSpecError(f"no tensor of head_shape {list(head_shape)} among the branch weights: the weights and the branch spec disagree")


def version_fields(draft: object) -> dict[str, Any]:
    """A draft's provenance and results as column values, or a one-line InvalidInputError.

    The branch and the tensors are checked separately (:func:`branch`, :func:`head_present`,
    ``codec.encode``), against the backbone the draft names.
    """
    if not isinstance(draft, VersionDraft):
        raise InvalidInputError(f"draft is a {type(draft).__name__}: pass a forkpoint.contract.VersionDraft (TaskReport.draft builds one)")
    out: dict[str, Any] = {"class_names": class_names(draft.class_names)}
    for what in ("metrics", "config", "split_sizes"):
        value = getattr(draft, what)
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"{what} is a {type(value).__name__}: pass a dict")
        out[what] = jsonable(what, dict(value))
    profile = draft.profile
    if not isinstance(profile, (list, tuple)) or not all(isinstance(p, Mapping) for p in profile):
        raise InvalidInputError("profile is not a list of dicts: pass one dict per candidate tried")
    out["profile"] = jsonable("profile", [dict(p) for p in profile])
    out["trainable_params"] = nonneg_int("trainable_params", draft.trainable_params)
    out["total_params"] = nonneg_int("total_params", draft.total_params)
    if out["trainable_params"] > out["total_params"]:
        raise InvalidInputError(
            f"trainable_params {out['trainable_params']} exceeds total_params {out['total_params']}: pass the whole model's count as total"
        )
    out["extra_cost_pct"] = finite_float("extra_cost_pct", draft.extra_cost_pct)
    if isinstance(draft.split_seed, bool) or not isinstance(draft.split_seed, int):
        raise InvalidInputError(f"split_seed {draft.split_seed!r} is not an integer: pass the seed the split was drawn with")
    out["split_seed"] = draft.split_seed
    for what in ("data_md5", "data_path", "run_id"):
        value = getattr(draft, what)
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidInputError(f"{what} {value!r} is not usable: pass a non-empty string or None")
        out[what] = value
    if not isinstance(draft.description, str):
        raise InvalidInputError(f"description is a {type(draft.description).__name__}: pass a string")
    out["description"] = draft.description
    parent = draft.parent_version
    if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int)):
        raise InvalidInputError(f"parent_version {parent!r} is not a version number: pass an integer or None")
    return out
