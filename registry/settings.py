"""Registry-wide settings (``registry_setting``, 0005): where the weights live.

The store URL belongs in the database, not in each home, so every machine sharing one
PostgreSQL database finds the same store; it is chosen once. (The ``audit_key`` record
lives in the same table: registry/keying.py.)
"""

from __future__ import annotations


import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from forkpoint.registry.db import WRITE, db_errors as _db_errors
from forkpoint.registry.errors import InvalidInputError
from forkpoint.registry.models import Backbone, RegistrySetting, TaskVersion
from forkpoint.registry.provenance import default_actor
from forkpoint.registry.parts import now



STORE_URL = "store_url"  # registry_setting name (0005)


def recorded_store_url(engine: sa.Engine, db_url: str, wanted: str | None) -> str | None:
    """The database's store URL; with ``wanted`` (checked and probed by the caller), record it if none is set.

    A registry's store is chosen once: a different URL, or a first URL on a registry that
    already holds weights in its home's ``objects/``, would strand those weights, so both are refused."""
    with _db_errors(db_url), Session(engine) as s:
        row = s.get(RegistrySetting, STORE_URL)
        recorded = row.value if row is not None else None
    if wanted is None:
        return recorded
    if recorded is not None:
        if recorded != wanted:
            raise InvalidInputError(f"this registry keeps its weights in {recorded}, not {wanted}: "
                                    "drop --store (it is read from the database) or use a new --db/--home for another store")
        return recorded
    with _db_errors(db_url), Session(engine) as s:
        held = s.exec(select(sa.func.count()).select_from(TaskVersion)).one() + s.exec(
            select(sa.func.count()).select_from(Backbone).where(Backbone.trunk_sha256.is_not(None))).one()  # type: ignore[union-attr]
    if held:
        raise InvalidInputError(f"this registry already holds {held} weights object(s) in its home's objects/: "
                                f"a store is chosen at init; use a new --db/--home for {wanted}")
    try:
        with _db_errors(db_url), Session(engine.execution_options(**WRITE)) as s:
            s.add(RegistrySetting(name=STORE_URL, value=wanted, actor=default_actor(), set_at=now()))
            s.commit()
    except IntegrityError:  # another init recorded one first: agree with it or refuse
        return recorded_store_url(engine, db_url, wanted)
    return wanted
