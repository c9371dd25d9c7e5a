"""Once keyed, always keyed: the registry remembers that its seals use an audit key.

Without a record of it, someone with database write access could re-seal every row and
event with plain SHA-256 (the public algorithm) and the registry would look as if it had
never been keyed. So the first write sealed with ``FORKPOINT_AUDIT_KEY`` also inserts the
``audit_key`` setting (insert-only, 0006): the key's id (an HMAC of a fixed label, so the id
says which key without revealing it) and the id of the first keyed audit event. From that
event on, every event and every version added must carry a keyed seal, whether or not the
checking process has the key; a writer without the key (or with another one) is refused.

The record needs no seal of its own: the event it names must exist and be keyed, and every
later one too; moving it later would leave earlier keyed events' successors unkeyed, and
re-sealing events before it breaks the chain into that keyed event. Deleting it takes the
triggers off registry_setting as well, and leaves keyed seals without a record (found);
only a registry whose every keyed seal was removed with it looks never keyed, which is why
``audit`` prints the key id and chain head to keep elsewhere (docs/registry.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from forkpoint.registry import digest
from forkpoint.registry.errors import AuditKeyError
from forkpoint.registry.models import RegistrySetting
from forkpoint.registry.provenance import default_actor

SETTING = "audit_key"
UNRECORDED = "unrecorded"  # keyed before the record existed, and the key was not set when 0006 ran
_LABEL = b"forkpoint audit key id v1"


def key_id(key: bytes) -> str:
    """A short public name for ``key``: equal ids, equal keys (with overwhelming probability)."""
    return hmac.new(key, _LABEL, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Keying:
    """The registry's ``audit_key`` record: which key, and the first audit event sealed with it."""

    key_id: str
    first_event: int

    @classmethod
    def parse(cls, value: str) -> "Keying | str":
        """The record, or why it is unreadable (a phrase)."""
        try:
            d = json.loads(value)
            return cls(str(d["key_id"]), int(d["first_event"]))
        except (ValueError, KeyError, TypeError):
            return f"the registry's audit key record {value[:80]!r} is unreadable (edited outside the registry)"

    def value(self) -> str:
        return json.dumps({"key_id": self.key_id, "first_event": self.first_event}, sort_keys=True)


def read(s: Session) -> Keying | str | None:
    """The record (None: never keyed; a str: why it cannot be read). A schema older than 0005
    (only ever seen by tools that populate old schemas) has no record."""
    try:
        with s.begin_nested():
            row = s.get(RegistrySetting, SETTING)
    except (OperationalError, ProgrammingError):
        return None
    return None if row is None else Keying.parse(row.value)


def before_append(s: Session) -> Keying | None:
    """Refuse a write that would seal without this registry's key; the record (None: not keyed yet)."""
    rec = read(s)
    if isinstance(rec, str):
        raise AuditKeyError(f"{rec}: restore the registry database from a backup and run `forkpoint audit`")
    key = digest.audit_key()
    if rec is None:
        return None
    if key is None:
        raise AuditKeyError(f"this registry is sealed with an audit key (id {rec.key_id}): set {digest.KEY_ENV} to write to it")
    if rec.key_id not in (UNRECORDED, key_id(key)):
        raise AuditKeyError(f"{digest.KEY_ENV} has id {key_id(key)}, but this registry is sealed with key id {rec.key_id}: "
                            "set the registry's key")
    return rec


def after_append(s: Session, rec: Keying | None, event_id: int) -> None:
    """Record the keying in the transaction of the first keyed event."""
    key = digest.audit_key()
    if rec is None and key is not None:
        s.add(RegistrySetting(name=SETTING, value=Keying(key_id(key), event_id).value(), actor=default_actor(),
                              set_at=datetime.now(timezone.utc)))
        s.flush()


def problems(rec: Keying | str | None, first_keyed_seen: int | None, event_ids: set[int]) -> list[str]:
    """What is wrong with the record itself, given the first keyed event found in the log."""
    if isinstance(rec, str):
        return [rec]
    key = digest.audit_key()
    if rec is None:
        if first_keyed_seen is not None:
            return [f"audit event {first_keyed_seen} and later ones are sealed with an audit key, but the registry's "
                    f"audit key record is missing: it was deleted (a downgrade to unkeyed seals)"]
        return []
    out = []
    if rec.first_event not in event_ids:
        out.append(f"the registry is keyed from audit event {rec.first_event} (key id {rec.key_id}), which does not exist: "
                   "the log was cut or the record edited")
    if key is not None and rec.key_id not in (UNRECORDED, key_id(key)):
        out.append(f"{digest.KEY_ENV} has id {key_id(key)}, but this registry is sealed with key id {rec.key_id}: "
                   "set the registry's key")
    return out
