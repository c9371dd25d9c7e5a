"""DVC wiring: the committed config, DVC-computed md5s, cache commit, and a push/pull round trip."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forkpoint.imagedata import dvc_add, dvc_md5, dvcfile_md5
from forkpoint.imagedata.versioning import commit_if_matching
from forkpoint.contract.errors import DataError

DVC = str(Path(sys.executable).with_name("dvc"))
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from DVC internals (pygtrie)


def _dvc(repo: Path, *args: str) -> str:
    """The `dvc` command line, as a user runs it."""
    out = subprocess.run([DVC, *args], cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _status(repo: Path) -> list:
    """`dvc status` through DVC's Python API (no process start-up): [] means clean."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return list(r.status().values())  # keys are .dvc paths relative to the cwd


def _clone_dvc_setup(repo_root: Path, dest: Path) -> Path:
    """A fresh git+DVC repo with this repo's committed DVC config (no cache, no remote contents)."""
    dest.mkdir()
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    (dest / ".dvc").mkdir()
    for f in (".dvc/config", ".dvc/.gitignore", ".dvcignore"):
        shutil.copy(repo_root / f, dest / f)
    return dest


def test_committed_dvc_config(repo_root: Path):
    from dvc.config import Config

    conf = Config(dvc_dir=str(repo_root / ".dvc"))
    assert conf["core"]["analytics"] is False
    assert conf["core"]["remote"] == "local"
    assert Path(conf["remote"]["local"]["url"]).resolve() == (repo_root / ".dvc" / "remote").resolve()
    ignored = subprocess.run(["git", "check-ignore", "data", ".dvc/cache", ".dvc/remote", ".dvc/tmp"],
                             cwd=repo_root, capture_output=True, text=True).stdout.split()
    assert ignored == ["data", ".dvc/cache", ".dvc/remote", ".dvc/tmp"]
    assert dvcfile_md5(repo_root / "data.dvc").endswith(".dir")


def test_dvc_md5_equals_what_dvc_add_records(tmp_path: Path, small_root: Path, repo_root: Path):
    repo = _clone_dvc_setup(repo_root, tmp_path / "repo")
    shutil.copytree(small_root, repo / "data")
    (repo / "data" / ".mnist.partial-x1").mkdir()  # a crashed build: .dvcignore'd, must not count
    (repo / "data" / ".mnist.partial-x1" / "images.npy").write_bytes(b"half")
    (repo / "notes.csv").write_text("img.png,cat\n")
    assert dvc_add(repo / "data") == dvcfile_md5(repo / "data.dvc") == dvc_md5(repo / "data") == dvc_md5(small_root)
    assert dvc_add(repo / "notes.csv") == dvc_md5(repo / "notes.csv") == hashlib.md5(b"img.png,cat\n").hexdigest()
    with pytest.raises(DataError, match="not inside a DVC repository"):
        dvc_add(small_root)
    with pytest.raises(DataError, match="excluded by"):
        dvc_md5(repo / "data" / ".mnist.partial-x1")
    with pytest.raises(DataError, match="does not exist"):
        dvc_md5(tmp_path / "nope")


def test_commit_if_matching_fills_cache_and_never_rewrites(tmp_path: Path, small_root: Path, repo_root: Path):
    repo = _clone_dvc_setup(repo_root, tmp_path / "repo")
    shutil.copytree(small_root, repo / "data")
    md5 = dvc_add(repo / "data")
    recorded = (repo / "data.dvc").read_text()
    shutil.rmtree(repo / ".dvc" / "cache")  # like a fresh machine that just ran prepare
    assert _status(repo) == [[{"changed outs": {"data": "not in cache"}}]]
    assert commit_if_matching(repo / "data") == (md5, md5)
    assert _status(repo) == []
    (repo / "data" / "digits" / "manifest.json").write_text("{}\n")
    recorded_md5, actual = commit_if_matching(repo / "data")
    assert recorded_md5 == md5 != actual and (repo / "data.dvc").read_text() == recorded
    assert commit_if_matching(small_root) is None  # no data.dvc beside it


def test_push_pull_round_trip_against_the_default_local_remote(tmp_path: Path, small_root: Path, repo_root: Path):
    repo = _clone_dvc_setup(repo_root, tmp_path / "repo")
    shutil.copytree(small_root, repo / "data")
    dvc_add(repo / "data")
    _dvc(repo, "push")
    assert (repo / ".dvc" / "remote" / "files" / "md5").is_dir()
    before = {p.relative_to(repo): p.read_bytes() for p in (repo / "data").rglob("*") if p.is_file()}
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    assert _status(repo) == [[{"changed outs": {"data": "not in cache"}}]]
    _dvc(repo, "pull")
    after = {p.relative_to(repo): p.read_bytes() for p in (repo / "data").rglob("*") if p.is_file()}
    assert after == before
    assert _status(repo) == []
    assert dvc_md5(repo / "data") == dvcfile_md5(repo / "data.dvc")
