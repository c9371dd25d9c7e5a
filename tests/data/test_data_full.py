"""The full prepare reproduces the committed data.dvc, and `dvc status` is clean after it (slow; CI runs it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forkpoint.imagedata import dvc_md5, dvcfile_md5, prepare
from forkpoint.imagedata.versioning import commit_if_matching


@pytest.mark.slow
def test_full_prepare_matches_committed_data_dvc(tmp_path: Path, repo_root: Path, need_fashion):
    repo = tmp_path / "fresh"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".dvc").mkdir()
    for f in (".dvc/config", ".dvc/.gitignore", ".dvcignore", "data.dvc"):
        shutil.copy(repo_root / f, repo / f)
    done = prepare(repo / "data", progress=False)
    assert sorted(done) == ["animals", "digits", "fashion", "mnist"]
    want = dvcfile_md5(repo_root / "data.dvc")
    assert dvc_md5(repo / "data") == want
    assert commit_if_matching(repo / "data") == (want, want)
    status = subprocess.run([str(Path(sys.executable).with_name("dvc")), "status"], cwd=repo,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "Data and pipelines are up to date." in status.stdout, status.stdout
    assert (repo / "data.dvc").read_text() == (repo_root / "data.dvc").read_text()
