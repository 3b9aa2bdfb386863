"""The fast data path gives what the straightforward path gives.

Straightforward: decode each photo, resize, skimage ``rgb2lab`` per image
(float64), normalise; every epoch. Fast: decode once into a cache
(:class:`colorlib.data.loading.CachedLoader`), convert whole batches with the
float32 numpy formulas of :mod:`colorlib.photos.lab`, fused Adam, and optionally
bf16 on CPUs that have it.

Tolerance for the colour conversions: 1e-5 in normalised units, i.e.
0.0005 L and 0.0011 a*/b* (float32 rounding; measured about 1e-6). A
just-noticeable colour difference is about 1-2 Lab units, so this is
three orders of magnitude below anything visible.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor
from torch.utils.data import DataLoader, Dataset

from colorlib.data import loading
from colorlib.data.loading import (CachedLoader, ColorizationDataset, EpochSampler, collate,
                                   make_loader, prepare_batch, random_hflip)
from colorlib.data.sources import find_images
from colorlib.models.networks import ModelConfig
from colorlib.photos import lab
from colorlib.photos.image_files import load_rgb, resize_rgb
from colorlib.system.device import cpu_has_native_bf16
from colorlib.training.config import TrainConfig
from colorlib.training.loop import Trainer

ATOL = 1e-5  # normalised units (L/50 - 1, ab/110)


def colour_grid() -> np.ndarray:
    """Every 8-bit RGB colour on a 4-level step (64^3 = 262,144) plus the 255 corners."""
    levels = np.r_[np.arange(0, 256, 4), 255].astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    return grid[: (len(grid) // 512) * 512].reshape(-1, 512, 3)


def skimage_L_ab(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The straightforward path for one HxWx3 uint8 image: normalised 1xHxW L, 2xHxW ab."""
    ref = skcolor.rgb2lab(rgb)
    return (ref[..., 0] / 50 - 1)[None], (ref[..., 1:] / 110).transpose(2, 0, 1)


@pytest.mark.parametrize("source", ["grid", "photos"])
def test_batched_numpy_lab_matches_skimage(source, real_photos):
    images = [colour_grid()] if source == "grid" else [p[:96, :128] for p in real_photos]
    L, ab = lab.rgb_to_lab_tensor(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))
    assert L.dtype == ab.dtype == torch.float32
    for i, rgb in enumerate(images):
        ref_L, ref_ab = skimage_L_ab(rgb)
        np.testing.assert_allclose(L[i].numpy(), ref_L, rtol=0, atol=ATOL)
        np.testing.assert_allclose(ab[i].numpy(), ref_ab, rtol=0, atol=ATOL)


def test_full_size_conversions_match_skimage(real_photos):
    rgb = real_photos[0]  # a whole photo: several chunks, several threads
    ref = skcolor.rgb2lab(rgb)
    np.testing.assert_allclose(lab.fast_rgb_to_lab(rgb), ref, rtol=0, atol=ATOL * 110)
    np.testing.assert_allclose(lab.fast_lightness(rgb), ref[..., 0], rtol=0, atol=ATOL * 50)
    np.testing.assert_allclose(lab.fast_lab_to_rgb(ref), skcolor.lab2rgb(ref), rtol=0, atol=1e-5)
    wild = np.random.default_rng(0).uniform([0, -160, -160], [100, 160, 160], (64, 64, 3))
    with pytest.warns(UserWarning):  # skimage warns about negative Z values; we clip silently
        expected = skcolor.lab2rgb(wild)
    np.testing.assert_allclose(lab.fast_lab_to_rgb(wild), expected, rtol=0, atol=1e-5)


def test_tensor_lab_to_rgb_matches_skimage():
    L = torch.rand(2, 1, 40, 30) * 2 - 1
    ab = (torch.rand(2, 2, 40, 30) * 2 - 1) * 0.9
    out = lab.lab_tensor_to_rgb(L, ab)
    for i in range(2):
        ref = np.concatenate([(L[i].numpy() + 1) * 50, ab[i].numpy() * 110]).transpose(1, 2, 0)
        with np.errstate(all="ignore"), pytest.warns(UserWarning):
            expected = skcolor.lab2rgb(ref.astype(np.float64))
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_conversion_is_bitwise_independent_of_layout_and_threads(real_photos):
    batch = torch.from_numpy(np.stack([p[:64, :64] for p in real_photos])).permute(0, 3, 1, 2)
    L1, ab1 = lab.rgb_to_lab_tensor(batch)  # channels-last strides
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        L2, ab2 = lab.rgb_to_lab_tensor(batch.contiguous())
    finally:
        torch.set_num_threads(before)
    assert torch.equal(L1, L2) and torch.equal(ab1, ab2)


class SkimageDataset(Dataset):
    """The straightforward Dataset: decode, resize, skimage per image, every time."""

    def __init__(self, paths, size):
        self.paths, self.size = paths, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, idx):
        L, ab = skimage_L_ab(resize_rgb(load_rgb(self.paths[idx]), self.size))
        return {"L": torch.from_numpy(L.astype(np.float32)),
                "ab": torch.from_numpy(ab.astype(np.float32))}


@pytest.fixture(scope="module")
def train_paths(tiny_root):
    return find_images(tiny_root / "train")[::4][:48]


def reference_loader(paths, size, batch, seed):
    sampler = EpochSampler(len(paths), shuffle=True, seed=seed)
    return DataLoader(SkimageDataset(paths, size), batch_size=batch, sampler=sampler,
                      collate_fn=collate, drop_last=True)


def test_fast_loader_delivers_the_straightforward_batches(train_paths):
    fast = make_loader(ColorizationDataset(train_paths, 32, lab=False), 8, train=True, seed=3,
                       num_workers=2)
    assert isinstance(fast, CachedLoader)
    ref = reference_loader(train_paths, 32, 8, seed=3)
    for epoch in range(2):
        fast.sampler.set_epoch(epoch)
        ref.sampler.set_epoch(epoch)
        pairs = list(zip(fast, ref))
        assert len(pairs) == len(train_paths) // 8
        for k, (a, b) in enumerate(pairs):
            L, ab = prepare_batch(a, "cpu", augment=True,
                                  generator=torch.Generator().manual_seed(k))
            L_ref, ab_ref = prepare_batch(b, "cpu", augment=True,
                                          generator=torch.Generator().manual_seed(k))
            torch.testing.assert_close(L, L_ref, rtol=0, atol=ATOL)
            torch.testing.assert_close(ab, ab_ref, rtol=0, atol=ATOL)


def test_cached_batches_are_bitwise_those_of_an_uncached_loader(train_paths, monkeypatch):
    cached = make_loader(ColorizationDataset(train_paths, 32, lab=False), 8, train=True, seed=1)
    plain = make_loader(ColorizationDataset(train_paths, 32, lab=False, cache=False), 8,
                        train=True, seed=1)
    assert isinstance(cached, CachedLoader) and isinstance(plain, DataLoader)
    for epoch, skip in ((0, 0), (1, 16)):  # a resumed epoch skips the batches already seen
        cached.sampler.set_epoch(epoch, skip)
        plain.sampler.set_epoch(epoch, skip)
        got, want = list(cached), list(plain)
        assert len(got) == len(want) == (len(train_paths) - skip) // 8
        assert all(torch.equal(a["rgb"], b["rgb"]) for a, b in zip(got, want))
    # Every photo is in memory now: a further epoch reads no file at all.
    def no_reading(*args, **kwargs):
        raise AssertionError("a cached loader read a file again")

    monkeypatch.setattr(loading, "load_rgb", no_reading)
    cached.sampler.set_epoch(2)
    assert len(list(cached)) == len(train_paths) // 8


def test_flip_coins_of_two_ranks_are_the_single_process_coins():
    batch = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 1, 1, 2).contiguous()
    batch[..., 1] += 100  # so a flip is visible: (x, x+100) -> (x+100, x)
    whole = random_hflip([batch], torch.Generator().manual_seed(4))[0]
    parts = [random_hflip([batch[r::2]], torch.Generator().manual_seed(4), r, 2)[0]
             for r in range(2)]
    assert torch.equal(whole[0::2], parts[0]) and torch.equal(whole[1::2], parts[1])
    assert 0 < int((whole[..., 0] != batch[..., 0]).sum()) < 8  # some flipped, some not


def run_curve(paths, fast: bool, cpu_amp: bool = False, steps: int = 10) -> list[float]:
    """pix2pix baseline (GAN + 100 L1) at 32 px, 8 filters; returns the L1 term per step."""
    torch.manual_seed(11)
    trainer = Trainer.build(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                            TrainConfig(stage="baseline", seed=11, cpu_amp=cpu_amp), "cpu")
    if fast:
        loader = make_loader(ColorizationDataset(paths, 32, lab=False), 8, train=True, seed=2)
    else:
        loader = reference_loader(paths, 32, 8, seed=2)
        model = trainer.model
        for name, net in (("opt_G", model.net_G), ("opt_D", model.net_D)):
            setattr(model, name, torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999),
                                                  fused=False, foreach=False))  # plain loop
    losses = []
    for epoch in range(steps):
        loader.sampler.set_epoch(epoch)
        for k, batch in enumerate(loader):
            L, ab = prepare_batch(batch, "cpu", augment=True,
                                  generator=torch.Generator().manual_seed(len(losses)))
            losses.append(trainer.train_step(L, ab)["loss_G_L1"])
            if len(losses) == steps:
                return losses
    return losses


@pytest.fixture(scope="module")
def reference_curve(train_paths):
    return run_curve(train_paths, fast=False)


@pytest.mark.slow
@pytest.mark.parametrize("cpu_amp", [False, True], ids=["fp32", "cpu_bf16"])
def test_fast_path_loss_curve_tracks_the_reference(train_paths, reference_curve, cpu_amp):
    # "Noise" is the loss's own batch-to-batch movement (median |step change|
    # of the reference L1 curve, about 1.7 here). Measured gaps: fp32 under 1%
    # of it (float32 colour conversion, fused Adam), CPU bf16 about 2%.
    if cpu_amp and not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (AMX / AVX512-BF16); cpu_amp does nothing")
    fast = run_curve(train_paths, fast=True, cpu_amp=cpu_amp)
    ref = np.array(reference_curve)
    noise = np.median(np.abs(np.diff(ref)))
    gap = np.abs(np.array(fast) - ref)
    assert len(fast) == len(ref) == 10 and np.isfinite(fast).all()
    assert noise > 0.1  # the yardstick itself is not degenerate
    assert gap.max() < (0.05 if not cpu_amp else 0.2) * noise, (gap.max(), noise)
