"""The pix2pix objective: an adversarial term plus lambda * L1.

The GAN term pushes outputs towards what real colour photos look like; the
L1 term keeps them close to the true colours of *this* photo. With lambda
= 100 the L1 term dominates early training, as in pix2pix.
"""
from __future__ import annotations

import torch
from torch import nn

GAN_MODES = ("vanilla", "lsgan")
LAMBDA_L1 = 100.0


class GANLoss(nn.Module):
    """Compare a discriminator's patch logits with "real" or "fake" labels.

    ``vanilla`` is the original GAN's binary cross-entropy (on logits, which
    is numerically safer than sigmoid + BCE); ``lsgan`` is least squares,
    which gives non-vanishing gradients for samples far from the boundary.
    """

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss {mode!r}; choose from {GAN_MODES}")
        self.mode = mode
        self.real_label, self.fake_label = real_label, fake_label
        self.loss = nn.BCEWithLogitsLoss() if mode == "vanilla" else nn.MSELoss()

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        label = self.real_label if target_is_real else self.fake_label
        return self.loss(logits.float(), torch.full_like(logits, label, dtype=torch.float32))


def l1_term(pred_ab: torch.Tensor, true_ab: torch.Tensor, lam: float = LAMBDA_L1) -> torch.Tensor:
    """lambda * mean |pred - true| over all ab values."""
    return lam * torch.mean(torch.abs(pred_ab.float() - true_ab.float()))
