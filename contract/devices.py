"""Device names, checked without torch: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

A malformed ``--device`` is a usage error found while options are parsed, before torch
loads; whether the named GPU exists is ``learner.device.resolve_device``'s question.
"""

from __future__ import annotations

from forkpoint.contract.errors import ConfigError


def device_name(device: object) -> str:
    """The normalised name (lower case, stripped), or a one-line ConfigError naming the accepted forms."""
    name = str(device).strip().lower()
    if name in ("auto", "cpu", "cuda"):
        return name
    if name.startswith("cuda:"):
        if not name.partition(":")[2].isdigit():
            raise ConfigError(f"device '{device}' is not cuda:N with a GPU number N: use cuda, cuda:0, cpu or auto")
        return name
    raise ConfigError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N")
