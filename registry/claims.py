"""Claims on weights objects, so gc never deletes a file a write is about to reference.

A writer commits a claim (an ``object_claim`` row) *before* it writes the file and deletes
the claim in the transaction that commits the row using the file. gc reads claims and
references and deletes files under one store lock that claiming also takes, so for every
object gc considers, either the claim or the referencing row is visible to it, or the
claim is still waiting and the writer will (re)write the file after gc is done:

- SQLite: every write transaction is ``BEGIN IMMEDIATE``, i.e. the database write lock.
- PostgreSQL: claims and releases take a shared transaction advisory lock, gc an
  exclusive one.

Two more guards: gc never deletes an entry younger than :data:`FLOOR_S`, whatever its
``min_age_s`` says (a writer that predates claims, a temp file being written), and a
claim older than :data:`STALE_S` (its writer died) no longer protects its object.
Lock order, to stay deadlock-free: this store lock before the chain lock (registry/chain.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlmodel import Session, delete, select

from forkpoint.registry.models import ObjectClaim

FLOOR_S = 60.0  # gc never deletes younger entries
STALE_S = 3600.0  # a claim this old belongs to a writer that died
STORE_LOCK = 0x666F7273  # PostgreSQL advisory lock key: "fors"


def lock_store(s: Session, *, exclusive: bool) -> None:
    """Hold the store lock until this transaction ends (PostgreSQL; SQLite writers hold the database lock)."""
    if s.get_bind().dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        s.exec(sa.text(f"SELECT {fn}({STORE_LOCK})"))  # type: ignore[call-overload]


def claim(s: Session, sha256: str, actor: str) -> int:
    """Claim ``sha256`` (commit ``s`` before writing the file); returns the claim's id for :func:`release`."""
    lock_store(s, exclusive=False)
    row = ObjectClaim(sha256=sha256, claimed_at=datetime.now(timezone.utc), actor=actor)
    s.add(row)
    s.flush()
    assert row.id is not None
    return row.id


def release(s: Session, claim_id: int) -> None:
    """Drop a claim: in the transaction that commits the row using the object, or after a failed write."""
    lock_store(s, exclusive=False)
    s.exec(delete(ObjectClaim).where(ObjectClaim.id == claim_id))  # type: ignore[call-overload,arg-type]


def held(s: Session, *, drop_stale: bool) -> set[str]:
    """Digests with a live claim (call under the exclusive store lock); stale claims are deleted when ``drop_stale``."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=STALE_S)
    if drop_stale:
        s.exec(delete(ObjectClaim).where(ObjectClaim.claimed_at < cutoff))  # type: ignore[call-overload,arg-type]
    return set(s.exec(select(ObjectClaim.sha256).where(ObjectClaim.claimed_at >= cutoff)).all())
