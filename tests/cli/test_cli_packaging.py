"""One installed namespace: a wheel built from the tree puts only `forkpoint` into site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, text=True, timeout=600, cwd=build)
    (whl,) = out.glob("forkpoint-*.whl")
    return whl


def test_the_wheel_installs_only_the_forkpoint_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"forkpoint"}, top
    for module in ("forkpoint/__init__.py", "forkpoint/cli.py", "forkpoint/contract/branch.py", "forkpoint/learner/task.py",
                   "forkpoint/registry/core.py", "forkpoint/registry/migrations/alembic.ini",
                   "forkpoint/registry/migrations/versions/0003_branch_stored_once.py", "forkpoint/workflows/tasks.py",
                   "forkpoint/scenarios/runner.py", "forkpoint/benchmarks/runner.py", "forkpoint/imagedata/loader.py",
                   "forkpoint/serving/templates/base.html", "forkpoint/serving/static/" + next(
                       p.name for p in (REPO / "serving" / "static").glob("*.css"))):
        assert module in names, module
    assert not any(n.startswith("forkpoint/tests/") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "forkpoint = forkpoint.cli:main" in entry


def test_the_contract_imports_without_torch():
    code = "import sys, forkpoint.contract, forkpoint.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
