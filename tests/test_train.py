"""Smoke tests of the training loops on tiny real data (one epoch, CPU)."""
import math

import pytest
import torch

from colorlib.checkpoint import load_checkpoint
from colorlib.data import DataConfig
from colorlib.train import TrainConfig, Trainer, train_stage
from colorlib.networks import ModelConfig


def _data(folder, size=32):
    return DataConfig(source=str(folder), size=size, batch_size=4)


def test_baseline_trains_one_epoch_and_saves_a_checkpoint(photo_folder, tmp_path):
    res = train_stage("baseline", _data(photo_folder), epochs=1, checkpoint_dir=tmp_path / "ck",
                      num_filters=8, progress=False, log=lambda s: None)
    t = res.trainer
    assert t.epoch == 1 and t.step == 3  # 12 photos / batch 4
    keys = {"loss_D_fake", "loss_D_real", "loss_D", "loss_G_GAN", "loss_G_L1", "loss_G"}
    assert keys <= set(t.history[-1]) and all(math.isfinite(v) for v in t.history[-1].values())
    assert len(t.val_history) == 1 and t.val_history[0]["val_l1"] > 0
    ckpt = load_checkpoint(res.checkpoint, arch="pix2pix_unet", stage="baseline")
    assert res.checkpoint.name == "baseline.pt"
    assert ckpt["model"]["size"] == 32 and ckpt["epoch"] == 1 and ckpt["discriminator"]


def test_l1_pretraining_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    trainer = Trainer(ModelConfig(arch="resnet18_unet", size=32),
                      TrainConfig(stage="pretrain", lr_g=1e-3), device="cpu", weights=None)
    L = torch.rand(4, 1, 32, 32) * 2 - 1
    ab = (L * 0.3).repeat(1, 2, 1, 1)  # a learnable mapping from L to ab
    first = trainer.train_step(L, ab)["loss_G_L1"]
    for _ in range(15):
        last = trainer.train_step(L, ab)["loss_G_L1"]
    assert last < 0.7 * first
    assert trainer.net_D is None  # pretraining has no discriminator


def test_gan_stage_starts_from_the_pretrain_checkpoint(photo_folder, tmp_path):
    ck = tmp_path / "ck"
    pre = train_stage("pretrain", _data(photo_folder), epochs=1, checkpoint_dir=ck, weights=None,
                      max_steps=1, progress=False, log=lambda s: None)
    gan = Trainer(ModelConfig(arch="resnet18_unet", size=32), TrainConfig(stage="gan"),
                  device="cpu", init=pre.checkpoint)
    for key, value in pre.trainer.net_G.state_dict().items():
        assert torch.equal(value, gan.net_G.state_dict()[key])
    assert gan.net_D is not None and gan.weights == "init from pretrain.pt"


def test_existing_checkpoint_is_not_overwritten_without_resume(photo_folder, tmp_path):
    kwargs = dict(epochs=1, checkpoint_dir=tmp_path, num_filters=8, max_steps=1,
                  progress=False, log=lambda s: None)
    first = train_stage("baseline", _data(photo_folder), **kwargs)
    before = first.checkpoint.read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train_stage("baseline", _data(photo_folder), **kwargs)
    assert first.checkpoint.read_bytes() == before


def test_stage_and_architecture_must_match():
    with pytest.raises(ValueError, match="pix2pix_unet"):
        Trainer(ModelConfig(arch="resnet18_unet", size=32), TrainConfig(stage="baseline"))
    with pytest.raises(ValueError, match="stage"):
        TrainConfig(stage="finetune")
