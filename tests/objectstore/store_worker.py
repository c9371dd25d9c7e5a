"""One "machine" of the many-writers test (not a test module): its own home, the shared database and store.

argv[1] is a JSON request: {"home", "url", "ready_dir", "parties", "jobs": [[task, seed], ...], "out"}.
Opens the registry (the store comes from the database), waits until every party is ready,
then adds one version per job with the registry suite's sample tensors for that seed and
writes [[task, version, sha256, seed], ...] to ``out``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
from conftest import branch_tensors, make_draft, version_kwargs  # noqa: E402 - the registry suite's samples

from forkpoint.registry import Registry  # noqa: E402


def main() -> None:
    req = json.loads(sys.argv[1])
    reg = Registry.open(Path(req["home"]), req["url"])
    ready = Path(req["ready_dir"])
    (ready / f"ready-{Path(req['home']).name}").touch()
    deadline = time.monotonic() + 60
    while len(list(ready.glob("ready-*"))) < req["parties"] and time.monotonic() < deadline:
        time.sleep(0.005)
    done = []
    for task, seed in req["jobs"]:
        rec = reg.add_version(task, make_draft(branch_tensors(seed), **version_kwargs(seed)))
        done.append([task, rec.version, rec.weights_sha256, seed])
    reg.close()
    Path(req["out"]).write_text(json.dumps({"store": type(reg.store).__name__, "done": done}))


if __name__ == "__main__":
    main()
