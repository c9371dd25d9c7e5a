"""Data versions as DVC sees them, computed by DVC's own code (never re-implemented here).

``dvc_md5`` hashes a file or folder with dvc-data's ``build`` (what ``dvc add``/``dvc status``
run), in dry-run mode so nothing is written to any cache. Inside a DVC repo it applies
the repo's ``.dvcignore``, so the value equals what ``dvc add`` would record.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from forkpoint.contract.errors import DataError


def find_dvc_root(path: Path) -> Path | None:
    """The nearest enclosing folder with a ``.dvc`` directory, or None."""
    for p in [path, *path.parents]:
        if (p / ".dvc").is_dir():
            return p
    return None


def dvc_md5(path: str | os.PathLike) -> str:
    """DVC's md5 for a file (``<md5>``) or directory (``<md5>.dir``), as ``dvc add`` records it."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    p = Path(path).resolve()
    if not p.exists():
        raise DataError(f"cannot hash {path}: it does not exist; check the path")
    fs = LocalFileSystem()
    root = find_dvc_root(p)
    ignore = None
    if root is not None and p != root:
        from dvc.fs import LocalFileSystem as DvcLocalFileSystem
        from dvc.ignore import DvcIgnoreFilter

        ignore = DvcIgnoreFilter(DvcLocalFileSystem(), str(root))
        if ignore.is_ignored(fs, str(p)):
            raise DataError(f"{path} is excluded by {root / '.dvcignore'}: DVC cannot version it; move it or edit .dvcignore")
    # dry_run: hashes only; the object DB is needed for its staging area, which lives in memory.
    odb = HashFileDB(fs, os.path.join(tempfile.gettempdir(), "imagedata-dvc-odb-unused"))
    _, _, obj = build(odb, str(p), fs, "md5", dry_run=True, ignore=ignore)
    value = obj.hash_info.value
    if not value:
        raise DataError(f"DVC produced no hash for {path}: check that it is readable")
    return value


def dvcfile_md5(dvcfile: str | os.PathLike) -> str:
    """The md5 recorded in a ``.dvc`` file's single output (e.g. the repo's ``data.dvc``)."""
    from dvc.utils.serialize import load_yaml

    f = Path(dvcfile)
    if not f.is_file():
        raise DataError(f"{dvcfile} does not exist: run `dvc add` on the data it should track")
    outs = (load_yaml(str(f)) or {}).get("outs") or []
    if len(outs) != 1 or "md5" not in outs[0]:
        raise DataError(f"{dvcfile} has no single output with an md5: re-create it with `dvc add`")
    return str(outs[0]["md5"])


def dvc_add(path: str | os.PathLike, repo_root: str | os.PathLike | None = None) -> str:
    """``dvc add`` ``path`` (file or folder inside a DVC repo) and return the md5 it recorded.

    Writes ``<path>.dvc`` beside it and copies the data into the repo's cache; committing
    the ``.dvc`` file to git is left to the caller.
    """
    from dvc.repo import Repo

    p = Path(path).resolve()
    root = Path(repo_root).resolve() if repo_root else find_dvc_root(p)
    if root is None or not p.is_relative_to(root):
        raise DataError(f"{path} is not inside a DVC repository: run `dvc init` there or pass a path inside one")
    if not p.exists():
        raise DataError(f"cannot dvc-add {path}: it does not exist; check the path")
    with Repo(str(root)) as repo:
        stages = repo.add(str(p))
    value = stages[0].outs[0].hash_info.value
    if not value:
        raise DataError(f"dvc add {path} recorded no md5: check `dvc status` in {root}")
    return value


def commit_if_matching(root: str | os.PathLike) -> tuple[str, str] | None:
    """If ``<root>.dvc`` tracks ``root`` and the content matches it, fill DVC's cache (``dvc commit``).

    This is what makes ``dvc status`` clean (and ``dvc push`` possible) right after a fresh
    ``prepare``. Returns (recorded md5, actual md5), or None when there is no such .dvc file.
    The .dvc file is never rewritten: on a mismatch nothing is committed.
    """
    p = Path(root).resolve()
    dvcfile = p.parent / f"{p.name}.dvc"
    repo_root = find_dvc_root(p.parent)
    if not dvcfile.is_file() or repo_root is None or not p.is_dir():
        return None
    recorded, actual = dvcfile_md5(dvcfile), dvc_md5(p)
    if recorded == actual:
        from dvc.repo import Repo

        with Repo(str(repo_root)) as repo:
            repo.commit(str(dvcfile), force=True)
    return recorded, actual
