"""Writing figures atomically, so a reader never finds a half-written picture."""

from __future__ import annotations

import io
from pathlib import Path

from forkpoint.contract.atomic import write_bytes


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, render in memory, write ``path`` whole (contract.atomic), close the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return write_bytes(path, buf.getvalue())
