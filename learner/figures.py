"""Writing PNGs atomically, so a reader never finds a half-written picture."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, render to a temp file beside ``path``, rename into place, close the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path
