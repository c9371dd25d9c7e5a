"""Through the CLI, on "different machines": one PostgreSQL database and one S3 store, a home per machine.

Machine A runs ``init --store``; B and C run ``add-task`` at the same time (separate
processes, homes and data roots); a server on machine S, started before either task
existed, follows both; A predicts with both tasks and the audit is clean.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkpoint.cli import main
from forkpoint.workflows.samples import write_samples

pytestmark = [pytest.mark.s3, pytest.mark.postgres]
FORKPOINT = str(Path(sys.executable).parent / "forkpoint")
QUICK = ["--epochs", "1", "--limit-per-class", "5", "--patience", "0", "--branch", "15:15"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _readyz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return json.loads(r.read())
    except Exception:  # noqa: BLE001 - not up yet, or 503 while nothing is live
        return {}


def test_two_machines_add_tasks_through_the_cli_and_a_server_follows_both(tmp_path, pg_url, s3_env, store_url, objects):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORKPOINT_", "AWS_"))}
    env.update(s3_env, OMP_NUM_THREADS="1", COLUMNS="200")

    def forkpoint(machine: str, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([FORKPOINT, "--home", str(tmp_path / machine), "--db", pg_url, *args],
                                env={**env, "FORKPOINT_DATA": str(tmp_path / f"data-{machine}")},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def ok(machine: str, *args: str) -> str:  # machine A runs in this process (saves a torch import)
        done = CliRunner().invoke(main, ["--home", str(tmp_path / machine), "--db", pg_url, *args],
                                  env={"FORKPOINT_HOME": None, "FORKPOINT_DB": None}, catch_exceptions=False)
        assert done.exit_code == 0, f"{machine}: forkpoint {' '.join(args)}: {done.output[-3000:]}"
        return done.stdout

    ok("a", "init", "--resolution", "32", "--store", store_url)
    port = _free_port()
    server = forkpoint("s", "-q", "serve", "--port", str(port), "--poll-s", "0.2")
    try:
        writers = {m: forkpoint(m, "-q", "add-task", task, "--data", task, *QUICK, "--json")
                   for m, task in (("b", "digits"), ("c", "mnist"))}
        write_samples("digits", tmp_path / "samples", data_root=tmp_path / "data-a")  # meanwhile, for predict
        added = {}
        for m, p in writers.items():
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, f"{m}: {err[-3000:]}"
            added[m] = json.loads(out)
        assert {(a["task"], a["version"], a["live"]) for a in added.values()} == {("digits", 1, True), ("mnist", 1, True)}
        keys = set(objects())
        assert {f"weights/{a['weights_sha256'][:2]}/{a['weights_sha256']}.safetensors" for a in added.values()} <= keys
        assert not any((tmp_path / m / "objects").exists() for m in "abcs")  # every machine used the bucket

        deadline = time.monotonic() + 90
        while _readyz(port).get("versions") != {"digits": 1, "mnist": 1} and time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()[1][-3000:]
            time.sleep(0.3)
        assert _readyz(port).get("versions") == {"digits": 1, "mnist": 1}  # the server followed both writers
    finally:
        server.terminate()
        server.communicate(timeout=30)

    predicted = json.loads(ok("a", "predict", str(tmp_path / "samples" / "3_0.png"), "--json"))
    assert predicted["versions"] == {"digits": 1, "mnist": 1}
    audit = json.loads(ok("a", "audit", "--no-data", "--json"))
    assert audit["ok"] is True and audit["problems"] == [] and audit["orphans"] == []
