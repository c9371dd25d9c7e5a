"""The audit log as a hash chain: deleting, inserting or editing an event breaks a link.

Each event stores ``prev_hash`` (the previous event's ``event_hash``; :data:`GENESIS` for
the first) and ``event_hash``, the seal (registry/digest.py) of its own fields and
``prev_hash``. Appends are serialised, so the chain is the id order: SQLite's write
transactions already are (``BEGIN IMMEDIATE``); PostgreSQL takes a transaction advisory
lock here. ``prev_hash`` is unique, so even an unserialised writer cannot fork the chain.

What the chain cannot show on its own: the newest events cut off together with the
state they describe (no later event commits to them). :func:`walk` returns the head hash
so an operator can record it elsewhere and compare later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlalchemy as sa
from sqlmodel import Session, select

from forkpoint.registry import digest
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
    head = s.exec(select(AuditEvent.event_hash).order_by(AuditEvent.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    event.prev_hash = head or GENESIS
    event.event_hash = digest.seal(payload(event))
    s.add(event)
    s.flush()
    return event


@dataclass
class ChainCheck:
    """What :func:`walk` found: problems, the head hash, and the id of the first keyed event."""

    problems: list[str] = field(default_factory=list)
    head: str = GENESIS
    first_keyed_id: int | None = None


def walk(events: Iterable[AuditEvent]) -> ChainCheck:
    """Check every link and seal, oldest first. With an audit key set, events written
    without it are accepted only before the first keyed one (they predate the key and
    that event commits to them); an unkeyed event after it was forged or written by a
    process without the key."""
    out = ChainCheck()
    keyed_now = digest.audit_key() is not None
    unchecked = 0
    for e in events:
        name = f"audit event {e.id} ({e.action} {e.target})"
        if e.prev_hash != out.head:
            out.problems.append(f"{name} does not follow the event before it: events were deleted, inserted or reordered")
        if digest.is_keyed(e.event_hash) and not keyed_now:
            unchecked += 1
        elif reason := digest.check(e.event_hash, payload(e)):
            out.problems.append(f"{name} {reason}")
        if digest.is_keyed(e.event_hash):
            if out.first_keyed_id is None:
                out.first_keyed_id = e.id
        elif keyed_now and out.first_keyed_id is not None:
            out.problems.append(f"{name} is not sealed with the audit key although earlier events are: it was forged or written without {digest.KEY_ENV}")
        out.head = e.event_hash
    if unchecked:
        out.problems.append(f"{unchecked} audit event(s) are sealed with an audit key, which is not set: set {digest.KEY_ENV} to check them")
    return out
