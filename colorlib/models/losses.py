"""The pix2pix objective: an adversarial term plus lambda * L1.

The GAN term pushes outputs towards what real colour photos look like; the
L1 term keeps them close to the true colours of *this* photo. With lambda
= 100 the L1 term dominates early training, as in pix2pix.
Taught in notebook 03.
"""
from __future__ import annotations

import torch
from torch import nn

from colorlib.models.stages import GAN_MODES, LAMBDA_L1  # noqa: F401 (importable from here)


class GANLoss(nn.Module):
    """Turn a discriminator's patch scores into a loss, for D or for G.

    ``vanilla`` (pix2pix's choice): binary cross-entropy on logits, which is
    numerically safer than a sigmoid followed by BCE. D minimises
    -log D(real) - log(1 - D(fake)); G minimises -log D(fake), the
    *non-saturating* form, whose gradient is largest when D firmly rejects
    the fake, which is when G most needs it.

    ``lsgan`` (Mao et al., 2017): squared distance to the label (1 real,
    0 fake). The penalty keeps growing with distance, so even fakes that D
    already scores on the real side, but far from real pairs, keep a gradient.

    ``hinge`` (used by SAGAN, Zhang et al., 2019): D minimises
    relu(1 - s) on real pairs and relu(1 + s) on fakes, so a patch scored
    beyond the margin of 1 on the correct side stops pulling on D; G
    minimises -s, raising D's score of its colours. Because G's loss is not
    D's "real" loss, G's call passes ``for_discriminator=False``.

    Shown in notebook 03.
    """

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss {mode!r}; choose from {GAN_MODES}")
        self.mode = mode
        self.real_label, self.fake_label = real_label, fake_label
        self.loss = nn.BCEWithLogitsLoss() if mode == "vanilla" else nn.MSELoss()

    def forward(self, logits: torch.Tensor, target_is_real: bool,
                for_discriminator: bool = True) -> torch.Tensor:
        logits = logits.float()
        if self.mode == "hinge":
            if not for_discriminator:
                if not target_is_real:
                    raise ValueError("the generator's hinge loss only asks for 'real'")
                return -logits.mean()
            margin = 1.0 - logits if target_is_real else 1.0 + logits
            return torch.relu(margin).mean()
        label = self.real_label if target_is_real else self.fake_label
        return self.loss(logits, torch.full_like(logits, label))


def l1_loss(pred_ab: torch.Tensor, true_ab: torch.Tensor) -> torch.Tensor:
    """mean |pred - true| over all ab values, in float32 (also under mixed precision).

    The one L1 of colorlib: L1 pretraining follows it, the GAN stages weight
    it by lambda (:func:`l1_term`), validation reports it.
    """
    return torch.mean(torch.abs(pred_ab.float() - true_ab.float()))


def l1_term(pred_ab: torch.Tensor, true_ab: torch.Tensor, lam: float = LAMBDA_L1) -> torch.Tensor:
    """lambda * mean |pred - true| over all ab values: pix2pix's L1 term.

    Shown in notebook 03.
    """
    return lam * l1_loss(pred_ab, true_ab)
