"""One rule for every path a command writes or reads a folder from: forkpoint never creates missing folders.

``export --out`` set the rule (serving/export_target.py): the file is created, but the folder it
goes into must exist, because a missing folder is more often a typo than a wish. The same holds
for a folder a command creates (``samples --out DIR``: DIR is made, its parent must exist) and
a folder a command reads (``serve --reports``: it must exist). Each helper is also a click
callback, so the check runs while options are parsed: before any model is loaded or any event
is logged. Torch-free, like the rest of the command layer's helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from forkpoint.contract.errors import ConfigError


def _option(param: click.Parameter | None, default: str) -> str:
    """The option's longest flag (``--plot``), as the user typed it in messages."""
    if param is None or not getattr(param, "opts", None):
        return default
    return max(param.opts, key=len)


def existing_parent(path: Path, option: str = "--out") -> Path:
    """``path`` (to be created: a file or a folder) whose parent folder exists and is writable; ConfigError otherwise."""
    path = Path(path).expanduser()
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} folder {parent} does not exist: create it first (mkdir -p {parent}) or pick another {option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} folder {parent} is not writable: pick another {option}")
    return path


def existing_folder(path: Path, option: str) -> Path:
    """``path``, an existing folder (one a command reads from); ConfigError otherwise."""
    path = Path(path).expanduser()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise ConfigError(f"{option} folder {path} {what}: create it first (mkdir -p {path}) or pick another {option}")
    return path


def parent_exists(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """click callback form of :func:`existing_parent` (None passes: the option was not given)."""
    return None if value is None else existing_parent(value, _option(param, "--out"))


def folder_exists(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """click callback form of :func:`existing_folder` (None passes: the option was not given)."""
    return None if value is None else existing_folder(value, _option(param, "PATH"))
