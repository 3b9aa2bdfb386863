"""The code that normally runs only on a GPU, run on the CPU before a GPU ever sees it.

* the kornia Lab conversion (the batch path on a GPU) against skimage;
* fp16 autocast with a GradScaler (T4-class GPUs: Colab, Kaggle): a training
  step and an exact resume of it (torch runs both on the CPU);
* checkpoints crossing between scaler-on and scaler-off runs, both ways;
* random state saved on a machine with more GPUs than this one.

Tests marked ``cuda`` repeat what only a real GPU can show; they skip here
and run in ``benchmarks/gpu_check.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorlib.data.loading import ColorizationDataset, make_loader
from colorlib.data.sources import find_images
from colorlib.models.algorithms import build_model
from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
from colorlib.models.pix2pix import Pix2Pix
from colorlib.models.stages import AdamSettings
from colorlib.photos import lab
from colorlib.system.device import DevicePolicy, MixedPrecision
from colorlib.training.checkpoint import (load_checkpoint, restore_rng_state, rng_state,
                                          save_checkpoint)
from colorlib.training.config import TrainConfig
from colorlib.training.loop import Trainer

# kornia against skimage, in Lab units (L 0-100, a*b* about +-110; a just-noticeable
# difference is about 1-2). Measured: at most 1.5e-5 in L and 5.4e-5 in a*b* on the tiny set's
# photos and on every RGB corner, grey ramp and 4,096 random colours; tolerance 1e-3.
KORNIA_L_TOL, KORNIA_AB_TOL = 1e-3, 1e-3
# The CPU's numpy path against kornia: the numpy path's own tolerance (tests/test_lab.py).
NUMPY_L_TOL, NUMPY_AB_TOL = 0.05, 0.1
# Lab -> RGB back again, in 8-bit levels.
KORNIA_RGB_TOL = 0.6 / 255


def _extreme_colours() -> np.ndarray:
    corners = np.array(np.meshgrid([0, 255], [0, 255], [0, 255])).reshape(3, -1).T
    ramps = np.stack([np.arange(256)] * 3, 1)
    rng = np.random.default_rng(1)
    return np.concatenate([corners, ramps, rng.integers(0, 256, (4096, 3))]).astype(np.uint8)


@pytest.mark.parametrize("source", [pytest.param("photos", marks=pytest.mark.slow), "extremes"])
def test_kornia_lab_path_agrees_with_skimage(source, real_photos):
    images = ([rgb[:96, :96] for rgb in real_photos] if source == "photos"
              else [_extreme_colours().reshape(-1, 8, 3)])
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    L, ab = lab.kornia_rgb_to_lab(batch)  # exactly what rgb_to_lab_tensor runs on a GPU
    worst_l = worst_ab = 0.0
    for i, rgb in enumerate(images):
        ref = skcolor.rgb2lab(rgb)
        worst_l = max(worst_l, np.abs(lab.denormalize_l(L[i, 0].numpy()) - ref[..., 0]).max())
        worst_ab = max(worst_ab, np.abs(lab.denormalize_ab(ab[i].numpy()).transpose(1, 2, 0)
                                        - ref[..., 1:]).max())
    assert worst_l < KORNIA_L_TOL and worst_ab < KORNIA_AB_TOL, (worst_l, worst_ab)
    # ... and the CPU's numpy path gives the same normalised values to within that tolerance.
    L_np, ab_np = lab.rgb_to_lab_tensor(batch)
    assert (L - L_np).abs().max() * 50 < NUMPY_L_TOL
    assert (ab - ab_np).abs().max() * 110 < NUMPY_AB_TOL


def test_kornia_lab_to_rgb_round_trip_and_clipping():
    rgb = torch.from_numpy(_extreme_colours()[:4096].reshape(1, 64, 64, 3)).permute(0, 3, 1, 2)
    back = lab.kornia_lab_to_rgb(*lab.kornia_rgb_to_lab(rgb))
    assert (back - rgb.float() / 255).abs().max() < KORNIA_RGB_TOL
    wild = lab.kornia_lab_to_rgb(torch.full((1, 1, 4, 4), 0.2),
                                 torch.tensor([3.0, -3.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4))
    assert torch.isfinite(wild).all() and wild.min() >= 0 and wild.max() <= 1


# ------------------------------------------------------------ fp16 + scaler
SIZE = 32


def fp16_trainer(amp_dtype=torch.float16, stage="baseline", seed=0) -> Trainer:
    """A CPU trainer with the policy a T4 gets (fp16 autocast + GradScaler), or another dtype."""
    torch.manual_seed(seed)
    arch = "pix2pix_unet" if stage == "baseline" else "resnet18_unet"
    model_cfg = ModelConfig(arch=arch, size=SIZE, num_filters=8)
    cfg = TrainConfig(stage=stage, epochs=1000, seed=seed, max_steps=None)
    policy = DevicePolicy(torch.device("cpu"), amp_dtype, channels_last=False)
    net_D = build_discriminator(model_cfg) if stage != "pretrain" else None
    model = build_model(stage, build_generator(model_cfg, weights=None), net_D, adam=cfg.adam(),
                        lambda_l1=cfg.lambda_l1, gan_mode=cfg.gan_mode,
                        amp=policy.mixed_precision())
    return Trainer(model, policy, cfg, model_cfg)


@pytest.fixture(scope="module")
def loader(tiny_root):
    ds = ColorizationDataset(find_images(tiny_root / "train")[:16], SIZE, lab=False)
    return make_loader(ds, batch_size=4, train=True, seed=0)


def train_to(trainer: Trainer, loader, steps: int) -> Trainer:
    trainer.cfg.max_steps = steps
    return trainer.fit(loader, progress=False)


def assert_same_run(a: dict, b: dict) -> None:
    for key in ("generator", "discriminator", "opt_G", "opt_D"):
        if a[key] is None:
            assert b[key] is None
            continue
        flat_a, flat_b = _tensors(a[key]), _tensors(b[key])
        assert flat_a.keys() == flat_b.keys()
        for name in flat_a:
            x, y = flat_a[name], flat_b[name]
            same = torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
            assert same, f"{key}.{name} differs"
    assert a["scaler"] == b["scaler"]
    assert [h["loss_G"] for h in a["history"]] == [h["loss_G"] for h in b["history"]]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def _tensors(tree, prefix="") -> dict:
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_tensors(v, f"{prefix}{k}."))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(_tensors(v, f"{prefix}{i}."))
    elif isinstance(tree, torch.Tensor):
        out[prefix] = tree
    else:
        out[prefix] = tree  # numbers, flags, None
    return out


@pytest.mark.slow
def test_fp16_autocast_with_gradscaler_trains_on_the_cpu(loader):
    trainer = fp16_trainer()
    assert trainer.model.amp.scaler is not None  # fp16 gets a scaler, as on a T4
    start = {k: v.clone() for k, v in trainer.net_G.state_dict().items()}
    train_to(trainer, loader, 3)
    assert trainer.step == 3 and all(np.isfinite(h["loss_G"]) for h in trainer.history)
    scaler = trainer.model.amp.state_dict()
    assert scaler["scale"] > 0 and "_growth_tracker" in scaler
    changed = [k for k, v in trainer.net_G.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, start[k])]
    assert changed  # the scaled, unscaled gradients did update the weights


@pytest.mark.slow
def test_fp16_run_resumes_exactly(loader, tmp_path):
    reference = train_to(fp16_trainer(), loader, 4).state_dict()
    first = train_to(fp16_trainer(), loader, 2)
    path = save_checkpoint(first.state_dict(), tmp_path / "baseline.pt")
    torch.manual_seed(123)  # a new process: whatever its random state, resume restores it
    resumed = fp16_trainer(seed=0)
    resumed.load_state_dict(load_checkpoint(path, stage="baseline"), source=path)
    assert resumed.model.amp.state_dict() == first.model.amp.state_dict()
    assert_same_run(train_to(resumed, loader, 4).state_dict(), reference)


@pytest.mark.slow
@pytest.mark.parametrize("saved, resumed", [(None, torch.float16), (torch.float16, None),
                                            (torch.bfloat16, torch.float16)])
def test_checkpoints_cross_between_scaler_on_and_off(loader, tmp_path, saved, resumed):
    """A T4 run (fp16, scaler) resumed on a CPU or an A100 (no scaler), and the reverse."""
    before = train_to(fp16_trainer(saved), loader, 2)
    path = save_checkpoint(before.state_dict(), tmp_path / "baseline.pt")
    after = fp16_trainer(resumed)
    after.load_state_dict(load_checkpoint(path), source=path)  # no "does not fit this model"
    for k, v in before.net_G.state_dict().items():
        assert torch.equal(after.net_G.state_dict()[k], v)
    train_to(after, loader, 3)
    assert after.step == 3 and np.isfinite(after.history[-1]["loss_G"])
    if resumed == torch.float16 and saved != torch.float16:  # a fresh loss scale
        assert after.model.amp.state_dict()["scale"] > 0


def test_a_scaler_state_without_a_scaler_and_the_reverse_at_the_lowest_level():
    fp32, fp16 = MixedPrecision("cpu", None), MixedPrecision("cpu", torch.float16)
    fp16.load_state_dict({})  # what an fp32 run saved: the scaler keeps its fresh state
    fp32.load_state_dict(fp16.state_dict())  # an fp16 run's scale: nothing to restore it into
    assert fp32.state_dict() == {} and fp16.state_dict()["scale"] == 65536.0


# -------------------------------------------------------------- random state
def test_rng_state_from_a_machine_with_more_gpus_restores_what_fits(monkeypatch):
    """Saved on Kaggle's two GPUs (or four), resumed on Colab's one: no IndexError."""
    saved = {"torch": torch.get_rng_state(),
             "cuda": [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]}
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device="cuda": restored.append((int(state[0]), device)))
    restore_rng_state(saved)
    assert restored == [(0, 0)]  # this machine's one GPU gets GPU 0's state
    restored.clear()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)  # more GPUs here than there
    restore_rng_state(saved)
    assert restored == [(i, i) for i in range(4)]


@pytest.mark.slow
def test_a_gpu_machines_checkpoint_resumes_on_the_cpu(loader, tmp_path):
    trainer = train_to(fp16_trainer(None), loader, 1)
    state = trainer.state_dict()
    state["rng"] = {**state["rng"], "cuda": [torch.zeros(16, dtype=torch.uint8)] * 2}
    path = save_checkpoint(state, tmp_path / "baseline.pt")
    again = fp16_trainer(None)
    again.load_state_dict(load_checkpoint(path), source=path)
    assert again.step == 1 and torch.equal(torch.get_rng_state(), state["rng"]["torch"])


def test_rng_state_round_trip_on_this_machine():
    saved = rng_state()
    a = torch.rand(3)
    restore_rng_state(saved)
    assert torch.equal(torch.rand(3), a)


# ------------------------------------------------------------- on a real GPU
@pytest.mark.cuda
def test_cuda_kornia_lab_matches_the_cpu_path(real_photos):
    batch = torch.from_numpy(np.stack([rgb[:96, :96] for rgb in real_photos])).permute(0, 3, 1, 2)
    L_gpu, ab_gpu = lab.rgb_to_lab_tensor(batch.cuda())
    L_cpu, ab_cpu = lab.rgb_to_lab_tensor(batch)
    assert (L_gpu.cpu() - L_cpu).abs().max() * 50 < NUMPY_L_TOL
    assert (ab_gpu.cpu() - ab_cpu).abs().max() * 110 < NUMPY_AB_TOL


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_mixed_precision_steps_and_resume(dtype, tmp_path, tiny_root):
    """On the GPU: fp16 (+ scaler) and bf16 steps stay finite; resume continues the same run.

    Bitwise equality is not asked for on CUDA (cuDNN picks kernels whose sums
    are not ordered); the resumed weights must match the uninterrupted run's
    closely, and the loss scale exactly.
    """
    ds = ColorizationDataset(find_images(tiny_root / "train")[:32], 64, lab=False)
    gpu_loader = make_loader(ds, batch_size=8, train=True, seed=0, pin_memory=True)

    def build(seed=0):
        torch.manual_seed(seed)
        cfg = ModelConfig(arch="pix2pix_unet", size=64, num_filters=16)
        policy = DevicePolicy(torch.device("cuda"), dtype, channels_last=True)
        model = Pix2Pix(policy.place(build_generator(cfg, weights=None)),
                        policy.place(build_discriminator(cfg)), adam=AdamSettings(),
                        lambda_l1=100.0, gan_mode="vanilla", amp=policy.mixed_precision())
        return Trainer(model, policy, TrainConfig(stage="baseline", epochs=1000), cfg)

    reference = train_to(build(), gpu_loader, 4)
    first = train_to(build(), gpu_loader, 2)
    path = save_checkpoint(first.state_dict(), tmp_path / "baseline.pt")
    resumed = build()
    resumed.load_state_dict(load_checkpoint(path), source=path)
    train_to(resumed, gpu_loader, 4)
    assert all(np.isfinite(h["loss_G"]) for h in resumed.history)
    assert resumed.model.amp.state_dict() == reference.model.amp.state_dict()
    for k, v in reference.net_G.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(resumed.net_G.state_dict()[k], v, rtol=1e-2, atol=1e-3)


@pytest.mark.cuda
def test_cuda_checkpoint_from_more_gpus_resumes_here():
    """Real CUDA generators (not faked calls): saved from a machine with three more GPUs than
    this one, each GPU here gets its own saved state back, and draws continue from it."""
    count = torch.cuda.device_count()
    saved = []
    for index in range(count + 3):  # a distinct state per saving GPU, so a mix-up shows
        torch.cuda.manual_seed(1000 + index)  # GPU 0's generator, read back as a state
        saved.append(torch.cuda.get_rng_state(0))
    state = {"torch": torch.get_rng_state(), "cuda": saved}
    torch.cuda.manual_seed_all(7)  # move every GPU's generator away from the saved states
    restore_rng_state(state)  # no IndexError for the GPUs this machine lacks
    for index in range(count):
        assert torch.equal(torch.cuda.get_rng_state(index), saved[index]), f"GPU {index}"
    torch.cuda.manual_seed(1000)
    want = torch.rand(4, device="cuda:0")
    restore_rng_state(state)
    assert torch.equal(torch.rand(4, device="cuda:0"), want)