"""The shape of a network, in one small dataclass that a checkpoint stores.

:class:`ModelConfig` is all that is needed to rebuild a generator/discriminator pair
(:mod:`colorlib.models.networks` builds them), so a checkpoint can rebuild its own network
and a mismatched one is refused with a clear message. It imports no torch: the command
line reads its defaults to print ``--help`` at once.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from colorlib.models.ab_classes import ZHANG_T

ARCHS = ("pix2pix_unet", "resnet18_unet")


def check_size(size: int) -> int:
    """``size`` if it is a power of two >= 32 (the U-Nets halve it to 1 px), else ValueError."""
    if size < 32 or size & (size - 1):
        raise ValueError(f"must be a power of two >= 32 (e.g. 64, 128, 256), got {size}")
    return size


@dataclass
class ModelConfig:
    """Everything needed to rebuild a generator/discriminator pair."""

    arch: str = "pix2pix_unet"  # or "resnet18_unet"
    size: int = 256  # training resolution (square)
    num_filters: int = 64  # pix2pix U-Net width
    disc_filters: int = 64
    disc_layers: int = 3  # 3 gives the 70x70 PatchGAN
    # 0: the generator regresses ab (2 channels). Q > 0: it scores Q a*b* classes per pixel
    # and decodes them with the annealed mean at `temperature` (the classify stage, notebook 04).
    classes: int = 0
    temperature: float = ZHANG_T  # Zhang et al.'s; 0 decodes the mode, 1 the mean

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose from {ARCHS}")
        try:
            check_size(self.size)
        except ValueError as err:
            raise ValueError(f"size {err}") from None
        if self.classes and self.arch != "resnet18_unet":
            raise ValueError(f"colour classes need the resnet18_unet, not a {self.arch}")
        if self.classes < 0 or self.temperature < 0:
            raise ValueError(f"classes and temperature must be >= 0, got {self.classes} and "
                             f"{self.temperature}")

    @property
    def n_down(self) -> int:
        """U-Net depth: halve the image until it is 1x1 (8 at 256 px)."""
        return int(math.log2(self.size))

    def to_dict(self) -> dict:
        """The settings a checkpoint stores. A regression generator leaves out the two
        classification fields, so its checkpoints read exactly as before they existed (older
        colorlib versions load them, and resume checks compare them unchanged)."""
        d = asdict(self)
        if not self.classes:
            del d["classes"], d["temperature"]
        return d
