"""Where the figures were measured: machine, device, library versions, date, load.

Benchmarks from different machines are only comparable through this record, so every
results file carries it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    """``git describe --always --dirty`` as the code finds it (``-dirty``: the figures are not that commit's)."""
    from forkpoint.contract.docblock import git_describe

    return git_describe(Path(__file__).resolve().parent)


def machine_info(device: torch.device) -> dict:
    """A JSON-ready description of this machine and the device the run uses."""
    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host_cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "git_commit": _git_commit(),
    }
    try:
        info["load_avg_1m_at_start"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:
        pass
    return info
