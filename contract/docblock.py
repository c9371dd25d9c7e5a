"""Generated blocks in hand-written pages: the text between a begin and an end marker.

Figures in README/docs come from committed results files; each publisher regenerates its
block with :func:`replace_block` and never touches the prose around it.

Figures come only from clean commits: results record ``git describe --always --dirty``
as the code found it (:func:`git_describe`, never typed by hand), and publishing from a
tree with uncommitted changes to tracked files is refused (:func:`require_publishable`,
exit 2) unless ``FORKPOINT_ALLOW_DIRTY=1``, in which case the recorded commit still ends
in ``-dirty`` for every reader to see.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from forkpoint.contract.atomic import write_text
from forkpoint.contract.errors import ConfigError


REPO = Path(__file__).resolve().parent.parent
ALLOW_DIRTY_ENV = "FORKPOINT_ALLOW_DIRTY"


def git_describe(folder: Path = REPO) -> str | None:
    """``git describe --always --dirty`` of the checkout holding ``folder``, or None outside one (never fails)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=folder, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def require_publishable(folder: Path = REPO) -> str:
    """The commit figures may be published from; ConfigError (exit 2) for a dirty tree unless FORKPOINT_ALLOW_DIRTY=1."""
    described = git_describe(folder)
    if described is None:
        raise ConfigError("--publish needs a git checkout of forkpoint (figures name the commit they came from): "
                          "run it from the repository")
    if described.endswith("-dirty") and os.environ.get(ALLOW_DIRTY_ENV) != "1":
        raise ConfigError(f"the checkout has uncommitted changes ({described}): commit them before --publish, "
                          f"or set {ALLOW_DIRTY_ENV}=1 to publish figures recorded as {described}")
    return described


def replace_block(text: str, begin: str, end: str, body: str, where: str = "the page") -> str:
    """``text`` with everything between ``begin`` and ``end`` replaced by ``body``."""
    if begin not in text or end not in text:
        raise ConfigError(f"{where} has no generated block ({begin} ... {end}): restore the markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def publish_block(page: Path, begin: str, end: str, body: str) -> Path:
    """Rewrite ``page``'s generated block atomically; the rest of the page is kept as it is.
    Refused for a dirty checkout (:func:`require_publishable`) when ``page`` lies in it."""
    if page.resolve().is_relative_to(REPO):
        require_publishable()
    return write_text(page, replace_block(page.read_text(), begin, end, body, where=str(page.name)))


def publish_results(results: Path, text: str, page: Path, begin: str, end: str, body: str) -> None:
    """Write a results file and regenerate ``page``'s block from it, with the clean-tree check made
    once, before either write (the first write dirties the tree, so :func:`publish_block` would refuse)."""
    if Path(page).resolve().is_relative_to(REPO):
        require_publishable()
    write_text(results, text)
    write_text(page, replace_block(Path(page).read_text(), begin, end, body, where=Path(page).name))
