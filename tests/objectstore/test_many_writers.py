"""Many writers: two "machines" (separate homes, processes and environments) share one PostgreSQL
database and one S3 store, and add versions of the same and of different tasks at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forkpoint.registry import Registry, claims
from forkpoint.registry.objectstore import FsspecObjectStore

pytestmark = [pytest.mark.s3, pytest.mark.postgres]
WORKER = Path(__file__).resolve().parent / "store_worker.py"


def _machines(tmp_path: Path, pg_url: str, s3_env: dict, plans: dict[str, list]) -> dict[str, dict]:
    """Run one worker per plan at once (each its own home), wait for all; their reports by name."""
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORKPOINT_", "AWS_"))}
    env.update(s3_env, OMP_NUM_THREADS="1")
    procs = {}
    for name, jobs in plans.items():
        req = {"home": str(tmp_path / name), "url": pg_url, "ready_dir": str(ready), "parties": len(plans),
               "jobs": jobs, "out": str(tmp_path / f"{name}.json")}
        procs[name] = subprocess.Popen([sys.executable, str(WORKER), json.dumps(req)], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, p in procs.items():
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"{name}: {err[-3000:]}"
    return {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in plans}


def test_two_machines_add_versions_of_shared_and_own_tasks(tmp_path, pg_url, s3_env, store_url, objects, sample_of,
                                                          monkeypatch):
    with Registry.open(tmp_path / "admin", pg_url, store_url=store_url) as reg:  # `forkpoint init --store` did this
        sample_of(reg).backbone()
    plans = {m: [job for i in range(4) for job in (["shared", 100 * n + i], [f"own-{m}", 100 * n + 50 + i])]
             for n, m in enumerate(("alpha", "beta"), start=1)}
    reports = _machines(tmp_path, pg_url, s3_env, plans)
    assert {r["store"] for r in reports.values()} == {"FsspecObjectStore"}  # found through the database
    assert not any((tmp_path / m / "objects").exists() for m in plans)

    done = [tuple(d) for r in reports.values() for d in r["done"]]
    with Registry.open(tmp_path / "auditor", pg_url) as reg:
        assert isinstance(reg.store, FsspecObjectStore) and reg.store_url == store_url
        assert sorted(v.version for v in reg.versions("shared")) == list(range(1, 9))  # distinct, none lost
        for m in plans:
            assert [v.version for v in reg.versions(f"own-{m}")] == [1, 2, 3, 4]
        for task, version, sha, seed in done:  # every version holds exactly the bytes its writer sent
            assert reg.show(task, version).weights_sha256 == sha
            assert torch.equal(reg.load_tensors(task, version)["head.weight"], sample_of.tensors(seed)["head.weight"])
        report = reg.verify()
        assert report.ok and report.checked_versions == 16, report.problems
        adds = reg.audit_events(action="add_version")
        retries = sum(e.details["attempt"] - 1 for e in adds)
        assert len(adds) == 16 and retries <= 16
        # a writer that lost a version number to the other wrote a file naming that number: an orphan, one per lost try
        assert len(report.orphans) <= retries and all(k.startswith(store_url) for k in report.orphans)
        keys = set(objects())
        assert len(keys) == 16 + len(report.orphans) and not any("/.tmp-" in k for k in keys)  # no temp key left

        monkeypatch.setattr(claims, "FLOOR_S", 0.0)
        assert sorted(reg.gc(min_age_s=0)) == sorted(report.orphans)
        after = reg.verify()
        assert after.ok and after.orphans == () and len(objects()) == 16
        assert all(reg.load_tensors(t, v) is not None for t, v, _, _ in done)
