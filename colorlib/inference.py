"""Colorize photos of any size: predict ab small, keep L full.

The network only ever sees ``size`` x ``size`` images. Colour varies slowly
across a photo while detail lives in lightness, so (as in Zhang et al.'s
colorization code) we predict ab at the model's resolution, upsample it
to the photo's own size, and pair it with the photo's full-resolution L.
The output has exactly the input's size and all of its sharpness.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import __version__
from .checkpoint import load_checkpoint
from .images import load_rgb, to_rgb
from .lab import denormalize_ab, lab_to_rgb, normalize_l, rgb_to_lab
from .networks import ModelConfig, build_generator
from .train import resolve_device


def load_generator(path: str | os.PathLike, device: str | torch.device | None = None,
                   arch: str | None = None) -> tuple[torch.nn.Module, ModelConfig]:
    """Rebuild a checkpoint's generator (eval mode) from the config stored with it."""
    ckpt = load_checkpoint(path, arch=arch)
    cfg = ModelConfig(**ckpt["model"])
    net = build_generator(cfg, weights=None)
    try:
        net.load_state_dict(ckpt["generator"])
    except RuntimeError as err:
        from .checkpoint import CheckpointError

        raise CheckpointError(f"{path}: weights do not fit a {cfg.arch} "
                              f"({str(err).splitlines()[0]})") from None
    return net.to(resolve_device(device)).eval(), cfg


def _as_rgb_array(image) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return load_rgb(image)
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.ndim == 2:  # greyscale array
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {arr.shape}")
    return arr[..., :3]


@torch.no_grad()
def predict_ab(net: torch.nn.Module, L_full: np.ndarray, size: int) -> np.ndarray:
    """Normalised ab (2xHxW) for full-resolution lightness ``L_full`` (HxW, 0-100)."""
    device = next(net.parameters()).device
    h, w = L_full.shape
    L = torch.from_numpy(normalize_l(L_full.astype(np.float32)))[None, None].to(device)
    small = F.interpolate(L, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
    ab_small = net(small).float()
    ab = F.interpolate(ab_small, size=(h, w), mode="bilinear", align_corners=False)
    return ab[0].cpu().numpy()


def colorize(image, net: torch.nn.Module, size: int) -> np.ndarray:
    """Colorize one image (path, PIL image or array) -> float RGB HxWx3 in [0, 1].

    Colour inputs are reduced to their lightness first, so a colour photo, a
    greyscale scan and a sepia print are all treated as black and white.
    """
    rgb = _as_rgb_array(image)
    L_full = rgb_to_lab(rgb)[..., 0]
    ab = denormalize_ab(predict_ab(net, L_full, size))
    lab = np.concatenate([L_full[..., None], ab.transpose(1, 2, 0)], axis=2)
    return lab_to_rgb(lab)


@dataclass
class Colorizer:
    """A loaded generator plus what it needs to colorize: ``Colorizer.load(ckpt)``."""

    net: torch.nn.Module
    config: ModelConfig
    checkpoint: Path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "Colorizer":
        net, cfg = load_generator(path, device)
        return cls(net, cfg, Path(path))

    def __call__(self, image) -> np.ndarray:
        return colorize(image, self.net, self.config.size)

    @property
    def provenance(self) -> str:
        """The note written into every output file's metadata."""
        return (f"Colorized automatically by colorlib {__version__} "
                f"(checkpoint {self.checkpoint.name}); colours are a model's guess")
