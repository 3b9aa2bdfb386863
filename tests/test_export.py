"""Weights-only exports, and inference that runs as training did (mixed precision, cudnn.benchmark)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from colorlib.cli import main as cli
from colorlib.inference import export
from colorlib.inference.colorizer import Colorizer
from colorlib.models.networks import ModelConfig
from colorlib.system.device import DevicePolicy
from colorlib.teaching import notebook as nb
from colorlib.training.checkpoint import CheckpointError, is_export, load_checkpoint
from colorlib.training.config import TrainConfig
from colorlib.training.loop import Trainer


def checkpoint(tmp_path, stage="baseline", size=32, amp_dtype=None, steps=0):
    """A real checkpoint of ``stage`` after ``steps`` steps on noise, as Trainer.save writes it."""
    torch.manual_seed(0)
    arch = "pix2pix_unet" if stage == "baseline" else "resnet18_unet"
    trainer = Trainer.build(ModelConfig(arch=arch, size=size, num_filters=8),
                            TrainConfig(stage=stage), "cpu", weights=None)
    for _ in range(steps):  # fills Adam's moments: a checkpoint as it is after training
        trainer.train_step(torch.rand(2, 1, size, size) * 2 - 1, torch.rand(2, 2, size, size) - 0.5)
    if amp_dtype is not None:
        trainer.policy = DevicePolicy(trainer.policy.device, amp_dtype, False)
    path = tmp_path / "ck" / f"{stage}.pt"
    trainer.save(path)
    return path


@pytest.fixture()
def ck(tmp_path):
    return checkpoint(tmp_path)


def test_export_holds_the_generator_and_settings_in_half_precision(ck):
    out = export.export_generator(ck)
    assert out == ck.with_name("baseline-generator.pt")
    saved, full = load_checkpoint(out, stage="baseline"), load_checkpoint(ck)
    assert is_export(saved) and saved["model"] == full["model"]
    assert "discriminator" not in saved and "opt_G" not in saved and "rng" not in saved
    for key, value in full["generator"].items():
        kept = saved["generator"][key]
        assert kept.dtype == (torch.float16 if value.is_floating_point() else value.dtype)
        assert torch.allclose(kept.float(), value.float(), rtol=1e-3, atol=1e-4)
    assert out.stat().st_size < ck.stat().st_size / 4


def test_an_export_colorizes_like_its_checkpoint(ck, real_photos):
    photo = real_photos[0][:120, :160]
    a = Colorizer.load(ck, device="cpu")(photo)
    b = Colorizer.load(export.export_generator(ck), device="cpu")(photo)
    assert a.shape == b.shape == (120, 160, 3)
    # float16 weights: well under one 8-bit level (measured about 0.1 level at most here)
    assert np.abs(a - b).max() * 255 < 1.0


def test_the_cli_exports_and_colorize_and_evaluate_load_it(ck, tmp_path, real_photos, capsys):
    assert cli(["export", str(ck)]) == 0
    out = ck.with_name("baseline-generator.pt")
    assert "MB" in capsys.readouterr().out and out.is_file()
    assert cli(["export", str(ck)]) == 2  # never replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert cli(["export", str(ck), "--out", str(ck)]) == 2  # nor over its own checkpoint
    from colorlib.photos.image_files import save_rgb

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, rgb in enumerate(real_photos[:2]):
        save_rgb(rgb[:64, :64], photos / f"p{i}.png")
    assert cli(["colorize", str(photos), "--checkpoint", str(out), "--out",
                str(tmp_path / "colorized"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "colorized").glob("*.png"))) == 2
    assert cli(["evaluate", "--checkpoint", str(out), "--data", str(photos), "--device", "cpu",
                "--no-progress", "--json", str(tmp_path / "scores.json")]) == 0


@pytest.mark.slow
def test_training_cannot_resume_from_an_export_but_can_start_from_one(ck, tmp_path):
    out = export.export_generator(ck)
    trainer = Trainer.build(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                            TrainConfig(stage="baseline"), "cpu", weights=None)
    with pytest.raises(CheckpointError, match="weights-only export.*resume from the full "
                                              "checkpoint \\(baseline.pt\\)"):
        trainer.resume(out)
    pretrain = checkpoint(tmp_path / "p", stage="pretrain")
    gan = Trainer.build(ModelConfig(arch="resnet18_unet", size=32, num_filters=8),
                        TrainConfig(stage="gan"), "cpu", weights=None,
                        init=export.export_generator(pretrain))
    assert gan.started_from == "init from pretrain-generator.pt"


def test_notebooks_use_an_export_where_the_checkpoint_is_not_kept(ck, capsys):
    export.export_generator(ck)
    ck.unlink()  # only the small export was kept on Drive
    s = nb.Settings.from_env({"COLORLIB_CHECKPOINTS": str(ck.parent), "COLORLIB_SIZE": "32"})
    assert nb.ensure_stage("baseline", s) == ck.with_name("baseline-generator.pt")
    assert "weights-only export" in capsys.readouterr().out


@pytest.mark.parametrize("saved, expected", [({"amp_dtype": "bfloat16"}, True),
                                             ({"amp_dtype": "float16"}, True),
                                             ({"amp_dtype": None}, False),
                                             ({"train": {"amp": True}}, True),  # older files
                                             ({"train": {"amp": False}}, False)])
def test_whether_training_used_mixed_precision(saved, expected):
    assert export.training_amp(saved) is expected


def test_checkpoints_record_the_mixed_precision_dtype(tmp_path):
    assert load_checkpoint(checkpoint(tmp_path))["amp_dtype"] is None  # CPU, fp32
    bf16 = checkpoint(tmp_path / "b", amp_dtype=torch.bfloat16)
    assert load_checkpoint(bf16)["amp_dtype"] == "bfloat16"
    assert load_checkpoint(export.export_generator(bf16))["amp_dtype"] == "bfloat16"


def test_inference_on_the_cpu_stays_fp32_unless_asked(tmp_path):
    bf16 = checkpoint(tmp_path, amp_dtype=torch.bfloat16)
    assert Colorizer.load(bf16, device="cpu").amp is False  # bf16 on a CPU stays opt-in
    assert Colorizer.load(bf16, device="cpu", amp=True).amp is True


def test_cuda_entry_points_switch_on_cudnn_benchmark():
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert DevicePolicy(torch.device("cuda")).prepare_process()
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.slow
def test_the_gan_stage_export_is_tens_of_megabytes(tmp_path):
    ck = checkpoint(tmp_path, stage="gan", size=64, steps=1)
    out = export.export_generator(ck)
    mb, full = out.stat().st_size / 2**20, ck.stat().st_size / 2**20
    # measured: 59 MB against 388 MB (generator, PatchGAN and both Adams' moments, float32)
    assert 40 < mb < 80 and full > 300, (mb, full)


@pytest.mark.cuda
def test_cuda_inference_uses_mixed_precision_when_training_did(tmp_path, real_photos):
    bf16 = checkpoint(tmp_path, amp_dtype=torch.bfloat16)
    fp32 = checkpoint(tmp_path / "f")
    assert Colorizer.load(bf16, device="cuda").amp is True
    assert Colorizer.load(fp32, device="cuda").amp is False
    exported = Colorizer.load(export.export_generator(bf16), device="cuda")
    assert exported.amp is True
    out = exported(real_photos[0][:96, :128])
    assert out.shape == (96, 128, 3) and np.isfinite(out).all()
