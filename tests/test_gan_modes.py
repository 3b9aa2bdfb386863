"""Every GAN loss of colorlib trains, and the generator gets its own hinge loss."""
import pytest
import torch

from colorlib.models.losses import GAN_MODES
from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
from colorlib.models.pix2pix import Pix2Pix, pair


@pytest.mark.parametrize("mode", GAN_MODES)
def test_one_step_in_each_gan_mode(mode):
    torch.manual_seed(0)
    cfg = ModelConfig(size=32, num_filters=8)
    model = Pix2Pix(build_generator(cfg), build_discriminator(cfg), gan_mode=mode)
    L, ab = torch.randn(2, 1, 32, 32), torch.rand(2, 2, 32, 32) - 0.5
    losses = model.train_step(L, ab)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    with torch.no_grad():  # D is unchanged since G's loss was computed, and fake_ab is G's output then
        scores = model.net_D(pair(L, model.fake_ab)).float()
    if mode == "hinge":
        assert losses["loss_G_GAN"] == pytest.approx(-scores.mean().item(), abs=1e-5)
    else:
        assert losses["loss_G_GAN"] == pytest.approx(model.gan_loss(scores, True).item(), abs=1e-5)
