"""What each registry page of the web UI shows, read from a :class:`Home` into plain dicts.

No HTML here (the Jinja templates in ``serving/templates`` lay it out, escaping everything)
and no writes: every function only reads the registry. The wording and formats are the
CLI's (``workflows.render``: ``branch_label``, ``pct``, ``lifecycle``), so ``forkpoint
tasks`` and the tasks page never disagree about a branch point or an accuracy.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from forkpoint.registry import AuditRecord, VersionRecord
from forkpoint.registry.evidence import LIVE_ACTIONS
from forkpoint.workflows.home import Home
from forkpoint.workflows.render import branch_label, ever_live_from, lifecycle, pct

# Every action the registry and the workflows log (docs/registry.md, audit_event table):
# the audit page's filter offers these, plus any other action present in the log.
KNOWN_ACTIONS = ("register_backbone", "attach_trunk", "retire_backbone", "add_version", "promote", "rollback",
                 "evaluate", "reproduce", "verify", "gc")
DEFAULT_EVENT_LIMIT = 200
MAX_EVENT_LIMIT = 5000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LIST_SHOWN = 6  # a longer list (a routing prototype: hundreds of floats) shows its first values and its length


def when(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def version_label(n: Any) -> str:
    return "-" if n is None else f"v{n}"


def has_profile(rec: VersionRecord) -> bool:
    """A version profiled its blocks (a fixed ``--branch`` did not): it has a profile plot to show."""
    return any(c.get("stage") == "profile" for c in rec.profile)


def backbone_view(home: Home) -> dict[str, Any]:
    b = home.record
    return {"arch": b.arch, "resolution": b.resolution, "fingerprint": b.fingerprint, "short": b.fingerprint[:12],
            "num_blocks": b.num_blocks, "weights": b.weights_source, "home": str(home.path)}


def version_row(rec: VersionRecord, ever_live: set[int]) -> dict[str, Any]:
    """One version as the tables show it (the live version's row is the task's row on the tasks page)."""
    return {
        "version": rec.version, "label": f"v{rec.version}", "state": lifecycle(rec, ever_live), "live": rec.live,
        "status": rec.status, "parent": version_label(rec.parent_version), "branch": branch_label(rec),
        "start": rec.branch_start, "stop": rec.branch_stop, "block_names": list(rec.block_names),
        "val_acc": pct(rec.metrics.get("val_acc")), "test_acc": pct(rec.metrics.get("test_acc")),
        "extra_cost": f"{rec.extra_cost_pct:.1f}%", "trainable": f"{rec.trainable_params:,}",
        "total": f"{rec.total_params:,}", "actor": rec.actor, "created": when(rec.created_at),
        "description": rec.description or "", "profiled": has_profile(rec), "data_md5": rec.data_md5 or "-",
        "data_path": rec.data_path or "-", "weights": rec.weights_sha256, "weights_kb": f"{rec.weights_bytes / 1024:,.1f}",
        "run_id": rec.run_id or "-", "num_classes": len(rec.class_names),
    }


def tasks_page(home: Home) -> dict[str, Any]:
    """Every task with its live version's branch point, accuracy and extra inference cost."""
    rows = []
    for task in home.registry.list_tasks():
        live = home.registry.show(task.name) if task.live_version is not None else None
        rows.append({
            "name": task.name, "live": version_label(task.live_version), "versions": task.num_versions,
            "classes": list(task.class_names), "updated": when(task.updated_at), "description": task.description,
            "row": version_row(live, set()) if live is not None else None,
        })
    return {"backbone": backbone_view(home), "tasks": rows}


def move_row(e: AuditRecord) -> dict[str, Any]:
    d = e.details
    return {"when": when(e.at), "actor": e.actor, "action": e.action, "version": version_label(e.version),
            "before": version_label(d.get("live_before")), "after": version_label(d.get("live_after")),
            "note": str(d.get("promote_refused") or d.get("reason") or "")}


def diff_rows(home: Home, task: str, v1: int, v2: int) -> list[dict[str, str]]:
    """``registry.diff``: the fields that differ between two versions, old and new value each."""
    changes = home.registry.diff(task, v1, v2).changes
    return [{"field": k, "old": shown(old), "new": shown(new)} for k, (old, new) in changes.items()]


def shown(value: Any, limit: int = 300) -> str:
    """A value in one table cell: strings as they are, floats to 4 significant digits, long lists summarised,
    the rest as compact JSON, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(_compact(value), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list) and len(value) > LIST_SHOWN:
        return [_compact(v) for v in value[:LIST_SHOWN]] + [f"… {len(value)} values"]
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    return value


def task_page(home: Home, name: str) -> dict[str, Any]:
    """A task's versions (newest first), its live pointer's moves, and the diff between each version and the one before."""
    history = home.registry.history(name)
    ever = ever_live_from(history.events)
    rows = [version_row(v, ever) for v in history.versions]
    numbers = [v.version for v in history.versions]
    diffs = [{"v1": a, "v2": b, "rows": diff_rows(home, name, a, b)} for a, b in zip(numbers, numbers[1:])]
    live = next((r for r in rows if r["live"]), None)
    # the live version's profile plot; a live fixed branch has none, so the newest profiled version's
    profiled = [r for r in rows if r["profiled"]]
    plot = live if live is not None and live["profiled"] else (profiled[-1] if profiled else None)
    task = history.task
    return {
        "name": task.name, "description": task.description, "classes": list(task.class_names),
        "live": live, "plot": plot, "live_label": version_label(task.live_version), "versions": list(reversed(rows)),
        "numbers": numbers, "moves": [move_row(e) for e in reversed(history.events) if e.action in LIVE_ACTIONS],
        "diffs": list(reversed(diffs)), "created": when(task.created_at), "updated": when(task.updated_at),
    }


def version_page(home: Home, name: str, version: int) -> dict[str, Any]:
    """One version in full: its record, what was profiled (every candidate and its score) and its profile plot."""
    rec = home.registry.show(name, version)
    row = version_row(rec, home.registry.ever_live(name))
    profile = [{"stage": c.get("stage", ""), "label": c.get("label") or "-", "params": f"{c.get('params', 0):,}",
                "cost": f"{c.get('extra_cost_pct', 0.0):.1f}%", "val_acc": pct(c.get("val_acc")),
                "seconds": f"{c.get('seconds', 0.0):.1f}"} for c in rec.profile]
    config = {k: shown(v) for k, v in sorted(rec.config.items()) if k != "routing"}
    return {"name": name, "row": row, "profile": profile, "classes": list(rec.class_names),
            "metrics": {k: shown(v) for k, v in sorted(rec.metrics.items())}, "config": config,
            "split_sizes": shown(rec.split_sizes), "lib_versions": shown(rec.lib_versions),
            "numbers": [v.version for v in home.registry.versions(name)]}


def parse_since(text: str | None) -> datetime | None:
    """``YYYY-MM-DD`` or an ISO-8601 time (UTC unless it says otherwise); ValueError names the format."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"since {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


HEX_RE = re.compile(r"[0-9a-f]{32,}")  # sha256 digests, row seals, DVC md5s, trunk fingerprints


def short(text: str) -> str:
    """Every long hex digest in ``text`` cut to 12 digits; the page keeps the full value in a tooltip."""
    return HEX_RE.sub(lambda m: m[0][:12] + "…", text)


def event_row(e: AuditRecord) -> dict[str, Any]:
    details = [(k, shown(v, 120)) for k, v in sorted(e.details.items())]
    return {"id": e.id, "when": when(e.at), "actor": e.actor, "action": e.action, "target": e.target,
            "target_short": short(e.target), "task": e.task or "", "version": version_label(e.version),
            "details": [(k, short(v), v) for k, v in details]}


def events_page(home: Home, task: str | None, action: str | None, since: str | None, limit: int | None) -> dict[str, Any]:
    """The audit log, newest first, filtered by task, action and time (``registry.audit_events``)."""
    error = None
    try:
        since_dt = parse_since(since)
    except ValueError as exc:
        since_dt, error = None, str(exc)
    limit = DEFAULT_EVENT_LIMIT if limit is None else max(1, min(limit, MAX_EVENT_LIMIT))
    events = [] if error else home.registry.audit_events(task=task or None, action=action or None, since=since_dt, limit=limit)
    tasks = [t.name for t in home.registry.list_tasks()]
    return {
        "events": [event_row(e) for e in reversed(events)], "error": error, "limit": limit,
        "filters": {"task": task or "", "action": action or "", "since": since or ""},
        "tasks": tasks, "actions": list(KNOWN_ACTIONS), "truncated": len(events) == limit,
    }


class PngCache:
    """Rendered plots by an immutable key (a version's weights hash never changes): drawn once, kept for a while."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple, bytes] = OrderedDict()

    def get(self, key: tuple, draw) -> bytes | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        png = draw()
        if png is not None:
            self._items[key] = png
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return png


def profile_png(home: Home, name: str, version: int) -> bytes | None:
    """The version's profile plot (the file add-task wrote, else drawn from its stored scores), or None."""
    from forkpoint.workflows.report import profile_png as stored_or_drawn

    rec = home.registry.show(name, version)
    if not has_profile(rec):
        return None
    png = stored_or_drawn(rec)
    return png if png is not None and png.startswith(PNG_MAGIC) else None
