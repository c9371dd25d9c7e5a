"""Which backbone a run measures: the embedded Lite0, or a bigger timm model whose weights are already local.

The GPU mode prefers a bigger model, but benchmarks never download: a model is used
only when its safetensors already sit in the Hugging Face cache (or are passed with
``--weights``). Otherwise the run stays on the embedded Lite0 and says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from forkpoint.learner import load_backbone
from forkpoint.contract.names import DEFAULT_ARCH
from forkpoint.learner.backbone import Backbone

# bigger models of families the learner can cut, most preferred first
GPU_CANDIDATES = ("convnext_tiny", "resnet50", "efficientnet_b0", "vit_small_patch16_224")


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def local_timm_weights(base: str, cache: Path | None = None) -> tuple[str, Path] | None:
    """(timm name with tag, safetensors path) of a cached ``timm/<base>.<tag>`` repo, or None."""
    cache = cache or hf_cache_dir()
    if not cache.is_dir():
        return None
    for repo in sorted(cache.glob(f"models--timm--{base}*")):
        name = repo.name.removeprefix("models--timm--")
        if name != base and not name.startswith(base + "."):
            continue
        files = sorted(repo.glob("snapshots/*/model.safetensors"))
        if files:
            return name, files[-1]
    return None


def pick_gpu_backbone(cache: Path | None = None) -> tuple[str, str | None, str]:
    """(arch, weights path or None, why) for the GPU mode."""
    for base in GPU_CANDIDATES:
        found = local_timm_weights(base, cache)
        if found:
            return found[0], str(found[1]), f"local weights of {found[0]} found in the Hugging Face cache"
    return DEFAULT_ARCH, None, f"no local weights for {', '.join(GPU_CANDIDATES)}: using the embedded Lite0"


def build_backbone(arch: str, weights: str | None, resolution: int) -> Backbone:
    return load_backbone(arch, weights=weights, resolution=resolution)
