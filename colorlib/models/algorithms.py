"""Which algorithm trains a stage, decided in one place from the stage table.

A stage with a discriminator runs pix2pix, one whose generator scores colour classes runs
the classification algorithm, any other L1 pretraining (:mod:`colorlib.models.stages`).
"""
from __future__ import annotations

from torch import nn

from colorlib.models.base_model import BaseModel, Replication
from colorlib.models.classify import ClassifyTraining
from colorlib.models.losses import LAMBDA_L1
from colorlib.models.pix2pix import Pix2Pix
from colorlib.models.pretrain import L1Pretraining
from colorlib.models.stages import AdamSettings, get_stage
from colorlib.system.device import MixedPrecision


def algorithm_for(stage: str) -> type[BaseModel]:
    """The class that trains ``stage``: Pix2Pix, ClassifyTraining or L1Pretraining."""
    spec = get_stage(stage)
    if spec.adversarial:
        return Pix2Pix
    return ClassifyTraining if spec.classes else L1Pretraining


def build_model(stage: str, net_G: nn.Module, net_D: nn.Module | None = None, *,
                adam: AdamSettings = AdamSettings(), lambda_l1: float = LAMBDA_L1,
                gan_mode: str = "vanilla", amp: MixedPrecision | None = None,
                replication: Replication | None = None) -> BaseModel:
    """The algorithm of ``stage`` around its networks (``net_D`` only where it has one)."""
    algorithm = algorithm_for(stage)
    if algorithm is Pix2Pix:
        if net_D is None:
            raise ValueError(f"stage {stage!r} trains a discriminator; pass net_D")
        return Pix2Pix(net_G, net_D, adam=adam, lambda_l1=lambda_l1, gan_mode=gan_mode, amp=amp,
                       replication=replication)
    return algorithm(net_G, adam=adam, amp=amp, replication=replication)
