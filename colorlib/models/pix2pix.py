"""The training algorithm: pix2pix for colorization, and L1 pretraining.

:class:`Pix2Pix` holds the two networks, their optimisers and losses, and
does one optimisation step at a time. It follows ``Pix2PixModel`` of
pytorch-CycleGAN-and-pix2pix (Isola et al.'s own code) method by method,
so it can be read next to the paper:

* :meth:`~Pix2Pix.forward`: the generator colours the photo, ``fake_ab = G(L)``;
* :meth:`~Pix2Pix.backward_D`: the discriminator learns to score real
  (L, ab) pairs as real and generated ones as fake;
* :meth:`~Pix2Pix.backward_G`: the generator learns to fool the (now fixed)
  discriminator while staying close to the true colours in L1;
* :meth:`~Pix2Pix.optimize_parameters`: one step of each, D first.

:meth:`~Pix2Pix.gan_step` is one such step on a batch, :meth:`~Pix2Pix.l1_step`
the L1-only step of pretraining (no discriminator). A minimal training loop::

    model = Pix2Pix(build_generator(cfg), build_discriminator(cfg))
    for batch in loader:
        L, ab = prepare_batch(batch, "cpu")
        losses = model.gan_step(L, ab)

Where the networks run (device, mixed precision, memory layout) is decided
outside, by :mod:`colorlib.system.device`; the epochs, checkpoints and validation
around the steps are :class:`colorlib.training.loop.Trainer`'s. Taught in notebook 03
(GAN step), 04 (L1 step) and 05 (fine-tuning).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from colorlib.models.losses import LAMBDA_L1, GANLoss, l1_loss, l1_term
from colorlib.models.stages import PIX2PIX_BETAS, PIX2PIX_LR
from colorlib.system.device import MixedPrecision, same_layout


@dataclass(frozen=True)
class AdamSettings:
    """The learning rates and betas of the generator's and the discriminator's Adam.

    The defaults are pix2pix's for both networks (:data:`colorlib.models.stages.PIX2PIX_LR`,
    :data:`~colorlib.models.stages.PIX2PIX_BETAS`); a stage's own come from
    :meth:`colorlib.training.config.TrainConfig.adam`.
    """

    lr_g: float = PIX2PIX_LR
    lr_d: float = PIX2PIX_LR
    betas_g: tuple[float, float] = PIX2PIX_BETAS
    betas_d: tuple[float, float] = PIX2PIX_BETAS


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before the bad update."""


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused (one kernel for all tensors) update where this PyTorch has it.

    The fused update computes the same formula as the per-tensor loop,
    quicker for the ResNet18 U-Net's 31M parameters on a CPU
    (``benchmarks/RESULTS.md``, "Other measurements").
    """
    params = list(params)
    if params and _fused_adam_runs(params[0].device):
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas)


_FUSED_ADAM: dict[str, bool] = {}


def _fused_adam_runs(device: torch.device) -> bool:
    """Whether a fused Adam step runs on ``device`` here (tried once per device type).

    PyTorch 2.3 accepts ``fused=True`` for CPU tensors and only fails at the
    first step (its fused kernel exists on CUDA only; the CPU's came in 2.4),
    so constructing the optimiser proves nothing: one step on a scratch
    tensor does.
    """
    if device.type not in _FUSED_ADAM:
        try:
            probe = torch.zeros(1, device=device, requires_grad=True)
            opt = torch.optim.Adam([probe], fused=True)
            probe.grad = torch.ones_like(probe)
            opt.step()
            _FUSED_ADAM[device.type] = True
        except (RuntimeError, TypeError, ValueError, NotImplementedError):
            _FUSED_ADAM[device.type] = False
    return _FUSED_ADAM[device.type]


def _load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """Restore an optimiser's moments, keeping this machine's choice of the fused kernel.

    A saved state records ``fused=True`` where it was made; restored as is on
    a machine without a fused kernel for the device (PyTorch 2.3 on a CPU), the
    first step would fail.
    """
    fused = [group.get("fused") for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, flag in zip(opt.param_groups, fused):
        group["fused"] = flag


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every weight of ``net``."""
    for p in net.parameters():
        p.requires_grad_(flag)


def pair(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The conditional discriminator's input: the photo's L next to (true or generated) ab."""
    return same_layout(torch.cat([L, ab], 1), like=ab)


def unwrap(net: nn.Module | None) -> nn.Module | None:
    """The network itself, also when a data-parallel wrapper holds it (``.module``)."""
    return getattr(net, "module", net)


def check_finite(name: str, loss: torch.Tensor) -> None:
    """Stop before an update that would spoil the weights with NaN or infinity."""
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"{name} is {loss.item()}")


class Pix2Pix:
    """Generator G: L -> ab; with a discriminator D: (L, ab) -> real/fake per 70x70 patch.

    ``net_D=None`` gives the L1-only model of pretraining. ``adam``: the
    optimisers' learning rates and betas (:class:`AdamSettings`, pix2pix's by
    default); ``amp`` switches on
    mixed precision (see :class:`colorlib.system.device.MixedPrecision`; default fp32).
    """

    def __init__(self, net_G: nn.Module, net_D: nn.Module | None = None, *,
                 adam: AdamSettings = AdamSettings(), lambda_l1: float = LAMBDA_L1,
                 gan_mode: str = "vanilla", amp: MixedPrecision | None = None):
        self.net_G, self.net_D = net_G, net_D
        self.opt_G = make_adam(net_G.parameters(), adam.lr_g, adam.betas_g)
        self.opt_D = make_adam(net_D.parameters(), adam.lr_d, adam.betas_d) \
            if net_D is not None else None
        self.gan_loss = GANLoss(gan_mode)
        self.lambda_l1 = lambda_l1
        self.amp = amp if amp is not None else MixedPrecision()
        # Stops before an update with a NaN/inf loss; data-parallel runs agree on it over
        # all ranks (colorlib.training.distributed.finite_check), so no rank waits for another.
        self.check_finite = check_finite

    # ------------------------------------------------------------ one step
    def set_input(self, L: torch.Tensor, ab: torch.Tensor) -> None:
        self.L, self.ab = L, ab

    def forward(self) -> None:
        """The generator's colours for the photo: fake_ab = G(L)."""
        with self.amp.autocast():
            self.fake_ab = self.net_G(self.L)

    def backward_D(self) -> None:
        """Discriminator: real (L, ab) pairs -> 1, generated pairs -> 0.

        The generated colours are detached, so this update leaves G alone.
        """
        with self.amp.autocast():
            pred_fake = self.net_D(pair(self.L, self.fake_ab.detach()))
            self.loss_D_fake = self.gan_loss(pred_fake, False)
            pred_real = self.net_D(pair(self.L, self.ab))
            self.loss_D_real = self.gan_loss(pred_real, True)
            self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
        self.check_finite("discriminator loss", self.loss_D)
        self.amp.backward(self.loss_D)  # loss_D.backward() (with fp16 loss scaling when on)

    def backward_G(self) -> None:
        """Generator: make D call the generated pair real, and stay close to the truth in L1."""
        with self.amp.autocast():
            pred_fake = self.net_D(pair(self.L, self.fake_ab))
            self.loss_G_GAN = self.gan_loss(pred_fake, True, for_discriminator=False)
            self.loss_G_L1 = l1_term(self.fake_ab, self.ab, self.lambda_l1)
            self.loss_G = self.loss_G_GAN + self.loss_G_L1
        self.check_finite("generator loss", self.loss_G)
        self.amp.backward(self.loss_G)

    def optimize_parameters(self) -> None:
        """One pix2pix iteration: update D, then G (against the updated, frozen D)."""
        self.forward()
        set_requires_grad(self.net_D, True)
        self.opt_D.zero_grad(set_to_none=True)
        self.backward_D()
        self.amp.step(self.opt_D)
        set_requires_grad(self.net_D, False)  # D gets no gradients while G learns
        self.opt_G.zero_grad(set_to_none=True)
        self.backward_G()
        self.amp.step(self.opt_G)
        self.amp.update()

    def gan_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """One pix2pix step on a batch (normalised L and ab); returns its losses."""
        self.set_input(L, ab)
        self.optimize_parameters()
        return {name: getattr(self, name).item() for name in
                ("loss_D_fake", "loss_D_real", "loss_D", "loss_G_GAN", "loss_G_L1", "loss_G")}

    def l1_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """Pretraining: predict ab from L and follow the plain L1 error (no discriminator)."""
        self.set_input(L, ab)
        self.forward()
        with self.amp.autocast():
            self.loss_G_L1 = l1_loss(self.fake_ab, self.ab)
        self.check_finite("L1 loss", self.loss_G_L1)
        self.opt_G.zero_grad(set_to_none=True)
        self.amp.backward(self.loss_G_L1)
        self.amp.step(self.opt_G)
        self.amp.update()
        return {"loss_G_L1": self.loss_G_L1.item()}

    def class_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """The classify stage: score a*b* classes and follow the rebalanced cross-entropy.

        The generator is a :class:`colorlib.models.classify.ClassUnet`; its class
        centres and weights travel with it (buffers), so nothing else is needed.
        """
        from colorlib.models.classify import rebalanced_cross_entropy

        self.set_input(L, ab)
        with self.amp.autocast():
            self.logits = self.net_G(self.L, logits=True)  # through a DDP wrapper, if any
        net = self.generator
        self.loss_G_class = rebalanced_cross_entropy(self.logits, self.ab, net.centres,
                                                     net.class_weights)
        self.check_finite("classification loss", self.loss_G_class)
        self.opt_G.zero_grad(set_to_none=True)
        self.amp.backward(self.loss_G_class)
        self.amp.step(self.opt_G)
        self.amp.update()
        return {"loss_G_class": self.loss_G_class.item()}

    def train_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """The stage's step: :meth:`gan_step` with a discriminator, :meth:`class_step` for a
        generator of colour classes, else :meth:`l1_step`."""
        self.net_G.train()
        if self.net_D is not None:
            return self.gan_step(L, ab)
        if getattr(self.generator, "classes", 0):
            return self.class_step(L, ab)
        return self.l1_step(L, ab)

    @torch.no_grad()
    def predict(self, L: torch.Tensor) -> torch.Tensor:
        """ab for a batch of normalised L, in eval mode (BatchNorm running stats), as float32."""
        net = self.generator
        net.eval()
        with self.amp.autocast():
            out = net(L.to(next(net.parameters()).device)).float()
        net.train()
        return out

    # ------------------------------------------------------------ state I/O
    @property
    def generator(self) -> nn.Module:
        """G itself (not a data-parallel wrapper): what checkpoints store."""
        return unwrap(self.net_G)

    @property
    def discriminator(self) -> nn.Module | None:
        return unwrap(self.net_D)

    def state_dict(self) -> dict:
        """Weights, optimiser moments and the fp16 loss scale (checkpoint keys)."""
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict() if self.net_D is not None else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict() if self.opt_D is not None else None,
            "scaler": self.amp.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        if self.net_D is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            _load_optimizer(self.opt_D, state["opt_D"])
        _load_optimizer(self.opt_G, state["opt_G"])
        self.amp.load_state_dict(state.get("scaler") or {})
