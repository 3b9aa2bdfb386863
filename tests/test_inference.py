import numpy as np
import pytest
import torch

from colorlib.inference.colorizer import Colorizer, colorize
from colorlib.models.networks import ModelConfig, build_generator
from colorlib.photos.lab import rgb_to_lab
from colorlib.training.config import TrainConfig
from colorlib.training.loop import Trainer


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return build_generator(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8)).eval()


@pytest.mark.parametrize("shape", [(37, 91), (120, 33), (7, 13), (256, 256)])
def test_output_keeps_input_size_and_lightness(small_net, real_photos, shape):
    rgb = real_photos[0][: shape[0], : shape[1]]
    out = colorize(rgb, small_net, size=32)
    assert out.shape == rgb.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    # Full-resolution detail comes from the input's own L (gamut clipping may move it a bit).
    dL = np.abs(rgb_to_lab(out)[..., 0] - rgb_to_lab(rgb)[..., 0])
    assert np.median(dL) < 1.0


def test_greyscale_and_colour_inputs_give_the_same_result(small_net, real_photos):
    rgb = real_photos[1][:64, :64]
    grey = (rgb_to_lab(rgb)[..., 0] / 100 * 255).astype(np.uint8)  # approx. the same lightness
    from colorlib.photos.lab import lab_to_rgb

    exact_grey = lab_to_rgb(np.stack([rgb_to_lab(rgb)[..., 0], np.zeros((64, 64)),
                                      np.zeros((64, 64))], -1))
    a = colorize(rgb, small_net, 32)
    b = colorize((exact_grey * 255).round().astype(np.uint8), small_net, 32)
    assert np.abs(a - b).mean() < 0.01
    assert colorize(grey, small_net, 32).shape == (64, 64, 3)  # a 2-D array works too


def test_colorizer_loads_from_checkpoint(tmp_path, real_photos):
    trainer = Trainer.build(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                            TrainConfig(stage="baseline"), device="cpu")
    trainer.train_step(*_batch_of(real_photos))  # weights that differ from a fresh init
    ckpt = trainer.save(tmp_path / "baseline.pt")
    colorizer = Colorizer.load(ckpt)
    assert colorizer.config.size == 32
    photo = real_photos[0][:50, :70]
    expected = colorize(photo, trainer.net_G.eval(), size=32)  # the trained generator itself
    np.testing.assert_allclose(colorizer(photo), expected, atol=1e-5)
    assert "colorlib" in colorizer.provenance and "baseline.pt" in colorizer.provenance


def _batch_of(photos):
    from colorlib.photos.image_files import resize_rgb
    from colorlib.photos.lab import rgb_to_lab_tensor

    rgb = np.stack([resize_rgb(p, 32) for p in photos[:4]])
    return rgb_to_lab_tensor(torch.from_numpy(rgb).permute(0, 3, 1, 2))
