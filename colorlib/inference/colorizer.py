"""Colorize photos of any size: predict ab small, keep L full.

The network only ever sees ``size`` x ``size`` images. Colour varies slowly
across a photo while detail lives in lightness, so (as in Zhang et al.'s
colorization code) we predict ab at the model's resolution, upsample it
to the photo's own size, and pair it with the photo's full-resolution L.
The output has exactly the input's size and all of its sharpness.

Speed on a CPU: the colour conversions of the full-size photo use the
float32 numpy path of :mod:`colorlib.photos.lab` (quicker than skimage), and the
network runs in channels_last memory layout (:mod:`colorlib.system.device`).
``amp=True`` adds mixed precision on GPUs (bf16, or fp16 on pre-Ampere GPUs
such as the T4) and bf16 on CPUs with native bf16 (AMX / AVX512-BF16),
quicker again on such a CPU at the price of slightly different colours
(``benchmarks/RESULTS.md``, "Other measurements", has the numbers).

Taught in notebook 06.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorlib import __version__
from colorlib.models.networks import ModelConfig, build_generator
from colorlib.photos.image_files import ImageReadError, load_rgb, to_rgb
from colorlib.photos.lab import denormalize_ab, fast_lab_to_rgb, fast_lightness, normalize_l
from colorlib.system.device import DevicePolicy
from colorlib.training.checkpoint import describe_misfit, load_checkpoint


def load_generator(path: str | os.PathLike, device: str | torch.device | None = None,
                   arch: str | None = None, size: int = 256,
                   info: dict | None = None,
                   temperature: float | None = None) -> tuple[torch.nn.Module, ModelConfig]:
    """Rebuild a checkpoint's generator (eval mode) from the config stored with it.

    ``arch``, if given, is the generator the caller expects. A *plain*
    generator state_dict (``torch.save(net_G.state_dict(), ...)``, what other
    tutorials save: weights without the settings that built them) is loaded
    only when ``arch`` says which generator it is (and ``size`` the size it
    was trained at); keys of a whole-model state_dict (``net_G.``) or of a
    DistributedDataParallel one (``module.``) are understood. A weights-only
    export (:mod:`colorlib.inference.export`, half precision) loads like a checkpoint.
    ``info``, if given, receives ``training_amp``: whether that training
    used mixed precision (see :meth:`Colorizer.load`). ``temperature``
    replaces the decoding temperature a ``classify`` checkpoint stores
    (0: the mode, 1: the mean; :func:`colorlib.models.classify.decode_ab`).
    """
    from colorlib.training.checkpoint import CheckpointError, training_amp

    if info is not None:
        info["training_amp"] = False  # plain weights: nothing known, fp32
    try:
        ckpt = load_checkpoint(path, arch=arch)
        cfg = ModelConfig(**ckpt["model"])
        state = ckpt["generator"]
        if info is not None:
            info["training_amp"] = training_amp(ckpt)
    except CheckpointError:
        state = _plain_state_dict(path)
        if state is None:
            raise
        if arch is None:
            raise CheckpointError(
                f"{path}: holds plain generator weights without colorlib's settings; say which "
                "generator it is with --arch resnet18_unet (the tutorial's ResNet18 U-Net) or "
                "--arch pix2pix_unet, plus --model-size if it was trained at another size than "
                "256") from None
        cfg = ModelConfig(arch=arch, size=size, num_filters=_plain_width(state, arch))
    if temperature is not None:
        if not cfg.classes:
            raise CheckpointError(f"{path}: a temperature only applies to a generator of colour "
                                  "classes (the classify stage); this one regresses ab")
        cfg = replace(cfg, temperature=float(temperature))  # checked (>= 0) by ModelConfig
    net = build_generator(cfg, weights=None)
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise CheckpointError(f"{path}: weights do not fit a {cfg.arch} of {cfg.size} px "
                              f"({describe_misfit(net.state_dict(), state)}); check --arch, and "
                              "--model-size for plain weights") from None
    return DevicePolicy.for_inference(device).place(net).eval(), cfg


def _plain_width(state: dict, arch: str) -> int:
    """A pix2pix U-Net's base width, read from its first convolution (plain weights say
    nothing else about it); the default (64) for other generators."""
    first = state.get("model.model.0.weight")
    if arch == "pix2pix_unet" and isinstance(first, torch.Tensor) and first.ndim == 4:
        return int(first.shape[0])
    return 64


def _plain_state_dict(path: str | os.PathLike) -> dict | None:
    """The generator weights of a plain state_dict file, or None if the file is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a (safe) torch file: load_checkpoint said why
        return None
    if not isinstance(state, dict) or not state:
        return None
    if any(k.startswith("net_G.") for k in state):  # the tutorial's whole MainModel
        state = {k[len("net_G."):]: v for k, v in state.items() if k.startswith("net_G.")}
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return None
    return state


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


# The full-size output is assembled this many pixels at a time (a strip of
# rows): a photo then needs its L (4 bytes a pixel) and its 8-bit output
# (3 bytes a pixel), plus ~40 bytes a pixel for one strip only, instead of
# ~40 bytes a pixel for the whole photo at once (what that saves on large photos:
# benchmarks/RESULTS.md, "Other measurements").
STRIP_PIXELS = 4_000_000
# colorize_many / colorize_files hold at most this many pixels of L per batch.
BATCH_PIXELS = 64_000_000


@torch.no_grad()
def predict_ab(net: torch.nn.Module, L_full: np.ndarray, size: int,
               amp: bool = False) -> np.ndarray:
    """Normalised ab (2xHxW) for full-resolution lightness ``L_full`` (HxW, 0-100).

    The photo's L is shrunk to ``size`` x ``size``, the network predicts ab
    there, and the prediction is grown back to the photo's size.

    Shown in notebook 06.
    """
    ab_small = predict_ab_small(net, [L_full], size, amp)[0]
    return upsample_ab(ab_small, *L_full.shape)


@torch.no_grad()
def predict_ab_small(net: torch.nn.Module, L_fulls: Sequence[np.ndarray], size: int,
                     amp: bool = False) -> np.ndarray:
    """The network's normalised ab (Bx2x``size``x``size``) for photos of any sizes, one pass.

    Each photo's L is shrunk to ``size`` x ``size`` on its own (bilinear with
    antialiasing) and the small images go through the network together.
    One batch of 16 costs about as much per photo as one photo on an idle
    CPU, much less on a busy one or a GPU.
    """
    device = next(net.parameters()).device
    policy = DevicePolicy.for_inference(device, amp)
    small = []
    for L_full in L_fulls:
        L = torch.from_numpy(np.asarray(L_full, dtype=np.float32))[None, None].to(device)
        small.append(normalize_l(F.interpolate(L, size=(size, size), mode="bilinear",
                                               antialias=True, align_corners=False)))
    with policy.autocast():
        ab_small = net(policy.layout(torch.cat(small))).float()
    return ab_small.cpu().numpy()


def _bilinear_taps(n_in: int, n_out: int, start: int = 0, stop: int | None = None):
    """Source indices and weights of bilinear resampling, as ``F.interpolate`` computes them.

    ``align_corners=False``: output pixel ``i`` samples the input at
    ``(i + 0.5) * n_in / n_out - 0.5`` (clamped at 0), between pixels
    ``i0`` and ``i0 + 1`` (clamped at the last one) with weight ``w`` on the
    second. Only outputs ``start:stop`` are computed.
    """
    i = np.arange(start, n_out if stop is None else stop, dtype=np.float32)
    src = np.maximum((i + np.float32(0.5)) * np.float32(n_in / n_out) - np.float32(0.5), 0)
    i0 = src.astype(np.int64)
    return i0, np.minimum(i0 + 1, n_in - 1), (src - i0).astype(np.float32)


def upsample_ab(ab_small: np.ndarray, height: int, width: int, rows: slice = slice(None)):
    """Grow ab (2xhxw) to ``height`` x ``width`` (bilinear), optionally only some ``rows``.

    The same result as ``F.interpolate(..., mode="bilinear", align_corners=False)``
    (to float rounding), but any band of rows can be computed on its own,
    so a huge photo never needs its whole ab in memory at once.
    """
    start, stop, _ = rows.indices(height)
    x0, x1, wx = _bilinear_taps(ab_small.shape[2], width)
    y0, y1, wy = _bilinear_taps(ab_small.shape[1], height, start, stop)
    ab_small = np.asarray(ab_small, np.float32)
    band = ab_small[:, y0] * (1 - wy)[:, None] + ab_small[:, y1] * wy[:, None]  # 2 x rows x w
    return band[:, :, x0] * (1 - wx) + band[:, :, x1] * wx


def lab_to_image(L_full: np.ndarray, ab_small: np.ndarray, dtype=np.float32,
                 strip_pixels: int | None = None) -> np.ndarray:
    """Full-resolution RGB from the photo's own L and the network's small ab.

    Works through the photo in strips of rows (``strip_pixels``, default
    :data:`STRIP_PIXELS`): ab is grown to full size one strip at a time and
    converted to RGB with the photo's L, so memory beyond the result stays
    small however large the photo. ``dtype=np.uint8`` gives 8-bit RGB
    (rounded as :func:`colorlib.photos.image_files.save_rgb` does), else float in [0, 1].
    """
    h, w = L_full.shape
    out = np.empty((h, w, 3), dtype)
    rows = max(1, (strip_pixels or STRIP_PIXELS) // w)
    for top in range(0, h, rows):
        band = slice(top, min(h, top + rows))
        ab = denormalize_ab(upsample_ab(ab_small, h, w, band))
        lab = np.stack([L_full[band], ab[0], ab[1]], axis=-1)
        rgb = fast_lab_to_rgb(lab)
        if out.dtype == np.uint8:
            rgb = rgb * np.float32(255.0) + np.float32(0.5)
        out[band] = rgb
    return out


def colorize(image, net: torch.nn.Module, size: int, amp: bool = False) -> np.ndarray:
    """Colorize one image (path, PIL image or array) -> float RGB HxWx3 in [0, 1].

    Colour inputs are reduced to their lightness first, so a colour photo, a
    greyscale scan and a sepia print are all treated as black and white.
    ``amp``: bf16 for the network where the hardware has it (see the module notes).

    Shown in notebook 06.
    """
    return colorize_batch([image], net, size, amp)[0]


def colorize_batch(images: Sequence, net: torch.nn.Module, size: int,
                   amp: bool = False, dtype=np.float32) -> list[np.ndarray]:
    """:func:`colorize` for several images, one network pass; each keeps its own size."""
    return colorize_lightness([fast_lightness(_as_rgb_array(image)) for image in images],
                              net, size, amp, dtype)


def colorize_lightness(L_fulls: Sequence[np.ndarray], net: torch.nn.Module, size: int,
                       amp: bool = False, dtype=np.float32) -> list[np.ndarray]:
    """Colorize photos given as their full-resolution lightness (HxW, 0-100), one network pass."""
    if not L_fulls:
        return []
    ab_small = predict_ab_small(net, L_fulls, size, amp)
    return [lab_to_image(L_full, ab, dtype) for L_full, ab in zip(L_fulls, ab_small)]


@dataclass
class Colorizer:
    """A loaded generator plus what it needs to colorize: ``Colorizer.load(ckpt)``."""

    net: torch.nn.Module
    config: ModelConfig
    checkpoint: Path
    amp: bool = False  # mixed precision (bf16, fp16 on T4-class GPUs) where the hardware has it

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None, amp: bool | None = None,
             arch: str | None = None, size: int = 256,
             temperature: float | None = None) -> "Colorizer":
        """Load a colorlib checkpoint or export (or, with ``arch``, plain generator weights).

        ``amp=None`` (the default) colorizes as the model was trained: with
        mixed precision on a GPU when training used it (the default on
        GPUs), in fp32 otherwise and on the CPU, where bf16 stays opt-in
        (``amp=True``) because it changes colours slightly. A ``classify``
        checkpoint decodes its colour classes with the annealed mean at the
        temperature it stores (0.38), or at ``temperature`` if given.
        """
        info: dict = {}
        net, cfg = load_generator(path, device, arch=arch, size=size, info=info,
                                  temperature=temperature)
        if amp is None:
            on_gpu = next(net.parameters()).device.type == "cuda"
            amp = on_gpu and info["training_amp"]
        return cls(net, cfg, Path(path), amp)

    def __call__(self, image) -> np.ndarray:
        return colorize(image, self.net, self.config.size, self.amp)

    def colorize_many(self, images: Sequence, batch_size: int = 16,
                      dtype=np.float32) -> Iterator[np.ndarray]:
        """Colorized images in order, ``batch_size`` per network pass (quicker than one by one).

        A batch also stops at :data:`BATCH_PIXELS` pixels, so a folder of
        100-megapixel photos does not hold sixteen of them in memory.
        """
        def lightness(image):
            return fast_lightness(_as_rgb_array(image))

        for _, out in self._batched(images, lightness, batch_size, dtype):
            yield out

    def colorize_files(self, paths: Sequence, batch_size: int = 16, dtype=np.uint8,
                       max_pixels: int | None = None) -> Iterator[tuple]:
        """``(path, result)`` for each image file, in order, batched as :meth:`colorize_many`.

        ``result`` is the colorized image, or the :class:`~colorlib.photos.image_files.ImageReadError`
        that stopped that one file (the others go on); ``max_pixels``: see
        :func:`colorlib.photos.image_files.load_rgb`. 8-bit output by default, what a file holds.
        """
        def lightness(path):
            try:
                return fast_lightness(load_rgb(path, max_pixels=max_pixels))
            except ImageReadError as err:
                return err

        yield from self._batched(paths, lightness, batch_size, dtype)

    def _batched(self, items, lightness, batch_size: int, dtype) -> Iterator[tuple]:
        pending: list[tuple] = []  # (item, L or the error that stopped it)

        def flush():
            Ls = [L for _, L in pending if isinstance(L, np.ndarray)]
            outs = iter(colorize_lightness(Ls, self.net, self.config.size, self.amp, dtype))
            done = [(item, L if not isinstance(L, np.ndarray) else next(outs))
                    for item, L in pending]
            pending.clear()
            return done

        for item in items:
            pending.append((item, lightness(item)))
            arrays = [L for _, L in pending if isinstance(L, np.ndarray)]
            if len(arrays) >= batch_size or sum(L.size for L in arrays) >= BATCH_PIXELS:
                yield from flush()
        yield from flush()

    @property
    def provenance(self) -> str:
        """The note written into every output file's metadata."""
        decoded = (f", colour classes decoded at T = {self.config.temperature:g}"
                   if self.config.classes else "")
        return (f"Colorized automatically by colorlib {__version__} "
                f"(checkpoint {self.checkpoint.name}{decoded}); colours are a model's guess")
