"""Input checks run before anything is written, so bad input leaves no trace.

The registry checks what it knows: names, JSON-ability, and that a branch's block
range and head fit the backbone's recorded block list and the task's classes. Deep
shape checks against real modules belong to the learner.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, Sequence

import torch

from forkpoint.contract.names import InvalidNameError as ContractNameError
from forkpoint.contract.names import check_task_name
from forkpoint.registry.errors import BranchSpecError, InvalidInputError, InvalidNameError

SHA256_RE = re.compile(r"[0-9a-f]{64}")
BRANCH_KEYS = ("start", "end", "block_names", "siamese", "num_classes", "feature_dim", "head_shape")


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


def branch(spec: Mapping[str, Any], backbone_blocks: Sequence[str], n_classes: int) -> dict[str, Any]:
    """Check a branch spec against the backbone's block list.

    ``end`` is inclusive (the learner's ``BranchSpec.to_dict`` also sends ``stop = end + 1``);
    ``start = n, end = n - 1`` with no block names is a head-only branch."""
    if not isinstance(spec, Mapping):
        raise BranchSpecError(f"branch is a {type(spec).__name__}: pass a dict with keys {', '.join(BRANCH_KEYS)}")
    missing = [k for k in BRANCH_KEYS if k not in spec]
    if missing:
        raise BranchSpecError(f"branch spec lacks {', '.join(missing)}: pass all of {', '.join(BRANCH_KEYS)}")
    start, end, n = spec["start"], spec["end"], len(backbone_blocks)
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
    head_only = ints and start == n and end == n - 1  # empty branch: a linear probe on the trunk's features
    if not ints or not (0 <= start <= end < n or head_only):
        raise BranchSpecError(
            f"branch blocks {start!r}..{end!r} do not fit a backbone of {n} blocks: need 0 <= start <= end <= {n - 1} (or start={n}, end={n - 1} for a head-only branch)"
        )
    if "stop" in spec and spec["stop"] != end + 1:
        raise BranchSpecError(f"branch stop={spec['stop']!r} disagrees with end={end} (inclusive): stop must be end + 1")
    expected = list(backbone_blocks[start : end + 1])
    if list(spec["block_names"]) != expected:
        raise BranchSpecError(
            f"branch block names {list(spec['block_names'])} do not match the backbone's blocks {start}..{end} {expected}: the branch was cut from another backbone"
        )
    num_classes, feature_dim, head = spec["num_classes"], spec["feature_dim"], spec["head_shape"]
    siamese = spec["siamese"]
    if not isinstance(siamese, bool):
        raise BranchSpecError(f"branch siamese is {siamese!r}: pass true or false")
    if num_classes != n_classes:
        raise BranchSpecError(f"branch has num_classes={num_classes} but {n_classes} class names were given: make them agree")
    if not isinstance(feature_dim, int) or feature_dim <= 0:
        raise BranchSpecError(f"branch feature_dim is {feature_dim!r}: pass the trunk's feature width as a positive integer")
    head_in = (feature_dim, 2 * feature_dim) if siamese else (feature_dim,)
    if not isinstance(head, (list, tuple)) or len(head) != 2 or head[0] != num_classes or head[1] not in head_in:
        raise BranchSpecError(
            f"head_shape {head!r} does not fit {num_classes} classes x feature_dim {feature_dim}: the head must be [num_classes, feature_dim{' or 2*feature_dim (siamese)' if siamese else ''}]"
        )
    return jsonable("branch", dict(spec))


def head_present(tensors: Mapping[str, torch.Tensor], head_shape: Sequence[int]) -> None:
    """The weights must contain a head matrix of the declared shape."""
    if not any(isinstance(t, torch.Tensor) and tuple(t.shape) == tuple(head_shape) for t in tensors.values()):
        raise BranchSpecError(f"no tensor of head_shape {list(head_shape)} among the branch weights: the weights and the branch spec disagree")
