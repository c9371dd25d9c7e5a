"""Run ids: one format for every run that writes something (add-task, stream runs)."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone


def new_run_id(prefix: str | None = None) -> str:
    """``[prefix-]YYYYmmddTHHMMSSZ-xxxxxx``: sorts by start time, unique enough, readable in version lists."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    return f"{prefix}-{stamp}" if prefix else stamp
