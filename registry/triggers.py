"""The insert-only triggers, as the migrations installed them, and a check that they still are.

A trigger that exists is not enough: someone with database write access can rewrite it to
never fire (SQLite: ``WHEN 0``, ``BEFORE UPDATE OF one_column``; PostgreSQL: a function that
returns the row instead of raising, a ``WHEN (false)``, a disabled or replica-only trigger).
So each trigger's definition is compared with the one its migration wrote (whitespace
normalised): SQLite's stored ``CREATE TRIGGER`` text; PostgreSQL's ``pg_get_triggerdef``,
its enabled state, and its function's language and body. The definitions are written out
here rather than imported from the revisions, which must keep meaning what they shipped as.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import Session

# table -> its word: audit_event is "append-only" (0001), the others "insert-only" (0004, 0006, 0007)
_TABLES = {
    "audit_event": "append-only",
    "task_version": "insert-only",
    "reference_output": "insert-only",
    "registry_setting": "insert-only",
    "head_stats": "insert-only",
    "agnostic_head": "insert-only",
}
_PG_FUNCTION = {t: f"{t}_append_only" if kind == "append-only" else f"{t}_insert_only" for t, kind in _TABLES.items()}


def _norm(text: str) -> str:
    return " ".join(str(text).replace("public.", "").split()).rstrip(";")


def sqlite_expected() -> dict[str, str]:
    out = {}
    for table, kind in _TABLES.items():
        for op in ("UPDATE", "DELETE"):
            name = f"{table}_no_{op.lower()}"
            out[name] = (f"CREATE TRIGGER {name} BEFORE {op} ON {table} BEGIN SELECT RAISE(ABORT, "
                         f"'{table} is {kind}: {op} refused'); END")
    return out


def pg_expected() -> dict[str, tuple[str, str, str]]:
    """name -> (table, trigger definition, function body)."""
    out = {}
    for table, kind in _TABLES.items():
        fn = _PG_FUNCTION[table]
        body = f"BEGIN RAISE EXCEPTION '{table} is {kind}: % refused', TG_OP; END"
        out[f"{table}_no_update"] = (table, f"CREATE TRIGGER {table}_no_update BEFORE DELETE OR UPDATE ON {table} "
                                            f"FOR EACH ROW EXECUTE FUNCTION {fn}()", body)
        out[f"{table}_no_truncate"] = (table, f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                              f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()", body)
    return out


def broken(s: Session) -> list[str]:
    """Names of insert-only triggers that are missing, disabled or rewritten (not as the migration wrote them)."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        rows = s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid), t.tgenabled, p.prosrc, l.lanname "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_language l ON l.oid = p.prolang WHERE NOT t.tgisinternal")).all()
        found = {(name, rel): (defn, enabled, src, lang) for name, rel, defn, enabled, src, lang in rows}
        bad = []
        for name, (table, defn, body) in pg_expected().items():
            got = found.get((name, table))
            if got is None or got[1] not in ("O", "A") or got[3] != "plpgsql" or _norm(got[0]) != _norm(defn) \
                    or _norm(got[2]) != _norm(body):
                bad.append(name)
        return bad
    rows = s.exec(sa.text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")).all()  # type: ignore[call-overload]
    found_sql = {name: (tbl, sql) for name, tbl, sql in rows}
    bad = []
    for name, sql in sqlite_expected().items():
        table = re.sub(r"_no_(update|delete)$", "", name)
        got = found_sql.get(name)
        if got is None or got[0] != table or _norm(got[1] or "") != _norm(sql):
            bad.append(name)
    return bad
