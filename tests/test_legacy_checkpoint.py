"""Checkpoints written before the training code was split (issue 13) still load and resume.

``tests/fixtures/legacy_baseline_step{2,4}.pt`` come from one uninterrupted run
of the old code (tests/fixtures/README.md says how). Resuming the step-2 file
with today's code on the same pictures must reproduce the step-4 file: every
weight, optimiser moment, loss and the random state. That is bitwise on the
CPU with the torch version that wrote the fixture. Another torch draws other
dropout masks from the same restored random state (measured: torch 2.3 and
2.14 seeded alike drop different units), so its two steps differ as two runs
on other masks would: there the losses must agree within 5% and each weight
tensor lie within three times as far from the fixture's as the fixture's own
two steps moved it (a generator that was not restored is a hundred times
further off).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from robust_helpers import make_training_photos, stage_run, torch_threads

from colorlib.checkpoint import load_checkpoint
from colorlib.data import ColorizationDataset, DataConfig, make_loader, resolve_source
from colorlib.inference import Colorizer
from colorlib.networks import ModelConfig
from colorlib.train import TrainConfig, Trainer, train_stage

FIXTURES = Path(__file__).parent / "fixtures"
STEP2, STEP4 = FIXTURES / "legacy_baseline_step2.pt", FIXTURES / "legacy_baseline_step4.pt"
FIXTURE_TORCH = "2.14.1"  # the version that wrote them (tests/fixtures/README.md)
SAME_TORCH = torch.__version__.split("+")[0] == FIXTURE_TORCH
# Under another torch the networks are compared by how far the fixture's steps moved them
# (see above); the random state and the optimiser moments only bitwise.
LOOSE_SKIP = ("rng", "opt_G", "opt_D", "generator", "discriminator")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> DataConfig:
    """The fixture run's pictures and data settings."""
    photos = make_training_photos(tmp_path_factory.mktemp("legacy") / "photos", n=10, side=40)
    return DataConfig(source=str(photos), size=64, batch_size=4, seed=7)


def continue_from(path: Path, data: DataConfig) -> dict:
    """Resume ``path`` with today's Trainer and run it to its configured end; its state."""
    ckpt = load_checkpoint(path, arch="pix2pix_unet", stage="baseline")
    train_paths, val_paths = resolve_source(data)
    loader = make_loader(ColorizationDataset(train_paths, data.size, lab=False),
                         data.batch_size, train=True, seed=ckpt["train"]["seed"])
    val_batch = next(iter(make_loader(ColorizationDataset(val_paths[:data.batch_size], data.size,
                                                          lab=False), data.batch_size, train=False)))
    trainer = Trainer.build(ModelConfig(**ckpt["model"]), TrainConfig(**ckpt["train"]), "cpu",
                            weights=None)
    trainer.resume(path)
    with torch_threads(1):
        trainer.fit(loader, val_batch=val_batch, progress=False)
    return trainer.state_dict()


def compare(a, b, exact: bool, where: str = "checkpoint") -> None:
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if exact or not a.is_floating_point():
            assert torch.equal(a, b), where
        else:
            torch.testing.assert_close(a, b, msg=where)
    elif isinstance(a, dict):
        # newer code may add keys (val_history records gained train_seconds); none may go
        assert b.keys() <= a.keys(), where
        for key in b:
            if key != "train_seconds" and (exact or key not in LOOSE_SKIP):
                compare(a[key], b[key], exact, f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, exact, f"{where}[{i}]")
    elif isinstance(a, float) and not exact:
        assert a == pytest.approx(b, rel=0.05), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_legacy_checkpoint_resumes_to_the_legacy_run(data):
    legacy_end = {k: v for k, v in load_checkpoint(STEP4).items() if not k.startswith("format")}
    ours = continue_from(STEP2, data)
    assert (ours["epoch"], ours["step"], ours["batch_in_epoch"]) == (2, 4, 0)
    # Every key the old format had, with the same contents (newer keys may be added).
    ours = {k: v for k, v in ours.items() if k in legacy_end}
    compare(ours, {**legacy_end, "colorlib_version": ours["colorlib_version"]}, exact=SAME_TORCH)
    assert len(ours["history"]) == 4 and len(ours["val_history"]) == 2
    if not SAME_TORCH:
        legacy_start = load_checkpoint(STEP2)
        for net in ("generator", "discriminator"):
            for key, end in legacy_end[net].items():
                if end.is_floating_point():
                    moved = (end - legacy_start[net][key]).abs().max().item()
                    apart = (ours[net][key] - end).abs().max().item()
                    assert apart <= 3 * moved + 1e-6, f"{net}[{key!r}]: {apart:.2e} vs {moved:.2e}"


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
