"""pix2pix for colorization: the conditional GAN of Isola et al., and nothing else.

:class:`Pix2Pix` holds the two networks, their optimisers and losses, and does one
optimisation step at a time. It follows ``Pix2PixModel`` of pytorch-CycleGAN-and-pix2pix
(Isola et al.'s own code) method by method, so it can be read next to the paper:

* :meth:`~Pix2Pix.forward`: the generator colours the photo, ``fake_ab = G(L)``;
* :meth:`~Pix2Pix.backward_D`: the discriminator learns to score real
  (L, ab) pairs as real and generated ones as fake;
* :meth:`~Pix2Pix.backward_G`: the generator learns to fool the (now fixed)
  discriminator while staying close to the true colours in L1;
* :meth:`~Pix2Pix.optimize_parameters`: one step of each, D first.

What it shares with the other algorithms (Adam, mixed precision, prediction, the state a
checkpoint stores) is :class:`colorlib.models.base_model.BaseModel`; L1 pretraining, which
has no discriminator, is :class:`colorlib.models.pretrain.L1Pretraining`. A minimal loop::

    model = Pix2Pix(build_generator(cfg), build_discriminator(cfg))
    for batch in loader:
        L, ab = prepare_batch(batch, "cpu")
        losses = model.train_step(L, ab)

The epochs, checkpoints and validation around the steps are
:class:`colorlib.training.loop.Trainer`'s. Taught in notebooks 03 and 05.
"""
from __future__ import annotations

import torch
from torch import nn

from colorlib.models.base_model import (BaseModel, NonFiniteLossError, Replication, load_optimizer,
                                        make_adam, set_requires_grad, unwrap)
from colorlib.models.losses import GANLoss, l1_term
from colorlib.models.stages import LAMBDA_L1, AdamSettings
from colorlib.system.device import MixedPrecision, same_layout

# Importable from here too: notebook 03 shows set_requires_grad next to optimize_parameters,
# and a NaN loss in a pix2pix step raises NonFiniteLossError.
__all__ = ["NonFiniteLossError", "Pix2Pix", "pair", "set_requires_grad"]


def pair(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The conditional discriminator's input: the photo's L next to (true or generated) ab."""
    return same_layout(torch.cat([L, ab], 1), like=ab)


class Pix2Pix(BaseModel):
    """Generator G: L -> ab and discriminator D: (L, ab) -> real/fake per 70x70 patch.

    ``adam``: both optimisers' learning rates and betas (:class:`AdamSettings`, pix2pix's by
    default); ``lambda_l1``: the weight of the L1 term; ``gan_mode``: the GAN loss
    (:data:`colorlib.models.losses.GAN_MODES`); ``amp``, ``replication``: see
    :class:`~colorlib.models.base_model.BaseModel`.
    """

    loss_names = ("loss_D_fake", "loss_D_real", "loss_D", "loss_G_GAN", "loss_G_L1", "loss_G")

    def __init__(self, net_G: nn.Module, net_D: nn.Module, *, adam: AdamSettings = AdamSettings(),
                 lambda_l1: float = LAMBDA_L1, gan_mode: str = "vanilla",
                 amp: MixedPrecision | None = None, replication: Replication | None = None):
        super().__init__(net_G, adam=adam, amp=amp, replication=replication)
        self.net_D = self._replicated(net_D)
        self.opt_D = make_adam(net_D.parameters(), adam.lr_d, adam.betas_d)
        self.gan_loss = GANLoss(gan_mode)
        self.lambda_l1 = lambda_l1

    # ------------------------------------------------------------ one step
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

    # ------------------------------------------------------------ state I/O
    @property
    def discriminator(self) -> nn.Module:
        return unwrap(self.net_D)

    def state_dict(self) -> dict:
        """Both networks' weights, both optimisers' moments and the fp16 loss scale."""
        return {**super().state_dict(), "discriminator": self.discriminator.state_dict(),
                "opt_D": self.opt_D.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.discriminator.load_state_dict(state["discriminator"])
        load_optimizer(self.opt_D, state["opt_D"])
