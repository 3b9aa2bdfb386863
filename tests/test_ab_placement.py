"""The predicted colours land on the right pixels, at full resolution.

An untrained network outputs nearly constant ab, so it cannot tell swapped,
flipped, transposed or shifted channels apart. Here a stub generator returns
a fixed, asymmetric ab pattern at the model's size (a different random value
on every model pixel, a* and b* independent). Whatever path a photo takes
(:class:`Colorizer`, ``colorlib colorize``, ``colorlib evaluate``), the
output's a*b* must be that pattern grown to the photo's own (non-square)
size by bilinear interpolation, computed here independently, pixel by pixel.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorlib.cli import main
from colorlib.inference import colorizer as colorizer_module
from colorlib.inference.colorizer import Colorizer
from colorlib.inference.evaluate import evaluate_paths
from colorlib.models.networks import ModelConfig
from colorlib.photos.image_files import load_rgb
from colorlib.photos.lab import AB_SCALE, lab_to_rgb, rgb_to_lab
from colorlib.training.checkpoint import save_checkpoint

SIZE = 32  # the model's resolution
H, W = 75, 140  # the photo's: not square, not a multiple of SIZE
L_VALUE = 60.0  # a mid lightness: every ab of the pattern is inside the sRGB gamut


class PatternGenerator(torch.nn.Module):
    """Stands in for a generator: ignores L, returns ``pattern`` (2 x SIZE x SIZE, normalised)."""

    def __init__(self, pattern: np.ndarray | None = None):
        super().__init__()
        p = torch.zeros(2, SIZE, SIZE) if pattern is None else torch.as_tensor(pattern)
        self.pattern = torch.nn.Parameter(p.float(), requires_grad=False)
        self.inputs: list[torch.Tensor] = []

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        self.inputs.append(L.detach().cpu())
        return self.pattern.expand(L.shape[0], -1, -1, -1)


@pytest.fixture(scope="module")
def pattern() -> np.ndarray:
    """Independent random a*, b* per model pixel, within +-20 Lab units."""
    return np.random.default_rng(13).uniform(-20, 20, (2, SIZE, SIZE)) / AB_SCALE


def grow(small: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Bilinear resampling along ``axis`` as half-pixel-centred image resizing defines it."""
    n_in = small.shape[axis]
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = src - i0
    shape = [1] * small.ndim
    shape[axis] = n_out
    return (np.take(small, i0, axis) * (1 - w).reshape(shape)
            + np.take(small, i1, axis) * w.reshape(shape))


def expected_ab(pattern: np.ndarray) -> np.ndarray:
    """The pattern in Lab units at the photo's size: H x W x 2."""
    return grow(grow(pattern * AB_SCALE, H, 1), W, 2).transpose(1, 2, 0)


def grey_photo() -> np.ndarray:
    """A grey uint8 photo of lightness L_VALUE (what a scanned black-and-white print gives)."""
    lab = np.zeros((H, W, 3))
    lab[..., 0] = L_VALUE
    return (lab_to_rgb(lab) * 255 + 0.5).astype(np.uint8)


@pytest.fixture()
def stub_checkpoint(tmp_path, pattern, monkeypatch) -> Path:
    """A checkpoint whose generator is the stub (the package builds it instead of a U-Net)."""
    monkeypatch.setattr(colorizer_module, "build_generator",
                        lambda cfg, weights=None: PatternGenerator())
    state = {"pattern": torch.as_tensor(pattern, dtype=torch.float32)}
    return save_checkpoint({"stage": "baseline", "model": ModelConfig(size=SIZE).to_dict(),
                            "generator": state}, tmp_path / "stub.pt")


def ab_error(rgb: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """|output a*b* - expected a*b*| per pixel and channel (H x W x 2)."""
    assert rgb.shape == (H, W, 3)
    return np.abs(rgb_to_lab(rgb)[..., 1:] - expected_ab(pattern))


def test_the_expected_pattern_tells_misplacements_apart(pattern):
    """The yardstick itself: every likely mistake moves most pixels by several Lab units."""
    ab = expected_ab(pattern)
    for wrong in (ab[:, ::-1], ab[::-1], ab[..., ::-1], np.roll(ab, 1, axis=1),
                  np.roll(ab, 1, axis=0), grow(grow(pattern.transpose(0, 2, 1) * AB_SCALE,
                                                    H, 1), W, 2).transpose(1, 2, 0)):
        assert np.median(np.abs(wrong - ab)) > 1.0


def test_colorizer_puts_each_colour_on_its_pixel(pattern):
    net = PatternGenerator(pattern)
    rgb = Colorizer(net, ModelConfig(size=SIZE), Path("stub.pt"))(grey_photo())
    assert ab_error(rgb, pattern).max() < 0.5
    assert np.abs(rgb_to_lab(rgb)[..., 0] - L_VALUE).max() < 0.5  # the photo's own L
    (L,) = net.inputs
    assert L.shape == (1, 1, SIZE, SIZE)  # the network saw the photo at its own size
    assert torch.allclose(L, torch.full_like(L, L_VALUE / 50 - 1), atol=0.02)


def test_batched_colorizing_keeps_each_photo_its_own_colours(pattern):
    net = PatternGenerator(pattern)
    colorizer = Colorizer(net, ModelConfig(size=SIZE), Path("stub.pt"))
    small = grey_photo()[:40, :50]
    out = list(colorizer.colorize_many([grey_photo(), small, grey_photo()], batch_size=3))
    assert [o.shape for o in out] == [(H, W, 3), (40, 50, 3), (H, W, 3)]
    assert ab_error(out[0], pattern).max() < 0.5 and ab_error(out[2], pattern).max() < 0.5
    expected_small = grow(grow(pattern * AB_SCALE, 40, 1), 50, 2).transpose(1, 2, 0)
    assert np.abs(rgb_to_lab(out[1])[..., 1:] - expected_small).max() < 0.5


def test_cli_colorize_writes_the_colours_on_their_pixels(stub_checkpoint, pattern, tmp_path):
    photo = tmp_path / "scan.png"
    Image.fromarray(grey_photo()).save(photo)
    code = main(["colorize", str(photo), "--checkpoint", str(stub_checkpoint),
                 "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert code == 0
    err = ab_error(load_rgb(tmp_path / "out" / "scan.png"), pattern)
    assert np.percentile(err, 99) < 1.5 and err.max() < 3  # 8-bit rounding of the file


def test_evaluate_scores_a_perfect_colorization_as_perfect(stub_checkpoint, pattern, tmp_path):
    """A photo whose true colours are exactly what the stub predicts scores near perfect;
    the same photo mirrored (so the prediction lands on the wrong pixels) does not."""
    lab = np.concatenate([np.full((H, W, 1), L_VALUE), expected_ab(pattern)], axis=-1)
    truth = (lab_to_rgb(lab) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(truth).save(tmp_path / "right.png")
    Image.fromarray(truth[:, ::-1]).save(tmp_path / "mirrored.png")
    report = evaluate_paths([tmp_path / "right.png", tmp_path / "mirrored.png"],
                            checkpoint=stub_checkpoint, device="cpu", progress=False)
    right, mirrored = (r["model"] for r in report["per_image"])
    # 8-bit files: a quarter of a Lab unit off on average; one pixel of shift gives ~3.6.
    assert right["psnr"] > 50 and right["ab_error"] < 0.5 and right["auc"] > 99
    assert mirrored["psnr"] < right["psnr"] - 10 and mirrored["auc"] < right["auc"] - 3
