"""Checkpoints written before the training code was split (issue 13) still load and resume.

``tests/fixtures/legacy_baseline_step{2,4}.pt`` come from one uninterrupted run
of the old code (tests/fixtures/README.md says how). Resuming the step-2 file
with today's code on the same pictures must continue that run: reach the
step-4 file's state.

Only integers (steps, epochs, the random generators' state) are compared
bitwise with the fixture. Its floats were written on another machine, and the
same torch picks other kernels on another CPU (AVX2, AVX-512, AMX, oneDNN's
ISA), which round differently, so weights, optimiser moments and losses are
compared with the tolerances below. Bitwise comparisons are made only between
two runs on this machine (:func:`test_legacy_resume_continues_as_an_uninterrupted_run`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from robust_helpers import make_training_photos, stage_run, torch_threads

from colorlib.data.loading import ColorizationDataset, make_loader
from colorlib.data.sources import DataConfig, resolve_source
from colorlib.inference.colorizer import Colorizer
from colorlib.models.networks import ModelConfig
from colorlib.training.checkpoint import load_checkpoint
from colorlib.training.config import TrainConfig
from colorlib.training.loop import Callback, Trainer
from colorlib.training.runner import train_stage

FIXTURES = Path(__file__).parent / "fixtures"
STEP2, STEP4 = FIXTURES / "legacy_baseline_step2.pt", FIXTURES / "legacy_baseline_step4.pt"
FIXTURE_TORCH = "2.14.1"  # the version that wrote them (tests/fixtures/README.md)
SAME_TORCH = torch.__version__.split("+")[0] == FIXTURE_TORCH

# Tolerances against the fixture. Weights: the largest difference of a tensor from the
# fixture's, as a multiple of the largest distance the fixture's own two steps moved it.
# Measured 2026-12-06 with torch 2.14.1 on an Intel Xeon (AMX) under
# ATEN_CPU_CAPABILITY=default, avx2 and avx512: at most 1.5e-4 (the fixture was written on
# another x86-64 CPU); Adam's moments at most 1.5e-5 of their largest value; losses equal to
# 1e-7. The bounds leave more than 100x headroom for other CPUs' rounding, and stay far below
# what a real defect gives: a generator that was not restored is about 100 moves off.
# Another torch draws other dropout masks from the same restored random state (measured:
# torch 2.3 and 2.14 seeded alike drop different units), so its two steps differ as two
# runs on other masks would: each tensor within three moves, losses within 5% (worst
# measured 1.86 moves), and the optimiser moments are not compared.
WEIGHT_MOVES = 0.02 if SAME_TORCH else 3.0
ADAM_REL = 1e-3
LOSS_REL = 1e-4 if SAME_TORCH else 0.05
NETS, OPTIMISERS = ("generator", "discriminator"), ("opt_G", "opt_D")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> DataConfig:
    """The fixture run's pictures and data settings."""
    photos = make_training_photos(tmp_path_factory.mktemp("legacy") / "photos", n=10, side=40)
    return DataConfig(source=str(photos), size=64, batch_size=4, seed=7)


class StopAtStep(Callback):
    def __init__(self, step: int):
        self.step = step

    def should_stop(self, trainer) -> bool:
        return trainer.step >= self.step


def continue_from(path: Path, data: DataConfig, save_to: Path | None = None,
                  stop_at: int | None = None) -> dict:
    """Resume ``path`` with today's Trainer and run it to its configured end (or to step
    ``stop_at``, saved to ``save_to``); its state."""
    ckpt = load_checkpoint(path)
    train_paths, val_paths = resolve_source(data)
    loader = make_loader(ColorizationDataset(train_paths, data.size, lab=False),
                         data.batch_size, train=True, seed=ckpt["train"]["seed"])
    val_batch = next(iter(make_loader(ColorizationDataset(val_paths[:data.batch_size], data.size,
                                                          lab=False), data.batch_size, train=False)))
    trainer = Trainer.build(ModelConfig(**ckpt["model"]), TrainConfig(**ckpt["train"]), "cpu",
                            weights=None)
    trainer.resume(path)
    with torch_threads(1):
        trainer.fit(loader, checkpoint=save_to, val_batch=val_batch, progress=False,
                    callbacks=[StopAtStep(stop_at)] if stop_at else ())
    return trainer.state_dict()


def compare(a, b, exact: bool, where: str = "checkpoint") -> None:
    """``a`` holds every key of ``b`` (newer code may add keys, e.g. a validation record's
    train_seconds) with the same value: integers and strings equal, floats bitwise when
    ``exact``, else within LOSS_REL (tensors are left to the callers' tolerances)."""
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if exact or not a.is_floating_point():
            assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert b.keys() <= a.keys(), f"{where}: keys {sorted(set(b) - set(a))} missing"
        for key in b:
            if key != "train_seconds":
                compare(a[key], b[key], exact, f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, exact, f"{where}[{i}]")
    elif isinstance(a, float) and not exact:
        assert a == pytest.approx(b, rel=LOSS_REL), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_weights_continue(ours: dict, start: dict, end: dict) -> None:
    """Each float tensor of the networks within WEIGHT_MOVES of the fixture's own movement."""
    for net in NETS:
        for key, want in end[net].items():
            if want.is_floating_point():
                moved = (want - start[net][key]).abs().max().item()
                apart = (ours[net][key] - want).abs().max().item()
                assert apart <= WEIGHT_MOVES * moved + 1e-7, \
                    f"{net}[{key!r}]: {apart:.2e} from the fixture, its steps moved {moved:.2e}"


def assert_adam_continues(ours: dict, end: dict) -> None:
    """Adam's moments within ADAM_REL of their largest value (same torch only, see above)."""
    for opt in OPTIMISERS:
        for i, want in end[opt]["state"].items():
            got = ours[opt]["state"][i]
            assert int(got["step"]) == int(want["step"]), f"{opt} state {i}: step"
            for k in ("exp_avg", "exp_avg_sq"):
                scale = want[k].abs().max().item()
                assert (got[k] - want[k]).abs().max().item() <= ADAM_REL * scale + 1e-30, \
                    f"{opt} state {i} {k}"


def test_legacy_checkpoint_resumes_to_the_legacy_run(data):
    start, end = load_checkpoint(STEP2), load_checkpoint(STEP4)
    ours = continue_from(STEP2, data)
    assert (ours["epoch"], ours["step"], ours["batch_in_epoch"]) == (2, 4, 0)
    assert len(ours["history"]) == 4 and len(ours["val_history"]) == 2
    # Integers bitwise (the random state included), floats within LOSS_REL.
    skip = (*NETS, *OPTIMISERS, "colorlib_version")
    compare({k: v for k, v in ours.items() if k not in skip},
            {k: v for k, v in end.items() if k not in skip and not k.startswith("format")},
            exact=False)
    assert_weights_continue(ours, start, end)
    if SAME_TORCH:
        assert_adam_continues(ours, end)


def test_legacy_resume_continues_as_an_uninterrupted_run(data, tmp_path):
    """On this machine, bitwise: the old step-2 file run straight to step 4, and the same
    file stopped at step 3 mid-epoch, saved by today's code and resumed, end identically."""
    straight = continue_from(STEP2, data)
    continue_from(STEP2, data, save_to=tmp_path / "baseline.pt", stop_at=3)
    resumed = continue_from(tmp_path / "baseline.pt", data)
    for state in (straight, resumed):  # whether Adam runs fused is this machine's choice
        for opt in OPTIMISERS:
            for group in state[opt]["param_groups"]:
                group.pop("fused", None)
    compare(resumed, straight, exact=True)


def test_legacy_checkpoint_round_trips_through_the_new_trainer(tmp_path):
    """Load, save with today's code: every old key comes back, tensor for tensor."""
    legacy = load_checkpoint(STEP2)
    trainer = Trainer.build(ModelConfig(**legacy["model"]), TrainConfig(**legacy["train"]), "cpu",
                            weights=None)
    trainer.resume(STEP2)
    resaved = load_checkpoint(trainer.save(tmp_path / "baseline.pt"))
    assert set(legacy) <= set(resaved)  # newer code may add keys, never drop or change one
    for ckpt in (resaved, legacy):  # whether Adam runs fused is this machine's choice
        for opt in (ckpt["opt_G"], ckpt["opt_D"]):
            for group in opt["param_groups"]:
                group.pop("fused", None)
    compare({k: v for k, v in resaved.items() if k in legacy}, legacy, exact=True)
    assert torch.equal(resaved["rng"]["torch"], legacy["rng"]["torch"])


def test_legacy_checkpoint_resumes_through_train_stage_and_colorizes(data, tmp_path):
    """The CLI's path: --resume on the old file (same settings), then colorize with it."""
    ck = tmp_path / "ck"
    ck.mkdir()
    shutil.copy(STEP2, ck / "baseline.pt")
    run = stage_run("baseline", data, ck, epochs=3, seed=7, num_filters=2, device="cpu",
                    weights=None, progress=False, resume=True)
    run.model_config = lambda: ModelConfig(arch="pix2pix_unet", size=64, num_filters=2,
                                           disc_filters=4)  # the fixture's small PatchGAN
    said = []
    with torch_threads(1):
        result = train_stage(run, log=said.append)
    assert said == [f"Resumed baseline from {ck / 'baseline.pt'}: epoch 2, batch 0, step 2"]
    assert (result.trainer.epoch, result.trainer.step) == (3, 6)
    rgb = Colorizer.load(STEP4, device="cpu")(np.full((50, 70, 3), 128, np.uint8))
    assert rgb.shape == (50, 70, 3) and np.isfinite(rgb).all()
