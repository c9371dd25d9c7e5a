"""Child process for the crash and concurrency tests (not a test module).

    python registry_worker.py HOME DB_URL|- JOB_JSON

JOB: {"task": name, "count": n, "seed": s, "kwargs": {...add_version kwargs...},
      "go_file": path or null}. Waits for go_file (a start barrier), adds ``count``
versions with tensor seeds s, s+1, …, and prints [[version, sha256], …] as JSON.
With FORKPOINT_CRASH_AT set, the registry SIGKILLs this process at that point.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conftest import branch_tensors  # this directory is sys.path[0]

from registry import Registry


def main() -> None:
    home, url, job = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    reg = Registry.open(home, None if url == "-" else url)
    go = job.get("go_file")
    deadline = time.monotonic() + 60
    while go and not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    done = []
    for i in range(job.get("count", 1)):
        seed = job["seed"] + i
        rec = reg.add_version(job["task"], tensors=branch_tensors(seed), **job["kwargs"])
        done.append([rec.version, rec.weights_sha256])
    reg.close()
    print(json.dumps(done))


if __name__ == "__main__":
    main()
