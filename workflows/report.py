"""``forkpoint audit --report``: one self-contained file (HTML or Markdown) that people can read.

Per task: the lineage of its versions (parent, actor, when, data md5, branch, metrics,
description), every move of its live pointer with its actor, the reproductions recorded
in the audit log, and each version's finetuning profile as an embedded PNG (the plot
add-task wrote, or one drawn now from the stored scores). Before the tasks: what the
registry's verification found (weights files, row seals, the audit log's hash chain).
Nothing links outside the file, so it can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from forkpoint.contract.atomic import write_text
from forkpoint.contract.errors import ConfigError
from forkpoint.registry import AuditRecord, TaskRecord, VersionRecord
from forkpoint.workflows.audit import AuditResult
from forkpoint.workflows.home import Home
from forkpoint.workflows.render import branch_label, pct

MOVES = ("promote", "rollback")
FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


@dataclass
class TaskSection:
    task: TaskRecord
    versions: list[VersionRecord]
    moves: list[AuditRecord]
    reproductions: list[AuditRecord]
    plots: dict[int, bytes] = field(default_factory=dict)  # version -> PNG


@dataclass
class AuditReport:
    generated_at: datetime
    home: str
    backbone: str
    audit: AuditResult
    tasks: list[TaskSection]
    since: datetime | None = None


def report_format(path: Path) -> str:
    """``html`` or ``md`` from the file's suffix; anything else is an input error naming the choices."""
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise ConfigError(f"--report {path}: name a .html or .md file (the suffix picks the format)")
    return kind


def gather(home: Home, audit: AuditResult, since: datetime | None = None, task: str | None = None) -> AuditReport:
    """Everything the report shows, read from the registry (``since``: versions and events from then on)."""
    names = [task] if task else [t.name for t in home.registry.list_tasks()]
    sections = []
    for name in names:
        history = home.registry.history(name)
        versions = [v for v in history.versions if since is None or v.created_at >= since]
        events = [e for e in history.events if since is None or e.at >= since]
        section = TaskSection(history.task, versions, [e for e in events if e.action in MOVES],
                              [e for e in events if e.action == "reproduce"])
        section.plots = {v.version: png for v in versions if (png := profile_png(v)) is not None}
        sections.append(section)
    bb = home.record
    return AuditReport(datetime.now(timezone.utc), str(home.path), f"{bb.arch} {bb.resolution} px, trunk {bb.fingerprint}",
                       audit, sections, since)


def profile_png(rec: VersionRecord) -> bytes | None:
    """The profile plot add-task wrote for ``rec``, else one drawn from its stored scores; None if nothing was profiled."""
    stored = rec.config.get("profile_plot")
    if stored and Path(stored).is_file():
        return Path(stored).read_bytes()
    if not any(c.get("stage") == "profile" for c in rec.profile):
        return None
    from forkpoint.learner.profile import Candidate, plot_profile

    known = set(Candidate.__dataclass_fields__) - {"val_correct"}
    cands = [Candidate(**{k: (float("nan") if k == "val_loss" and v is None else v) for k, v in c.items() if k in known})
             for c in rec.profile]
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_profile(cands, Path(tmp) / "profile.png", f"{rec.ref}: finetuning profile", (rec.branch_start, rec.branch_stop))
        return path.read_bytes()


def write_report(report: AuditReport, path: Path) -> Path:
    """Render by the suffix (.html or .md) and write the file whole."""
    text = to_html(report) if report_format(path) == "html" else to_markdown(report)
    return write_text(Path(path), text)


# ---- the rows both formats show ---------------------------------------------------------------

LINEAGE = ("version", "parent", "live", "actor", "when", "data md5", "branch", "val acc", "test acc", "description")
MOVE_COLS = ("when", "actor", "action", "live before", "live after")
REPRO_COLS = ("when", "actor", "version", "verdict", "first diverged", "max |Δlogit|", "seconds")


def _when(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def lineage_rows(versions: Sequence[VersionRecord]) -> list[tuple[str, ...]]:
    return [(
        f"v{v.version}", f"v{v.parent_version}" if v.parent_version else "-", "yes" if v.live else v.status, v.actor,
        _when(v.created_at), v.data_md5 or "-", branch_label(v), pct(v.metrics.get("val_acc")),
        pct(v.metrics.get("test_acc")), v.description or "-",
    ) for v in versions]


def move_rows(events: Sequence[AuditRecord]) -> list[tuple[str, ...]]:
    return [(_when(e.at), e.actor, e.action, _v(e.details.get("live_before")), _v(e.details.get("live_after")))
            for e in events]


def repro_rows(events: Sequence[AuditRecord]) -> list[tuple[str, ...]]:
    def fig(value: Any) -> str:
        return "-" if value is None else f"{value:.3g}"

    return [(_when(e.at), e.actor, f"v{e.version}", str(e.details.get("verdict")), str(e.details.get("first_divergence") or "-"),
             fig(e.details.get("max_abs_logit_diff")), fig(e.details.get("seconds"))) for e in events]


def _v(n: Any) -> str:
    return "-" if n is None else f"v{n}"


def verification_lines(audit: AuditResult) -> list[str]:
    r = audit.report
    lines = [
        f"result: {'OK' if audit.ok else f'{len(audit.problems)} problem(s)'}",
        f"weights files re-hashed: {r.checked_objects}; versions checked (row seals, add events): {r.checked_versions}; "
        f"trunks re-fingerprinted: {r.checked_backbones}; data versions re-hashed: {r.checked_data}; "
        f"live branches rebuilt: {audit.live_checked}",
        f"audit log hash chain: {'intact' if not any('audit event' in p for p in r.problems) else 'BROKEN'}, head {r.chain_head}",
    ]
    return lines + [f"problem: {p}" for p in audit.problems]


# ---- Markdown --------------------------------------------------------------------------------------


def _md_table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "---|" * len(cols)] + \
        ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows] + [""]


def to_markdown(report: AuditReport) -> str:
    out = ["# forkpoint audit report", "",
           f"- generated: {_when(report.generated_at)}", f"- home: `{report.home}`", f"- backbone: {report.backbone}"]
    if report.since:
        out.append(f"- since: {_when(report.since)}")
    out += ["", "## Verification", ""] + [f"- {line}" for line in verification_lines(report.audit)] + [""]
    for s in report.tasks:
        out += [f"## Task `{s.task.name}`", "",
                f"classes: {', '.join(s.task.class_names)}; live version: {_v(s.task.live_version)}", "",
                "### Lineage", ""] + _md_table(LINEAGE, lineage_rows(s.versions))
        out += ["### Live pointer moves", ""] + _md_table(MOVE_COLS, move_rows(s.moves))
        out += ["### Reproductions", ""] + _md_table(REPRO_COLS, repro_rows(s.reproductions))
        for version, png in sorted(s.plots.items()):
            out += [f"### Profile of v{version}", "", f"![profile of {s.task.name} v{version}]({_data_uri(png)})", ""]
    return "\n".join(out) + "\n"


# ---- HTML -----------------------------------------------------------------------------------------------

_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}th{background:#f3f3f3}"
        ".bad{color:#b00}.ok{color:#070}img{max-width:100%;border:1px solid #ddd}code{font-size:.9em}")


def _html_table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(report: AuditReport) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>forkpoint audit report</title><style>{_CSS}</style>"
             "</head><body><h1>forkpoint audit report</h1><ul>",
             f"<li>generated: {e(_when(report.generated_at))}</li><li>home: <code>{e(report.home)}</code></li>",
             f"<li>backbone: {e(report.backbone)}</li>"]
    if report.since:
        parts.append(f"<li>since: {e(_when(report.since))}</li>")
    status = "ok" if report.audit.ok else "bad"
    parts.append(f"</ul><h2>Verification</h2><ul class='{status}'>"
                 + "".join(f"<li>{e(line)}</li>" for line in verification_lines(report.audit)) + "</ul>")
    for s in report.tasks:
        parts += [f"<h2>Task <code>{e(s.task.name)}</code></h2>",
                  f"<p>classes: {e(', '.join(s.task.class_names))}; live version: {e(_v(s.task.live_version))}</p>",
                  "<h3>Lineage</h3>", _html_table(LINEAGE, lineage_rows(s.versions)),
                  "<h3>Live pointer moves</h3>", _html_table(MOVE_COLS, move_rows(s.moves)),
                  "<h3>Reproductions</h3>", _html_table(REPRO_COLS, repro_rows(s.reproductions))]
        for version, png in sorted(s.plots.items()):
            parts.append(f"<h3>Profile of v{version}</h3><img alt='profile of {e(s.task.name)} v{version}' src='{_data_uri(png)}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
