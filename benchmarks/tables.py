"""Result tables, rendered both for the terminal (rich) and for markdown reports.

Sections describe their figures once as :class:`TableSpec`; the console print-out and
the committed markdown are then guaranteed to show the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TableSpec:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    align_left: int = 1  # how many leading columns are text (left-aligned)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TableSpec":
        return cls(d["title"], list(d["columns"]), [list(r) for r in d["rows"]], d.get("note", ""), d.get("align_left", 1))


def to_markdown(t: TableSpec, level: int = 3) -> str:
    head = f"{'#' * level} {t.title}\n\n" if t.title else ""
    sep = ["---" if i < t.align_left else "---:" for i in range(len(t.columns))]
    lines = ["| " + " | ".join(t.columns) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in t.rows]
    note = f"\n\n{t.note}" if t.note else ""
    return head + "\n".join(lines) + note + "\n"


def to_rich(t: TableSpec):
    from rich.table import Table

    table = Table(title=t.title, caption=t.note or None, caption_justify="left")
    for i, col in enumerate(t.columns):
        table.add_column(col, justify="left" if i < t.align_left else "right")
    for row in t.rows:
        table.add_row(*[str(c) for c in row])
    return table


def _missing(x) -> bool:
    return x is None or x != x  # None (NaN after a JSON round trip) or NaN


def pct(x: float | None, digits: int = 1) -> str:
    """A 0..1 accuracy as a percentage."""
    return "–" if _missing(x) else f"{100 * x:.{digits}f}"


def pm(mean: float | None, std: float | None, n: int) -> str:
    """'mean ± std' in percent; just the mean when there is one seed."""
    if _missing(mean):
        return "–"
    return f"{100 * mean:.1f} ± {100 * (std or 0.0):.1f}" if n > 1 else f"{100 * mean:.1f}"


def num(x: float | None, digits: int = 2) -> str:
    return "–" if _missing(x) else f"{x:,.{digits}f}"
