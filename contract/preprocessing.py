"""How an image becomes the trunk's input: one spec, recorded with the backbone, read by every path.

Training on user files, evaluation and ``predict`` must turn the same file into the same
tensor, or accuracy measured at training time is not the accuracy served (issue 13: a
squashing resize at predict time cost 2 points on non-square images). So the recipe is
data, not code scattered in callers: the backbone states it (timm's ``pretrained_cfg``
idea) and the data layer and the learner apply it. Torch-free and Pillow-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from forkpoint.contract.errors import ConfigError

SHORTER_SIDE_CENTRE_CROP = "shorter-side-centre-crop"  # scale the shorter side to R, crop the centre R x R
BICUBIC = "bicubic"  # Pillow's, on 8-bit pixels (uint8 out: what the dataset stores is what predict sees)
RESIZE_RULES = (SHORTER_SIDE_CENTRE_CROP,)
INTERPOLATIONS = (BICUBIC,)
REDUCING_GAP = 2.0  # big images are box-reduced to >= 2x the target first (Pillow's thumbnail default)


@dataclass(frozen=True)
class Preprocessing:
    """Decode -> 8-bit gray/RGB -> resize rule at ``resolution`` -> ``(x / 255 - mean) / std``.

    Only one rule and one interpolation exist today; they are recorded anyway so a stored
    home says what its tasks were trained on, and a second rule becomes a new value here.
    """

    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = SHORTER_SIDE_CENTRE_CROP
    interpolation: str = BICUBIC
    reducing_gap: float = REDUCING_GAP

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolution", int(self.resolution))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.resolution < 1:
            raise ConfigError(f"preprocessing resolution {self.resolution} must be a positive pixel count: use e.g. 224")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"preprocessing mean {self.mean} / std {self.std} must be 3 values each, std > 0: use the backbone's")
        if self.resize not in RESIZE_RULES:
            raise ConfigError(f"unknown resize rule {self.resize!r}: use one of {', '.join(RESIZE_RULES)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"unknown interpolation {self.interpolation!r}: use one of {', '.join(INTERPOLATIONS)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(mean=list(self.mean), std=list(self.std))
        return d
