"""RGB <-> L*a*b* conversion and the tutorial's normalisation, defined once.

Two paths share one normalisation:

* single images as numpy arrays (``HxWx3``), through scikit-image, which is
  what learners meet in every colour-science text;
* batches of tensors (``Bx3xHxW``) on any device, through ``kornia.color``,
  so that a whole batch is converted in one vectorised call (on the GPU when
  there is one) instead of one skimage call per image inside the Dataset.

The network sees ``L/50 - 1`` (so L in [0, 100] maps to [-1, 1]) and
``ab/110`` (the a and b channels of real sRGB colours stay within about
+-110, so they land in [-1, 1] as well, matching the generator's tanh).
"""
from __future__ import annotations

import numpy as np
import torch
from skimage import color as skcolor

L_SCALE = 50.0
L_SHIFT = 1.0
AB_SCALE = 110.0


def normalize_l(L):
    """Map lightness L in [0, 100] to the network's range [-1, 1]."""
    return L / L_SCALE - L_SHIFT


def normalize_ab(ab):
    """Map a*b* (about +-110 for sRGB colours) to about [-1, 1]."""
    return ab / AB_SCALE


def denormalize_l(L):
    """Inverse of :func:`normalize_l`."""
    return (L + L_SHIFT) * L_SCALE


def denormalize_ab(ab):
    """Inverse of :func:`normalize_ab`."""
    return ab * AB_SCALE


# ---------------------------------------------------------------- numpy path
def _as_float_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / 255.0
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / 65535.0
    return np.clip(rgb.astype(np.float32), 0.0, 1.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert one RGB image (uint8, uint16 or float in [0, 1]) to Lab (float32).

    L is in [0, 100]; a and b are unbounded in principle but stay within
    about +-110 for colours an sRGB image can hold.
    """
    return skcolor.rgb2lab(_as_float_rgb(rgb)).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Convert one Lab image to float RGB in [0, 1].

    Lab values a network predicts need not be inside the sRGB gamut; such
    colours are clipped to the nearest displayable value rather than
    wrapping around or producing NaNs.
    """
    lab = np.asarray(lab, dtype=np.float64)
    rgb = skcolor.lab2rgb(lab)  # skimage already clips, but keep the promise explicit
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def split_lab(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB image -> (normalised L as 1xHxW, normalised ab as 2xHxW), float32."""
    lab = rgb_to_lab(rgb)
    L = normalize_l(lab[..., :1]).transpose(2, 0, 1)
    ab = normalize_ab(lab[..., 1:]).transpose(2, 0, 1)
    return np.ascontiguousarray(L), np.ascontiguousarray(ab)


def merge_lab(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Normalised L (1xHxW or HxW) and ab (2xHxW) -> float RGB HxWx3 in [0, 1]."""
    L = np.asarray(L, dtype=np.float32).reshape(-1, *np.shape(ab)[-2:])[:1]
    lab = np.concatenate([denormalize_l(L), denormalize_ab(np.asarray(ab, np.float32))], 0)
    return lab_to_rgb(lab.transpose(1, 2, 0))


def mean_chroma(ab) -> float:
    """Average colourfulness, sqrt(a*^2 + b*^2) in Lab units, of normalised ab.

    ``ab`` is 2xHxW or Bx2xHxW (array or tensor). A model that hedges
    between plausible colours predicts ab near 0, i.e. greys and browns;
    comparing this number with the ground truth's shows how much it hedges.
    """
    if isinstance(ab, torch.Tensor):
        ab = ab.detach().float().cpu().numpy()
    ab = denormalize_ab(np.asarray(ab, dtype=np.float32))
    if ab.ndim < 3 or ab.shape[-3] != 2:
        raise ValueError(f"expected ab as 2xHxW or Bx2xHxW, got shape {ab.shape}")
    return float(np.hypot(ab[..., 0, :, :], ab[..., 1, :, :]).mean())


# --------------------------------------------------------------- tensor path
def rgb_to_lab_tensor(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch of RGB images (Bx3xHxW, uint8 or float in [0, 1]) -> normalised (L, ab).

    Runs wherever ``rgb`` lives, so the Lab conversion can happen on the GPU
    after the loader has shipped compact uint8 pixels.
    """
    import kornia.color

    if rgb.dtype == torch.uint8:
        rgb = rgb.float().div_(255.0)
    lab = kornia.color.rgb_to_lab(rgb.float().clamp(0.0, 1.0))
    return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])


def lab_tensor_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Normalised L (Bx1xHxW) and ab (Bx2xHxW) -> float RGB in [0, 1], clipped."""
    import kornia.color

    lab = torch.cat([denormalize_l(L.float()), denormalize_ab(ab.float())], dim=1)
    return kornia.color.lab_to_rgb(lab, clip=True)
