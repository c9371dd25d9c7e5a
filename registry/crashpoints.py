"""Test seam: die with SIGKILL at a named point of a write.

Only the crash-safety tests set ``FORKPOINT_CRASH_AT`` (in a child process they then
kill); unset, :func:`crash_point` is a dictionary lookup and nothing else. Points:

``before_write``    inputs validated, nothing written yet
``after_claim``     the object's claim committed, no file yet
``after_rename``    weights file in place, no database transaction yet
``mid_transaction`` version row and audit event sent to the database, not committed
``stream_registered_N`` a stream run has registered its N-th task (scenarios' resume tests)
"""

from __future__ import annotations

import os
import signal

ENV = "FORKPOINT_CRASH_AT"
POINTS = ("before_write", "after_claim", "after_rename", "mid_transaction")


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
