"""Which device runs, and how to time and compare on it.

One place for what differs between CPU and CUDA, so no caller gets it half right:

* :func:`resolve_device` validates ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N``, says when
  ``auto`` falls back to the CPU although an NVIDIA device is present (a driver too old
  for the wheel is the usual cause), and switches CUDA to deterministic kernels.
* :func:`synchronize` / :class:`Stopwatch`: CUDA runs asynchronously, so a wall clock read
  without a sync measures kernel launches, not compute.
* :func:`warm_up`: the first CUDA call pays for context creation and kernel loading;
  timed sections run after it.
* :func:`cache_budget_bytes`: how much activation cache a device can hold.

What "bit for bit" means on a GPU (docs/architecture.md): the stored weights' sha256 is
always exact; the served model's logits are compared on the device they are served on,
with deterministic kernels (set here for every CUDA run) and the same batch shapes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable

import torch

from forkpoint.contract.devices import device_name
from forkpoint.contract.errors import ConfigError

log = logging.getLogger("forkpoint.device")

# cuBLAS reads this once, when its first handle is created: set before any CUDA work.
CUBLAS_WORKSPACE = ":4096:8"
CPU_CACHE_BUDGET_MB = 3072  # per cache; a laptop's RAM holds several
GPU_CACHE_SHARE = 0.25  # of the device's free memory, per cache (train and val caches coexist)
NVIDIA_MARKERS = ("/dev/nvidia0", "/proc/driver/nvidia/version")


def nvidia_present(markers: tuple[str, ...] = NVIDIA_MARKERS) -> bool:
    """Whether the machine has an NVIDIA driver/device node, whatever torch thinks of it."""
    return any(Path(m).exists() for m in markers)


def resolve_device(device: str | torch.device = "auto", *, nvidia: Callable[[], bool] = nvidia_present) -> torch.device:
    """'auto' -> CUDA when usable, else CPU (with a warning when a GPU is there but unusable);
    'cuda' / 'cuda:N' must name a visible GPU. CUDA devices get deterministic kernels."""
    name = device_name(device)  # a malformed name: the same one-line error the CLI gives while parsing
    if name == "auto":
        if torch.cuda.is_available():
            return _cuda(torch.device("cuda", torch.cuda.current_device()))
        if nvidia():
            log.warning("an NVIDIA device is present but torch %s cannot use it (CUDA %s; driver too old or "
                        "not loaded?): running on the CPU. Check `nvidia-smi`, or pass --device cpu to silence this",
                        torch.__version__, torch.version.cuda or "not built")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was asked for but no CUDA GPU is visible: use --device cpu or auto")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ConfigError(f"device '{name}' does not exist: {count} GPU(s) are visible (cuda:0..cuda:{count - 1})")
        return _cuda(torch.device("cuda", int(index) if index else torch.cuda.current_device()))
    raise AssertionError(name)  # device_name admits nothing else


def describe(device: torch.device) -> str:
    """'cuda:0 (NVIDIA H200)' or 'cpu (8 threads)': what every long command prints once."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"


def deterministic_cuda() -> None:
    """Deterministic cuDNN/cuBLAS and no TF32, so a rerun on the same GPU gives the same bits."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # warn_only: an op without a deterministic kernel warns instead of failing the run; the
    # exact checks then name what moved rather than crashing before they can look.
    torch.use_deterministic_algorithms(True, warn_only=True)


def _cuda(device: torch.device) -> torch.device:
    deterministic_cuda()
    return device


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Seconds of compute on ``device``: synchronises before reading the clock.

    >>> with Stopwatch(torch.device("cpu")) as sw:
    ...     _ = torch.ones(3).sum()
    >>> sw.seconds >= 0
    True
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.seconds = 0.0
        self._t0 = 0.0

    def __enter__(self) -> "Stopwatch":
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._t0


def warm_up(device: torch.device, module: torch.nn.Module | None = None, example: torch.Tensor | None = None) -> None:
    """Pay CUDA's start-up (context, kernels, allocator) before anything is timed."""
    if device.type != "cuda":
        return
    with torch.no_grad():
        a = torch.randn(256, 256, device=device)
        (a @ a).sum().item()
        if module is not None and example is not None:
            module(example.to(device))
    synchronize(device)


def cache_budget_bytes(device: torch.device, budget_mb: float | None = None,
                       free_bytes: Callable[[torch.device], int] | None = None) -> int:
    """Bytes one activation cache may hold: ``budget_mb`` when given, else a share of the
    GPU's free memory, or ``CPU_CACHE_BUDGET_MB`` on the CPU."""
    if budget_mb is not None:
        return int(budget_mb * 2**20)
    if device.type == "cuda":
        free = free_bytes(device) if free_bytes is not None else torch.cuda.mem_get_info(device)[0]
        return int(free * GPU_CACHE_SHARE)
    return CPU_CACHE_BUDGET_MB * 2**20


# Images per forward pass when scoring or filling a cache. On the CPU a small batch keeps
# each layer's activations in cache: Lite0's prefix at 64 px ran 2.8x faster in chunks of
# 32 than of 256 (0.75 s vs 2.1 s for 512 images, one thread); a GPU wants big batches.
CPU_INFERENCE_BATCH = 32
GPU_INFERENCE_BATCH = 256


def inference_batch(device: torch.device | str) -> int:
    """Images per no-grad forward pass on ``device`` (caches, validation and test scoring)."""
    return GPU_INFERENCE_BATCH if torch.device(device).type == "cuda" else CPU_INFERENCE_BATCH
