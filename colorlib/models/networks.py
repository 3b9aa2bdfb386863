"""The networks: pix2pix U-Net, 70x70 PatchGAN, and the ResNet18 U-Net.

Every model is described by a small :class:`~colorlib.models.model_config.ModelConfig`,
which is what a checkpoint stores next to the weights, so a checkpoint can rebuild its own
network and a mismatched one can be refused with a clear message.

Taught in notebook 03 (pix2pix U-Net, PatchGAN) and notebook 04 (ResNet18 U-Net).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

# Defined with the light settings so the command line reads them without importing torch;
# importable from here as ever.
from colorlib.models.model_config import ARCHS, ModelConfig, check_size  # noqa: F401


# --------------------------------------------------------------- pix2pix
class UnetBlock(nn.Module):
    """One level of the U-Net: down-sample, run ``submodule``, up-sample, concat.

    Built from the middle out: the innermost block has no submodule, each
    outer block wraps the previous one, and the outermost block maps to the
    output channels with tanh. Every non-outermost block concatenates its
    input to its output: that is the skip connection.

    Shown in notebook 03.
    """

    def __init__(self, nf: int, ni: int, submodule: nn.Module | None = None,
                 input_c: int | None = None, dropout: bool = False,
                 innermost: bool = False, outermost: bool = False):
        super().__init__()
        self.outermost = outermost
        # False: the decoder gets zeros instead of this level's input (an experiment in
        # notebook 03: what the skip connection carries). Shapes and weights stay the same.
        self.skip = True
        input_c = nf if input_c is None else input_c
        down = nn.Conv2d(input_c, ni, kernel_size=4, stride=2, padding=1, bias=False)
        up_in = ni if innermost else ni * 2
        up = nn.ConvTranspose2d(up_in, nf, kernel_size=4, stride=2, padding=1, bias=outermost)
        if outermost:
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, nn.BatchNorm2d(nf)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(ni), submodule,
                      nn.ReLU(True), up, nn.BatchNorm2d(nf)]
            if dropout:
                layers.append(nn.Dropout(0.5))  # pix2pix's noise z
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        skip = x if self.skip else torch.zeros_like(x)
        return torch.cat([skip, self.model(x)], 1)


class PixUnet(nn.Module):
    """The pix2pix generator: ``n_down`` halvings, 1 L channel in, 2 ab out.

    The innermost ``n_down - 4`` levels run at 8x the base width; all but the
    innermost of those carry dropout. The outer three levels widen 1x->2x->4x.

    Shown in notebook 03.
    """

    def __init__(self, input_c: int = 1, output_c: int = 2, n_down: int = 8,
                 num_filters: int = 64):
        super().__init__()
        if n_down < 5:
            raise ValueError(f"n_down must be >= 5 (image >= 32 px), got {n_down}")
        wide = num_filters * 8
        block = UnetBlock(wide, wide, innermost=True)
        for _ in range(n_down - 5):
            block = UnetBlock(wide, wide, submodule=block, dropout=True)
        out_filters = wide
        for _ in range(3):
            block = UnetBlock(out_filters // 2, out_filters, submodule=block)
            out_filters //= 2
        self.model = UnetBlock(output_c, out_filters, input_c=input_c, submodule=block,
                               outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """Conv-BatchNorm-LeakyReLU stack that scores each 70x70 patch as real/fake.

    First block without normalisation, last block without activation (the
    loss applies the sigmoid). At 256 px the output is a 30x30 grid of logits.

    Shown in notebook 03.
    """

    def __init__(self, input_c: int = 3, num_filters: int = 64, n_down: int = 3):
        super().__init__()
        layers = [self._block(input_c, num_filters, norm=False)]
        for i in range(n_down):
            stride = 1 if i == n_down - 1 else 2
            layers.append(self._block(num_filters * 2 ** i, num_filters * 2 ** (i + 1), s=stride))
        layers.append(self._block(num_filters * 2 ** n_down, 1, s=1, norm=False, act=False))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def _block(ni: int, nf: int, k: int = 4, s: int = 2, p: int = 1, norm: bool = True,
               act: bool = True) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(ni, nf, k, s, p, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(nf))
        if act:
            layers.append(nn.LeakyReLU(0.2, True))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def receptive_field(model: nn.Module) -> int:
    """Receptive field (pixels) of one output unit of a plain stack of convs.

    Walks the Conv2d layers in order: each adds ``(kernel - 1) * jump``, where
    ``jump`` is the product of the strides before it.

    Shown in notebook 03.
    """
    field, jump = 1, 1
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            field += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return field


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """pix2pix initialisation: conv weights ~ N(0, 0.02), BatchNorm ~ N(1, 0.02).

    Shown in notebook 03.
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


# ------------------------------------------------------------ ResNet18 U-Net
class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights could neither be downloaded nor found in the cache."""


def resnet18_imagenet_file() -> Path:
    """Where torchvision's weights API caches the ImageNet ResNet18 weights."""
    from torchvision.models import ResNet18_Weights

    url = ResNet18_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def load_resnet18(weights: str | os.PathLike | None = "imagenet") -> nn.Module:
    """A torchvision ResNet18 holding the requested weights.

    ``"imagenet"``: torchvision's weights API (downloads when online, else
    reads ``$TORCH_HOME/hub/checkpoints``). A path: a state_dict file saved
    with ``torch.save(model.state_dict(), path)``. ``None``: random init.

    Shown in notebook 04.
    """
    from torchvision.models import ResNet18_Weights, resnet18

    if weights is None or weights == "none":
        return resnet18(weights=None)
    if weights == "imagenet":
        try:
            return resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
        except Exception as err:  # offline: URLError, socket errors, ...
            raise PretrainedWeightsUnavailable(
                f"ImageNet ResNet18 weights could not be downloaded ({err.__class__.__name__}) "
                f"and are not cached at {resnet18_imagenet_file()}; put the file there, "
                "give a ResNet18 weights file (--weights PATH), or train from a random "
                "encoder (--weights none; expect duller colours)") from None
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ResNet18 weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch's text may advise unsafe loading
        from colorlib.system.atomic_files import unreadable_reason

        raise ValueError(f"{path}: not a ResNet18 weights file: "
                         f"{unreadable_reason(path, err)}") from None
    if isinstance(state, dict) and state.get("format") == "colorlib-checkpoint":
        raise ValueError(f"{path}: is a colorlib checkpoint (stage {state.get('stage')!r}), not "
                         "ResNet18 encoder weights; to start from its generator, use "
                         "--init (gan stage)")
    model = resnet18(weights=None)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        fits = len(set(state) & set(model.state_dict())) if isinstance(state, dict) else 0
        raise ValueError(f"{path}: does not hold ResNet18 weights ({fits} of the "
                         f"{len(model.state_dict())} tensors a ResNet18 has are there by name)") \
            from None
    return model


def available_encoder_weights(weights: str | os.PathLike | None = "imagenet",
                              log=print) -> str | os.PathLike:
    """``weights`` if they can be loaded, else ``"none"`` with a note saying why.

    Offline machines (and CI) have no ImageNet weights; the tutorial's code
    still runs there, with a randomly initialised encoder, and says so.
    """
    if weights is None or weights == "none":
        return "none"
    try:
        load_resnet18(weights)
        return weights
    except PretrainedWeightsUnavailable as err:
        log(f"note: {err}. Continuing with a randomly initialised encoder.")
        return "none"


def build_res_unet(size: int = 256, weights: str | os.PathLike | None = "imagenet",
                   n_in: int = 1, n_out: int = 2) -> nn.Module:
    """fastai DynamicUnet on a ResNet18 body taking one (L) channel.

    The ResNet is built with its weights *first* and then handed to
    ``create_body``. (``create_body(resnet18(), pretrained=True)`` gives an
    untrained body: ``pretrained`` only tells fastai how to adapt the first
    conv to ``n_in`` channels, it loads nothing.) With ``pretrained=True``
    fastai sums the RGB filters of the first conv into one L filter, which
    keeps what ImageNet taught about edges and textures.

    Shown in notebook 04.
    """
    import warnings

    with warnings.catch_warnings():  # fastai's import-time torch.jit deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        from fastai.layers import MergeLayer
        from fastai.vision.learner import create_body
        from fastai.vision.models.unet import DynamicUnet

    resnet = load_resnet18(weights)
    body = create_body(resnet, n_in=n_in, pretrained=weights not in (None, "none"), cut=-2)
    unet = DynamicUnet(body, n_out, (size, size))
    for layer in unet.modules():
        if isinstance(layer, MergeLayer):
            layer.register_forward_hook(_keep_channels_last)
    return unet


def _keep_channels_last(module: nn.Module, inputs: tuple,
                        output: torch.Tensor) -> torch.Tensor | None:
    """Give the U-Net's last merge the layout of its input (a forward hook).

    fastai's ``MergeLayer`` concatenates the decoder's 96 feature maps with
    the 1-channel input photo. ``torch.cat`` returns NCHW when its inputs'
    layouts disagree, and a 1-channel tensor counts as both, so in
    channels_last the full-resolution block after it converted layouts
    back and forth, forward and backward. Values are untouched.
    """
    x = inputs[0]
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return output.contiguous(memory_format=torch.channels_last)
    return None


# ------------------------------------------------------------------ factory
def build_generator(cfg: ModelConfig, weights: str | os.PathLike | None = None) -> nn.Module:
    """The generator ``cfg`` describes. ``weights`` only matters for resnet18_unet."""
    if cfg.arch == "pix2pix_unet":
        return init_weights(PixUnet(1, 2, cfg.n_down, cfg.num_filters))
    if cfg.classes:
        from colorlib.models.classify import ClassUnet, class_centres

        centres = class_centres()
        if len(centres) != cfg.classes:  # the checkpoint's own centres replace these
            centres = np.zeros((cfg.classes, 2), np.float32)
        return ClassUnet(build_res_unet(cfg.size, weights, n_out=cfg.classes), centres,
                         cfg.temperature)
    return build_res_unet(cfg.size, weights)


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    """The conditional PatchGAN: sees L and ab together (3 channels)."""
    return init_weights(PatchDiscriminator(3, cfg.disc_filters, cfg.disc_layers))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
