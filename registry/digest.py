"""Seals: digests over what a row says, so an edit made behind the registry's back shows.

A seal is ``"sha256:<hex>"`` or, when ``FORKPOINT_AUDIT_KEY`` is set, ``"hmac-sha256:<hex>"``
over the canonical JSON of a payload. Without a key a seal catches edits by anyone who
does not also recompute it (a hand-written UPDATE, a restored partial backup); with a key,
someone with database write access alone cannot forge one. A keyed seal cannot be checked
without the key: that is reported, never skipped.

Version rows seal :func:`version_payload` (everything that decides what is served); audit
events seal their fields and the previous event's seal (registry/chain.py). Torch-free.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Mapping, Sequence

KEY_ENV = "FORKPOINT_AUDIT_KEY"
PLAIN = "sha256"
KEYED = "hmac-sha256"


def audit_key() -> bytes | None:
    """The HMAC key from the environment, or None (read on every call: tests and operators set it late)."""
    value = os.environ.get(KEY_ENV)
    return value.encode() if value else None


def canonical(payload: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, no NaN."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def seal(payload: Any, key: bytes | None = None) -> str:
    """The seal of ``payload``: keyed when ``key`` (default: the environment's) is set."""
    key = key if key is not None else audit_key()
    body = canonical(payload)
    if key:
        return f"{KEYED}:{hmac.new(key, body, hashlib.sha256).hexdigest()}"
    return f"{PLAIN}:{hashlib.sha256(body).hexdigest()}"


def is_keyed(stored: str | None) -> bool:
    return bool(stored) and str(stored).startswith(f"{KEYED}:")


def check(stored: str | None, payload: Any) -> str | None:
    """None when ``stored`` seals ``payload`` under its own scheme, else why not (a phrase)."""
    scheme = (stored or "").partition(":")[0]
    if scheme == KEYED:
        key = audit_key()
        if key is None:
            return f"is sealed with an audit key, which is not set: set {KEY_ENV} to check it"
        expected = seal(payload, key)
    elif scheme == PLAIN:
        expected = seal(payload, b"")
    else:
        return "has no seal"
    return None if hmac.compare_digest(str(stored), expected) else "does not match its seal (edited outside the registry)"


def version_payload(
    task: str,
    version: int,
    backbone_fingerprint: str,
    branch: Mapping[str, Any],
    class_names: Sequence[str],
    weights_sha256: str,
    data_md5: str | None,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """What a version row's seal covers: the fields that decide what ``live``/``predict`` serve.

    Not covered (free to read, not trusted for serving): metrics, profile, description,
    split sizes, params counts, lib versions, run id, actor, times, status, parent.
    """
    return {
        "task": task, "version": int(version), "backbone": backbone_fingerprint, "branch": dict(branch),
        "class_names": list(class_names), "weights_sha256": weights_sha256, "data_md5": data_md5,
        "config": dict(config),
    }
