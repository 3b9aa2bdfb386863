import pytest
import torch
from torch import nn

from colorlib.models.networks import (ModelConfig, PatchDiscriminator, PixUnet,
                                      build_discriminator, build_generator, build_res_unet,
                                      init_weights, load_resnet18, receptive_field,
                                      resnet18_imagenet_file)


@pytest.mark.parametrize("size,n_down", [(256, 8), (64, 6), (32, 5)])
def test_pix2pix_unet_shapes_and_depth(size, n_down):
    cfg = ModelConfig(arch="pix2pix_unet", size=size, num_filters=8)
    assert cfg.n_down == n_down
    net = build_generator(cfg).eval()
    out = net(torch.randn(2, 1, size, size))
    assert out.shape == (2, 2, size, size)
    assert out.abs().max() <= 1  # tanh output, like normalised ab
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == n_down - 5  # the 8x-wide inner blocks, not the innermost


def test_unet_skip_connections_concatenate():
    net = PixUnet(n_down=5, num_filters=4)
    inner = net.model.model[1]  # the block wrapped by the outermost one
    x = torch.randn(1, 4, 16, 16)
    assert inner(x).shape[1] == 4 + 4  # input channels + the block's own output


def test_patchgan_receptive_field_is_70_and_grid_is_30x30():
    disc = PatchDiscriminator(3, 64, 3)
    assert receptive_field(disc) == 70
    assert disc(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert receptive_field(PatchDiscriminator(3, 8, 2)) == 34  # fewer layers, smaller patches


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="power of two"):
        ModelConfig(size=100)
    with pytest.raises(ValueError, match="architecture"):
        ModelConfig(arch="vgg")


def test_init_weights_normal_002():
    torch.manual_seed(0)
    net = init_weights(nn.Sequential(nn.Conv2d(64, 64, 4), nn.BatchNorm2d(64)))
    conv, bn = net
    assert abs(conv.weight.std().item() - 0.02) < 0.001
    assert abs(conv.weight.mean().item()) < 0.001 and torch.all(conv.bias == 0)
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and torch.all(bn.bias == 0)
    disc = build_discriminator(ModelConfig(size=64, disc_filters=8))
    first = disc.model[0][0]  # sees L and ab together, with the configured width
    assert (first.in_channels, first.out_channels) == (3, 8)
    weights = torch.cat([m.weight.flatten() for m in disc.modules() if isinstance(m, nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 0.002  # initialised the pix2pix way, too


@pytest.fixture(scope="module")
def saved_resnet(tmp_path_factory):
    """A ResNet18 state_dict with distinctive (seeded random) weights, saved to a file."""
    from torchvision.models import resnet18

    torch.manual_seed(123)
    model = resnet18(weights=None)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def _check_encoder_holds(body, state):
    """fastai's body = resnet children up to layer4; conv1 summed over RGB."""
    torch.testing.assert_close(body[0].weight, state["conv1.weight"].sum(1, keepdim=True))
    for i, name in enumerate(("layer1", "layer2", "layer3", "layer4"), start=4):
        for key, value in body[i].state_dict().items():
            torch.testing.assert_close(value, state[f"{name}.{key}"])


@pytest.mark.slow
def test_res_unet_encoder_holds_weights_from_explicit_file(saved_resnet):
    path, state = saved_resnet
    net = build_res_unet(size=64, weights=path)
    _check_encoder_holds(net[0], state)
    assert net(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.slow
def test_res_unet_encoder_holds_weights_from_torch_hub_cache(saved_resnet, tmp_path, monkeypatch):
    path, state = saved_resnet
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = resnet18_imagenet_file()
    assert str(cached).startswith(str(tmp_path))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    _check_encoder_holds(build_res_unet(size=64, weights="imagenet")[0], state)


@pytest.mark.slow
def test_the_create_body_trap_is_really_untrained(saved_resnet):
    """create_body(resnet18(), pretrained=True) loads nothing: we must not do that."""
    from fastai.vision.learner import create_body
    from torchvision.models import resnet18

    _, state = saved_resnet
    body = create_body(resnet18(), n_in=1, pretrained=True, cut=-2)
    with pytest.raises(AssertionError):
        _check_encoder_holds(body, state)


def test_weight_file_errors_name_the_file(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_resnet18(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth"):
        load_resnet18(wrong)


def test_a_unet_block_can_drop_its_skip_connection():
    from colorlib.models.networks import PixUnet, UnetBlock

    torch.manual_seed(0)
    net = PixUnet(n_down=5, num_filters=8).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        with_skips = net(x)
        for block in net.modules():
            if isinstance(block, UnetBlock):
                block.skip = False
        without = net(x)
    assert without.shape == with_skips.shape and not torch.allclose(without, with_skips)
    inner = [m for m in net.modules() if isinstance(m, UnetBlock) and not m.outermost][0]
    out = inner(torch.randn(1, inner.model[1].in_channels, 16, 16))
    assert torch.count_nonzero(out[:, :inner.model[1].in_channels]) == 0  # zeros instead of the skip
