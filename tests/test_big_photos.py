"""50-200 MP phone photos: colorized in strips, so memory grows with the result, not 10x more.

No test allocates a big photo: the strip path is exercised by lowering the
strip size, and memory is measured on a 3-megapixel photo per pixel.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorlib.inference import colorizer as colorizer_module
from colorlib.inference.colorizer import Colorizer, lab_to_image, upsample_ab
from colorlib.models.networks import ModelConfig, build_generator
from colorlib.photos.lab import denormalize_ab, fast_lab_to_rgb


@pytest.fixture(scope="module")
def colorizer():
    torch.manual_seed(0)
    net = build_generator(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8)).eval()
    return Colorizer(net, ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                     colorizer_module.Path("stub.pt"))


@pytest.mark.parametrize("shape", [(37, 91), (7, 13), (500, 333), (1000, 1500)])
def test_upsampling_any_band_of_rows_matches_torch(shape):
    ab = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(ab)[None], size=shape, mode="bilinear",
                        align_corners=False)[0].numpy()
    assert np.abs(upsample_ab(ab, *shape) - ref).max() < 1e-4
    band = slice(shape[0] // 3, shape[0] // 3 + 5)
    assert np.array_equal(upsample_ab(ab, *shape, band), upsample_ab(ab, *shape)[:, band])


def test_strips_give_exactly_the_whole_image_result(colorizer, real_photos, monkeypatch):
    rgb = real_photos[0]
    whole = colorizer(rgb)
    monkeypatch.setattr(colorizer_module, "STRIP_PIXELS", rgb.shape[1] * 7 + 3)  # 7 rows a strip
    strips = colorizer(rgb)
    assert np.array_equal(whole, strips)
    # ... and the same as converting the fully upsampled Lab in one piece, the plain way.
    from colorlib.photos.lab import fast_lightness

    L = fast_lightness(rgb)
    ab_small = colorizer_module.predict_ab_small(colorizer.net, [L], 32)[0]
    plain = fast_lab_to_rgb(np.concatenate(
        [L[..., None], denormalize_ab(upsample_ab(ab_small, *L.shape)).transpose(1, 2, 0)], 2))
    assert np.array_equal(plain, whole)
    # 8-bit output: rounded as save_rgb rounds floats.
    eight = lab_to_image(L, ab_small, np.uint8, strip_pixels=1000)
    assert np.array_equal(eight, (np.clip(whole, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_memory_per_pixel_stays_near_the_size_of_the_result(colorizer, monkeypatch):
    """Peak numpy memory, per photo pixel, of colorizing a 3-megapixel photo to 8 bits.

    Input (3 B/px, as uint8) + L (4 B/px) + output (3 B/px) is 10 B/px; the
    rest is one strip. Converting the whole photo at once (upsampled ab,
    Lab, float RGB: about 40 B/px more) would fail this bound, which is
    what lets a 200 MP photo fit in about 2.5 GB.
    """
    monkeypatch.setattr(colorizer_module, "STRIP_PIXELS", 200_000)
    h, w = 1500, 2000
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        (out,) = colorizer.colorize_many([rgb], dtype=np.uint8)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert out.shape == rgb.shape and out.dtype == np.uint8
    per_pixel = peak / (h * w)
    assert per_pixel < 14, f"{per_pixel:.1f} bytes per pixel"


def test_batches_stop_at_a_pixel_budget(colorizer, monkeypatch):
    seen = []
    hook = colorizer.net.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    monkeypatch.setattr(colorizer_module, "BATCH_PIXELS", 3 * 40 * 40)
    try:
        photos = [np.full((40, 40), v, np.uint8) for v in (10, 60, 110, 160, 210)]
        outs = list(colorizer.colorize_many(photos, batch_size=16))
    finally:
        hook.remove()
    assert seen == [3, 2] and len(outs) == 5  # three photos fill the budget, then the rest
