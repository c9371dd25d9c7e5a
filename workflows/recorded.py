"""What a task version records so it can be rebuilt later, and reading that record back.

``add_task_version`` stores :func:`provenance` under ``config["reproduce"]`` (with the
learner's config and ``config["data"]``, see workflows/datasets.py); ``forkpoint reproduce``
turns the stored config back into an :class:`AddTaskConfig` with :func:`config_from_dict`
and asks :func:`missing` what an older version did not record. Library versions are not
repeated here: the registry stamps them on every version (``lib_versions``).
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from forkpoint.contract.branch import UnitRange
from forkpoint.contract.errors import ConfigError
from forkpoint.registry.provenance import lib_versions

if TYPE_CHECKING:
    from forkpoint.learner import AddTaskConfig, TaskReport

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the repository root is the package
# What a version needs for an exact rebuild; each is named when an older version lacks it.
NEEDED = {
    "config.reproduce": "code version, device and thread settings",
    "config.data.seed": "the seed of the per-class image limit",
    "config.data.test_fraction": "the test fraction of a folder/CSV",
    "config.data.splits_sha256": "a hash of the exact images in each split",
    "config.reproduce.profile_units": "the profile's candidate list",
}


def git_commit(folder: Path = PACKAGE_DIR) -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes), or None when forkpoint does not run
    from its own git checkout (an installed wheel inside some other repository included; never fails)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=folder, capture_output=True,
                              text=True, timeout=5)
        lines = head.stdout.split()
        if head.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != folder.resolve():
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=5)
        return lines[1] + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def runtime_flags() -> dict[str, Any]:
    """Settings that change floating-point results: threads and determinism switches."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cuda_available": torch.cuda.is_available(),
    }


def provenance(report: TaskReport) -> dict[str, Any]:
    """What else a rebuild needs beyond the learner's config and the data description."""
    libs = lib_versions()
    return {
        "forkpoint": libs.get("forkpoint"), "git_commit": git_commit(), "torch": libs.get("torch"),
        "timm": libs.get("timm"), "python": platform.python_version(), "device": report.device,
        **runtime_flags(),
        "profile_units": [c.start for c in report.profile if c.stage == "profile"],
    }


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """A config dataclass from its ``asdict`` form, nested dataclasses and UnitRanges included."""
    import typing

    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"the recorded {where} has settings this forkpoint does not know ({', '.join(unknown)}): "
                          "reproduce it with the forkpoint version that made it")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
            value = _build(kind, value, f"{where}.{name}")
        elif value is not None and "UnitRange" in str(kind):
            value = UnitRange(int(value[0]), int(value[1]))
        elif isinstance(value, list) and "tuple" in str(kind):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(recorded: Mapping[str, Any]) -> AddTaskConfig:
    """The :class:`AddTaskConfig` a version was trained with (``AddTaskConfig.to_dict()``'s inverse).

    Keys the learner's config does not have (``data``, ``reproduce``, ``profile_plot``) are
    provenance and skipped; settings the record lacks take today's defaults (:func:`missing`
    lists them, since a changed default changes the rebuild).
    """
    from forkpoint.learner import AddTaskConfig

    own = {f.name for f in dataclasses.fields(AddTaskConfig)}
    values = {**BEFORE_THE_SETTING, **{k: v for k, v in recorded.items() if k in own}}
    return _build(AddTaskConfig, values, "config")


# Settings added after versions were recorded, at the value that reproduces those versions
# (not today's default): a recipe-4 version never tried a second learning rate.
BEFORE_THE_SETTING: dict[str, Any] = {"lr_factors": (1.0,)}


def missing(config: Mapping[str, Any]) -> list[str]:
    """What a version's stored config lacks for an exact rebuild, in words (empty: nothing)."""
    from forkpoint.learner import AddTaskConfig

    out = [f"config.{f.name} (takes today's default)" for f in dataclasses.fields(AddTaskConfig)
           if f.name not in config and f.name not in BEFORE_THE_SETTING]
    for key, what in NEEDED.items():
        node: Any = {"config": config}
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None and not (key.startswith("config.reproduce.") and "reproduce" not in config):
            out.append(f"{key} ({what})")
    return out
