"""Colorize photos of any size: predict ab small, keep L full.

The network only ever sees ``size`` x ``size`` images. Colour varies slowly
across a photo while detail lives in lightness, so (as in Zhang et al.'s
colorization code) we predict ab at the model's resolution, upsample it
to the photo's own size, and pair it with the photo's full-resolution L.
The output has exactly the input's size and all of its sharpness.

Speed on a CPU: the colour conversions of the full-size photo use the
float32 numpy path of :mod:`colorlib.lab` (quicker than skimage), and the
network runs in channels_last memory layout (:mod:`colorlib.device`).
``amp=True`` adds mixed precision on GPUs (bf16, or fp16 on pre-Ampere GPUs
such as the T4) and bf16 on CPUs with native bf16 (AMX / AVX512-BF16),
quicker again on such a CPU at the price of slightly different colours
(``benchmarks/RESULTS.md``, "Other measurements", has the numbers).

Taught in notebook 06.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import __version__
from .checkpoint import load_checkpoint
from .images import load_rgb, to_rgb
from .lab import denormalize_ab, fast_lab_to_rgb, fast_lightness, normalize_l
from .device import DevicePolicy
from .networks import ModelConfig, build_generator


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
    return DevicePolicy.for_inference(device).place(net).eval(), cfg


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
def predict_ab(net: torch.nn.Module, L_full: np.ndarray, size: int,
               amp: bool = False) -> np.ndarray:
    """Normalised ab (2xHxW) for full-resolution lightness ``L_full`` (HxW, 0-100)."""
    return predict_ab_batch(net, [L_full], size, amp)[0]


@torch.no_grad()
def predict_ab_batch(net: torch.nn.Module, L_fulls: Sequence[np.ndarray], size: int,
                     amp: bool = False) -> list[np.ndarray]:
    """:func:`predict_ab` for several photos (any sizes) in one pass through the network.

    Each photo's L is shrunk to ``size`` x ``size`` on its own, the small
    images go through the network together, and each prediction is grown
    back to its photo's size. One batch of 16 costs about as much per photo
    as one photo on an idle CPU, much less on a busy one or a GPU.
    """
    device = next(net.parameters()).device
    policy = DevicePolicy.for_inference(device, amp)
    small = []
    for L_full in L_fulls:
        L = torch.from_numpy(normalize_l(L_full.astype(np.float32)))[None, None].to(device)
        small.append(F.interpolate(L, size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False))
    with policy.autocast():
        ab_small = net(policy.layout(torch.cat(small))).float()
    return [F.interpolate(ab_small[i:i + 1], size=L.shape, mode="bilinear",
                          align_corners=False)[0].cpu().numpy()
            for i, L in enumerate(L_fulls)]


def colorize(image, net: torch.nn.Module, size: int, amp: bool = False) -> np.ndarray:
    """Colorize one image (path, PIL image or array) -> float RGB HxWx3 in [0, 1].

    Colour inputs are reduced to their lightness first, so a colour photo, a
    greyscale scan and a sepia print are all treated as black and white.
    ``amp``: bf16 for the network where the hardware has it (see the module notes).

    Shown in notebook 06.
    """
    return colorize_batch([image], net, size, amp)[0]


def colorize_batch(images: Sequence, net: torch.nn.Module, size: int,
                   amp: bool = False) -> list[np.ndarray]:
    """:func:`colorize` for several images, one network pass; each keeps its own size."""
    L_fulls = [fast_lightness(_as_rgb_array(image)) for image in images]
    out = []
    for L_full, ab in zip(L_fulls, predict_ab_batch(net, L_fulls, size, amp)):
        lab = np.concatenate([L_full[..., None], denormalize_ab(ab).transpose(1, 2, 0)], axis=2)
        out.append(fast_lab_to_rgb(lab))
    return out


@dataclass
class Colorizer:
    """A loaded generator plus what it needs to colorize: ``Colorizer.load(ckpt)``."""

    net: torch.nn.Module
    config: ModelConfig
    checkpoint: Path
    amp: bool = False  # bf16 where the hardware has it natively

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None,
             amp: bool = False) -> "Colorizer":
        net, cfg = load_generator(path, device)
        return cls(net, cfg, Path(path), amp)

    def __call__(self, image) -> np.ndarray:
        return colorize(image, self.net, self.config.size, self.amp)

    def colorize_many(self, images: Sequence, batch_size: int = 16) -> Iterator[np.ndarray]:
        """Colorized images in order, ``batch_size`` per network pass (quicker than one by one)."""
        for start in range(0, len(images), batch_size):
            yield from colorize_batch(images[start:start + batch_size], self.net,
                                      self.config.size, self.amp)

    @property
    def provenance(self) -> str:
        """The note written into every output file's metadata."""
        return (f"Colorized automatically by colorlib {__version__} "
                f"(checkpoint {self.checkpoint.name}); colours are a model's guess")
