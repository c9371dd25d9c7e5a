"""How results look to people (rich tables) and to scripts (``--json``, keys documented in README).

Every function takes plain records and returns a rich renderable or a JSON-ready dict;
nothing here touches the registry or the model.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from rich.table import Table

from forkpoint.contract.preprocessing import Preprocessing
from forkpoint.registry import AuditRecord, BackboneRecord, TaskHistory, TaskRecord, VersionDiff, VersionRecord


def dumps(obj: Any) -> str:
    """Stable JSON: sorted keys, two-space indent, no NaN."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=False)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def branch_label(record: VersionRecord) -> str:
    """The CLI's inclusive ``START:END (first..last)`` (what ``--branch`` takes), or ``linear probe``."""
    units = record.units
    if units.is_probe:
        return "linear probe"
    names = list(record.block_names)
    span = names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
    return f"{units.human()} ({span})"


def lifecycle(rec: VersionRecord, ever_live: set[int]) -> str:
    """``live`` (served now), ``previously live`` (served once, not now) or ``staged`` (never served).

    ``status`` says how a version was registered (promoted or staged); this says where it stands."""
    if rec.live:
        return "live"
    return "previously live" if rec.version in ever_live or rec.status == "promoted" else "staged"


def ever_live_from(events: Iterable[AuditRecord]) -> set[int]:
    """Versions a task's live pointer was ever on, read from its audit events."""
    from forkpoint.registry.evidence import LIVE_ACTIONS

    return {e.details["live_after"] for e in events if e.action in LIVE_ACTIONS and e.details.get("live_after") is not None}


def history_dict(h: TaskHistory) -> dict:
    """``history --json``: the task record, its versions (as ``show``, with ``state``) and its events."""
    d = h.to_dict()
    ever = ever_live_from(h.events)
    for v, rec in zip(d["versions"], h.versions):
        v["state"] = lifecycle(rec, ever)
    return d


def backbone_dict(record: BackboneRecord, home: str, db: str, store: str) -> dict:
    d = record.to_dict()
    d.update(home=home, db=db, store=store, preprocessing=Preprocessing(record.resolution, record.mean, record.std).to_dict())
    return d


def backbone_table(record: BackboneRecord, home: str, db: str, store: str) -> Table:
    table = Table(title="forkpoint home", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in (
        ("home", home), ("database", db), ("weights store", store), ("backbone", record.arch), ("weights", record.weights_source),
        ("fingerprint", record.fingerprint), ("resolution", f"{record.resolution} px"),
        ("blocks", f"{record.num_blocks} ({record.block_names[0]} .. {record.block_names[-1]})"),
        ("trunk stored", "yes" if record.trunk_sha256 else "no (embedded weights)"),
    ):
        table.add_row(key, str(value))
    return table


def task_summary(task: TaskRecord, live: VersionRecord | None) -> dict:
    """One row of ``forkpoint tasks --json``."""
    return {
        "name": task.name,
        "live_version": task.live_version,
        "latest_version": task.latest_version,
        "num_versions": task.num_versions,
        "class_names": list(task.class_names),
        "backbone_fingerprint": task.backbone_fingerprint,
        "branch": None if live is None else {
            "start": live.branch_start, "stop": live.branch_stop, "block_names": list(live.block_names),
        },
        "val_acc": None if live is None else live.metrics.get("val_acc"),
        "test_acc": None if live is None else live.metrics.get("test_acc"),
        "extra_cost_pct": None if live is None else live.extra_cost_pct,
        "updated_at": task.to_dict()["updated_at"],
    }


def tasks_table(rows: list[tuple[TaskRecord, VersionRecord | None]]) -> Table:
    table = Table(title="tasks")
    for col in ("task", "live", "versions", "classes", "branch", "val acc", "test acc", "extra cost"):
        table.add_column(col, justify="right" if col in ("live", "versions", "val acc", "test acc", "extra cost") else "left")
    for task, live in rows:
        table.add_row(
            task.name,
            f"v{task.live_version}" if task.live_version is not None else "-",
            str(task.num_versions),
            _classes(task.class_names),
            branch_label(live) if live else "-",
            pct(live.metrics.get("val_acc")) if live else "-",
            pct(live.metrics.get("test_acc")) if live else "-",
            f"{live.extra_cost_pct:.1f}%" if live else "-",
        )
    return table


def _classes(names: Iterable[str], limit: int = 4) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return f"{len(names)}: {shown}{', ...' if len(names) > limit else ''}"


def version_table(rec: VersionRecord, ever_live: set[int] = frozenset()) -> Table:
    state = lifecycle(rec, set(ever_live))
    table = Table(title=f"{rec.task} v{rec.version} ({state})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    data = rec.config.get("data", {}) if isinstance(rec.config, dict) else {}
    rows = [
        ("status", f"{state} (registered {rec.status})"),
        ("parent version", str(rec.parent_version) if rec.parent_version is not None else "-"),
        ("description", rec.description or "-"),
        ("classes", _classes(rec.class_names, 10)),
        ("branch", branch_label(rec) + (" siamese" if rec.siamese else "")),
        ("head", "x".join(str(v) for v in rec.head_shape)),
        ("trainable params", f"{rec.trainable_params:,} of {rec.total_params:,}"),
        ("extra inference cost", f"{rec.extra_cost_pct:.1f}% of one trunk pass"),
        ("val acc", pct(rec.metrics.get("val_acc"))),
        ("test acc", pct(rec.metrics.get("test_acc"))),
        ("data", f"{data.get('source', rec.data_path)} ({rec.data_path})"),
        ("data DVC md5", rec.data_md5 or "-"),
        ("split sizes", ", ".join(f"{k}={v}" for k, v in rec.split_sizes.items())),
        ("weights", f"{rec.weights_path} ({rec.weights_bytes:,} bytes)"),
        ("profile plot", str(rec.config.get("profile_plot") or "-")),
        ("run id", rec.run_id or "-"),
        ("created", f"{rec.to_dict()['created_at']} by {rec.actor}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def profile_table(rec: VersionRecord) -> Table | None:
    if not rec.profile:
        return None
    table = Table(title=f"{rec.task} v{rec.version}: finetuning profile")
    for col in ("stage", "blocks", "params", "extra cost", "val acc"):
        table.add_column(col, justify="left" if col in ("stage", "blocks") else "right")
    for c in rec.profile:
        table.add_row(str(c.get("stage")), str(c.get("label")), f"{c.get('params', 0):,}",
                      f"{c.get('extra_cost_pct', 0):.1f}%", pct(c.get("val_acc")))
    return table


def history_tables(h: TaskHistory) -> tuple[Table, Table]:
    versions = Table(title=f"{h.task.name}: versions")
    for col in ("version", "status", "description", "parent", "branch", "val acc", "test acc", "extra cost", "created", "by"):
        versions.add_column(col, overflow="fold" if col == "description" else None)
    ever = ever_live_from(h.events)
    for v in h.versions:
        versions.add_row(
            f"v{v.version}", lifecycle(v, ever), v.description or "-", str(v.parent_version or "-"), branch_label(v),
            pct(v.metrics.get("val_acc")), _acc_of(v, "test"), f"{v.extra_cost_pct:.1f}%",
            v.to_dict()["created_at"][:19], v.actor,
        )
    return versions, events_table(h.events, f"{h.task.name}: audit events")


def events_table(events: Iterable[AuditRecord], title: str = "audit events") -> Table:
    table = Table(title=title)
    for col in ("id", "at", "actor", "action", "target", "details"):
        table.add_column(col, overflow="fold")
    for e in events:
        details = {k: v for k, v in e.details.items() if k in ("live_before", "live_after", "promoted", "ok", "problems", "bytes_freed", "dry_run",
                                                                  "accuracy", "images", "data_md5", "reason")}
        table.add_row(str(e.id), e.to_dict()["at"][:19], e.actor, e.action, e.target, json.dumps(details) if details else "")
    return table


def diff_table(d: VersionDiff, a: VersionRecord, b: VersionRecord) -> Table:
    """Differing fields, accuracies as rounded percentages with the split size they were measured on."""
    table = Table(title=f"{d.task}: v{d.v1} ({a.description or 'no description'}) -> v{d.v2} ({b.description or 'no description'})")
    table.add_column("field")
    table.add_column(f"v{d.v1}", overflow="fold")
    table.add_column(f"v{d.v2}", overflow="fold")
    for key, (old, new) in d.changes.items():
        table.add_row(key, _shown(key, old, a), _shown(key, new, b))
    sizes = (a.split_sizes.get("test"), b.split_sizes.get("test"))
    if "metrics.test_acc" in d.changes and sizes[0] != sizes[1]:
        table.add_row("note", f"test accuracy over {sizes[0]} images", f"over {sizes[1]} images: not directly comparable")
    return table


def _acc_of(rec: VersionRecord, split: str) -> str:
    """``91.2% of 500``: an accuracy with the number of images it was measured on."""
    value = rec.metrics.get(f"{split}_acc")
    n = rec.split_sizes.get(split)
    return pct(value) + (f" of {n}" if value is not None and n else "")


def _shown(key: str, value: Any, rec: VersionRecord) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        if key in ("metrics.val_acc", "metrics.test_acc"):
            return _acc_of(rec, key.split(".")[1].removesuffix("_acc"))
        if key.startswith("metrics.") and ("acc" in key or "per_class" in key):
            return pct(value)
        return f"{value:.4g}" if value == 0 or abs(value) >= 1e-3 else f"{value:.1e}"  # 0.0001201 s -> 1.2e-04
    if isinstance(value, list) and len(value) > 8:  # a routing record's prototypes, a long profile...
        return f"[{len(value)} values]"
    return _short(value)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def predictions_table(preds, tasks: list[str]) -> Table:
    table = Table(title="predictions")
    table.add_column("image", overflow="fold")
    for t in tasks:
        table.add_column(t)
    for p in preds:
        table.add_row(p.path, *(f"{p.tasks[t].label} ({100 * p.tasks[t].probability:.1f}%)" for t in tasks))
    return table


def added_dict(added) -> dict:
    """``add-task --json``."""
    r, v = added.report, added.version
    return {"task": v.task, "version": v.version, "live": v.live, "weights_sha256": v.weights_sha256,
            "fingerprints": r.fingerprints, "report": r.to_dict(), "notes": list(added.notes)}


def added_table(added) -> Table:
    """What add-task prints: where it forks, how good, what it costs, and that nothing else moved."""
    r, v = added.report, added.version
    table = Table(title=f"{v.task} v{v.version} registered{' (live)' if v.live else ' (staged, not live)'}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    others = [t for t in added.live.tasks if t != v.task]
    for key, value in (
        ("branch point", branch_label(v) + (" siamese" if v.siamese else "")),
        ("validation accuracy", pct(r.val_acc)),
        ("test accuracy", pct(r.test_acc)),
        ("extra inference cost", f"{r.extra_cost_pct:.1f}% of one trunk pass"),
        ("trainable params", f"{r.trainable_params:,} of {r.total_params:,}"),
        ("no forgetting", f"trunk and {len(others)} other task(s) unchanged (fingerprints checked)"),
        ("profile plot", r.plot or "- (fixed --branch: no profile)"),
        ("time", f"{r.timings['total_s']:.1f} s on {r.device}"),
        *(("note", note) for note in added.notes),
    ):
        table.add_row(key, value)
    return table
