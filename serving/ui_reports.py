"""Stream-run reports for the web UI: the run folders ``forkpoint stream run --out`` writes.

A run folder holds ``run.json`` (id, status, what it runs; written first), ``results/<strategy>.json``
(each strategy as it finishes) and, once the run ends, ``report.json`` (everything),
``report.md`` and ``heatmap-<strategy>.png`` (scenarios/report.py). The UI lists the run
folders directly under ``--reports DIR`` (or DIR itself when it is one), shows each one's
table and accuracy matrices, and serves the heatmaps it wrote (or draws one from the
matrix when the PNG is missing). Only folders found by that scan are ever read: a URL names
a run by its folder name, never by a path.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUN_FILE, REPORT_FILE = "run.json", "report.json"
HEATMAP_RE = re.compile(r"heatmap-([A-Za-z0-9_.+-]+)\.png")


@dataclass(frozen=True)
class RunFolder:
    name: str
    path: Path

    @property
    def finished(self) -> bool:
        return (self.path / REPORT_FILE).is_file()


def _is_run(folder: Path) -> bool:
    return (folder / REPORT_FILE).is_file() or (folder / RUN_FILE).is_file()


def find_runs(reports_dir: Path | None) -> dict[str, RunFolder]:
    """Run folders by name, newest first (by the time their files last changed)."""
    if reports_dir is None or not reports_dir.is_dir():
        return {}
    folders = [reports_dir] if _is_run(reports_dir) else [p for p in reports_dir.iterdir() if p.is_dir() and _is_run(p)]
    folders.sort(key=_mtime, reverse=True)
    return {f.name: RunFolder(f.name, f) for f in folders}


def _mtime(folder: Path) -> float:
    files = [folder / REPORT_FILE, folder / RUN_FILE]
    return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_run(run: RunFolder) -> dict[str, Any]:
    """``report.json`` when the run finished; else ``run.json`` and the strategies finished so far."""
    report = _read_json(run.path / REPORT_FILE)
    if report is not None:
        return report
    state = _read_json(run.path / RUN_FILE) or {}
    identity = state.get("identity") or {}
    results = [r for p in sorted((run.path / "results").glob("*.json")) if (r := _read_json(p)) is not None]
    return {"run_id": state.get("run_id", run.name), "status": state.get("status", "unreadable"),
            "stream": identity.get("stream") or {}, "settings": identity.get("settings") or {}, "results": results,
            "backbone": _backbone(identity.get("backbone"))}


def _backbone(value: Any) -> dict[str, Any]:
    """run.json names the trunk by its fingerprint alone; report.json describes it."""
    return value if isinstance(value, dict) else {"fingerprint": str(value or "?")}


def _acc(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def _results(data: dict[str, Any]) -> list:
    """The strategies' results as ``StrategyResult``s; an entry that does not read as one is left out."""
    from forkpoint.scenarios.report import StrategyResult

    out = []
    for r in data.get("results") or []:
        try:
            out.append(StrategyResult.from_dict(r))
        except (TypeError, ValueError, AttributeError):
            continue
    return out


def summary(run: RunFolder) -> dict[str, Any]:
    """One row of the reports list: id, status, stream, tasks, each strategy's average accuracy."""
    data = load_run(run)
    stream = data.get("stream") or {}
    return {"name": run.name, "run_id": data.get("run_id", run.name), "status": data.get("status", "?"),
            "stream": stream.get("name", "?"), "tasks": [t.get("name", "?") for t in stream.get("tasks") or []],
            "strategies": [(r.strategy, _acc(r.avg_acc if r.acc_matrix else None)) for r in _results(data)],
            "when": datetime.fromtimestamp(_mtime(run.path), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def report_page(run: RunFolder) -> dict[str, Any]:
    """The strategy x metric table (scenarios.report.table_rows), each accuracy matrix and its heatmap."""
    from forkpoint.scenarios.report import TABLE_HEADER, table_rows

    data = load_run(run)
    results = _results(data)
    stream = data.get("stream") or {}
    backbone = _backbone(data.get("backbone"))
    strategies = [{
        "name": r.strategy, "tasks": r.tasks, "heatmap": bool(r.acc_matrix),
        "matrix": [(r.tasks[i] if i < len(r.tasks) else f"step {i}", [_acc(v) for v in row]) for i, row in enumerate(r.acc_matrix)],
        "checks": r.checks, "registry": r.registry,
    } for r in results]
    return {"name": run.name, "run_id": data.get("run_id", run.name), "status": data.get("status", "?"),
            "finished": run.finished, "stream": stream.get("name", "?"),
            "tasks": [{"name": t.get("name", "?"), "classes": len(t.get("classes") or []), "train": t.get("train", "?"),
                       "test": t.get("test", "?")} for t in stream.get("tasks") or []],
            "settings": json.dumps(data.get("settings") or {}, sort_keys=True),
            "backbone": f"{backbone.get('arch', '?')} at {backbone.get('resolution', '?')} px, trunk {str(backbone.get('fingerprint', '?'))[:12]}",
            "header": list(TABLE_HEADER), "rows": table_rows(results), "strategies": strategies}


def heatmap_png(run: RunFolder, strategy: str) -> bytes | None:
    """The heatmap the run wrote for ``strategy``, else one drawn now from its accuracy matrix; None if it has none."""
    from forkpoint.scenarios.report import heatmap

    result = next((r for r in _results(load_run(run)) if r.strategy == strategy), None)
    if result is None or not result.acc_matrix:
        return None
    written = run.path / f"heatmap-{strategy}.png"
    if HEATMAP_RE.fullmatch(f"heatmap-{strategy}.png") and written.is_file():
        return written.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        return heatmap(result, Path(tmp) / "heatmap.png").read_bytes()
