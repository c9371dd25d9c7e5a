"""The audit log as a hash chain: deleting, inserting or editing an event breaks a link.

Each event stores ``prev_hash`` (the previous event's ``event_hash``; :data:`GENESIS` for
the first) and ``event_hash``, the seal (registry/digest.py) of its own fields and
``prev_hash``. Appends are serialised, so the chain is the id order: SQLite's write
transactions already are (``BEGIN IMMEDIATE``); PostgreSQL takes a transaction advisory
lock here. ``prev_hash`` is unique, so even an unserialised writer cannot fork the chain.

What the chain cannot show on its own: the newest events cut off together with the
state they describe (no later event commits to them). :func:`walk` returns the head hash
so an operator can record it elsewhere and compare later. Once an event is sealed with
the audit key the registry records it (registry/keying.py), and every later event must be
keyed: re-sealing them with plain SHA-256 (a downgrade) is found without the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlalchemy as sa
from sqlmodel import Session, select

from forkpoint.registry import digest, keying
from forkpoint.registry.models import AuditEvent
from forkpoint.registry.records import utc

GENESIS = "genesis"
CHAIN_LOCK = 0x666F7263  # PostgreSQL advisory lock key: "forc"


def payload(e: AuditEvent) -> dict[str, Any]:
    """What an event's seal covers: every field but its id and its own hash."""
    return {
        "prev": e.prev_hash, "at": utc(e.at).isoformat(), "actor": e.actor, "action": e.action,
        "target": e.target, "task": e.task, "version": e.version, "details": e.details,
    }


def lock(s: Session) -> None:
    """Hold the chain until this transaction ends (PostgreSQL; SQLite writers are serialised already).

    Writers take it before touching rows, after the store lock (registry/claims.py) if they
    take that: one order for everyone, so no two writers can deadlock."""
    if s.get_bind().dialect.name == "postgresql":
        s.exec(sa.text(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"))  # type: ignore[call-overload]


def append(s: Session, event: AuditEvent) -> AuditEvent:
    """Link ``event`` to the newest event and add it to ``s`` (inside a write transaction)."""
    lock(s)
    keyed = keying.before_append(s)  # refuses to seal a keyed registry's event without its key
    head = s.exec(select(AuditEvent.event_hash).order_by(AuditEvent.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    event.prev_hash = head or GENESIS
    event.event_hash = digest.seal(payload(event))
    s.add(event)
    s.flush()
    keying.after_append(s, keyed, event.id)  # type: ignore[arg-type]
    return event


@dataclass
class ChainCheck:
    """What :func:`walk` found: problems, the head hash, and the id of the first keyed event."""

    problems: list[str] = field(default_factory=list)
    head: str = GENESIS
    first_keyed_id: int | None = None


def walk(events: Iterable[AuditEvent], record: keying.Keying | str | None = None) -> ChainCheck:
    """Check every link and seal, oldest first. ``record`` is the registry's audit key record
    (registry/keying.py): from its first event on, an event sealed without the key is a
    finding whether or not this process has the key. Without a record, unkeyed events are
    accepted only before the first keyed one (they predate the key and it commits to them)."""
    out = ChainCheck()
    keyed_now = digest.audit_key() is not None
    keyed_from = record.first_event if isinstance(record, keying.Keying) else None
    unchecked = 0
    seen_keyed: int | None = None
    ids: set[int] = set()
    for e in events:
        ids.add(e.id)  # type: ignore[arg-type]
        name = f"audit event {e.id} ({e.action} {e.target})"
        if e.prev_hash != out.head:
            out.problems.append(f"{name} does not follow the event before it: events were deleted, inserted or reordered")
        keyed = digest.is_keyed(e.event_hash)
        if keyed and not keyed_now:
            unchecked += 1
        elif reason := digest.check(e.event_hash, payload(e)):
            out.problems.append(f"{name} {reason}")
        if keyed and seen_keyed is None:
            seen_keyed = e.id
        if not keyed and keyed_from is not None and e.id >= keyed_from:  # type: ignore[operator]
            out.problems.append(f"{name} is not sealed with the audit key although the registry is keyed from event "
                                f"{keyed_from} on: it was re-sealed without the key (a downgrade) or forged")
        elif not keyed and keyed_from is None and seen_keyed is not None:
            out.problems.append(f"{name} is not sealed with the audit key although earlier events are: it was forged or written without {digest.KEY_ENV}")
        out.head = e.event_hash
    out.first_keyed_id = keyed_from if keyed_from is not None else seen_keyed
    out.problems += keying.problems(record, seen_keyed, ids)
    if unchecked:
        out.problems.append(f"{unchecked} audit event(s) are sealed with an audit key, which is not set: set {digest.KEY_ENV} to check them")
    return out
