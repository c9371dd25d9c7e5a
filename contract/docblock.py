"""Generated blocks in hand-written pages: the text between a begin and an end marker.

Figures in README/docs come from committed results files; each publisher regenerates its
block with :func:`replace_block` and never touches the prose around it.
"""

from __future__ import annotations

from pathlib import Path

from forkpoint.contract.atomic import write_text
from forkpoint.contract.errors import ConfigError


def replace_block(text: str, begin: str, end: str, body: str, where: str = "the page") -> str:
    """``text`` with everything between ``begin`` and ``end`` replaced by ``body``."""
    if begin not in text or end not in text:
        raise ConfigError(f"{where} has no generated block ({begin} ... {end}): restore the markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def publish_block(page: Path, begin: str, end: str, body: str) -> Path:
    """Rewrite ``page``'s generated block atomically; the rest of the page is kept as it is."""
    return write_text(page, replace_block(page.read_text(), begin, end, body, where=str(page.name)))
