"""Fork server for the crash and concurrency tests (not a test module).

Importing torch + the registry costs seconds per interpreter, so one server process
per test session imports them once and forks a fresh child per job: each child is a
separate OS process with its own database connections and files, killed for real by
SIGKILL at a crash point. The server itself never opens a database or runs a tensor
op, so forking it is safe.

Protocol (one JSON object per line):
  stdin   {"home": str, "url": str|null, "env": {...}, "jobs": [job, ...]}
  stdout  [{"exit": int|null, "signal": int|null, "result": ...|null, "error": str|null}, ...]
job: {"task": name, "count": n, "seed": s, "kwargs": {...draft fields, JSON-able (conftest.version_kwargs)...}}.
All jobs of one request start together (a barrier after opening the registry); a job
adds ``count`` versions with tensor seeds s, s+1, … and returns [[version, sha256], …].
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from conftest import branch_tensors, make_draft  # this directory is sys.path[0]

from forkpoint.registry import Registry


def _child(req: dict, job: dict, barrier: Path, parties: int, out: Path) -> None:
    os.environ.update(req.get("env") or {})
    reg = Registry.open(Path(req["home"]), req.get("url"))
    (barrier / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < parties and time.monotonic() < deadline:
        time.sleep(0.002)
    done = []
    for i in range(job.get("count", 1)):
        rec = reg.add_version(job["task"], make_draft(branch_tensors(job["seed"] + i), **job["kwargs"]))
        done.append([rec.version, rec.weights_sha256])
    reg.close()
    out.write_text(json.dumps(done))


def _serve(req: dict) -> list[dict]:
    jobs = req["jobs"]
    with tempfile.TemporaryDirectory() as tmp:
        barrier = Path(tmp)
        children = []
        for n, job in enumerate(jobs):
            out, err = barrier / f"out-{n}.json", barrier / f"err-{n}.txt"
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    _child(req, job, barrier, len(jobs), out)
                except BaseException:  # noqa: BLE001 - report everything to the test
                    err.write_text(traceback.format_exc())
                    code = 1
                os._exit(code)
            children.append((pid, out, err))
        replies = []
        for pid, out, err in children:
            _, status = os.waitpid(pid, 0)
            replies.append({
                "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "result": json.loads(out.read_text()) if out.exists() else None,
                "error": err.read_text() if err.exists() else None,
            })
        return replies


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(_serve(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
