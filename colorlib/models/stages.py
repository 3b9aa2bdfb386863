"""The training stages of the series, in one table.

* ``baseline``: the pix2pix U-Net trained from scratch with GAN + 100*L1 (notebook 03);
* ``pretrain``: the ResNet18 U-Net trained with L1 alone (notebook 04);
* ``gan``: that pretrained generator fine-tuned with GAN + 100*L1 (notebook 05);
* ``classify``: the same ResNet18 U-Net predicting a distribution over a*b* classes
  (Zhang et al.'s colour as classification), the alternative to L1 regression that
  notebook 04 trains beside ``pretrain``.

Everything else (the CLI's ``--stage`` choices, the training loop, the demo,
the notebooks' "run this first" messages, checkpoint checks) reads this
table, so a stage is described in exactly one place.
"""
from __future__ import annotations

from dataclasses import dataclass

# The optimisation settings of the series, each written down once. pix2pix trains both
# networks with Adam at 2e-4 and beta1 = 0.5 and weighs L1 by lambda = 100 (Isola et al.);
# the tutorial pretrains the ResNet18 U-Net with lr 1e-4 and Adam's own default betas.
# TrainConfig, the algorithms and the stage table below read them from here.
PIX2PIX_LR = 2e-4
PIX2PIX_BETAS = (0.5, 0.999)
PRETRAIN_LR = 1e-4
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
LAMBDA_L1 = 100.0  # the weight of the L1 term next to the GAN term (pix2pix's)
GAN_MODES = ("vanilla", "lsgan", "hinge")  # the GAN losses (colorlib.models.losses.GANLoss)


@dataclass(frozen=True)
class AdamSettings:
    """The learning rates and betas of the generator's and the discriminator's Adam.

    The defaults are pix2pix's for both networks (:data:`PIX2PIX_LR`, :data:`PIX2PIX_BETAS`);
    a stage's own come from :meth:`colorlib.training.config.TrainConfig.adam`.
    """

    lr_g: float = PIX2PIX_LR
    lr_d: float = PIX2PIX_LR
    betas_g: tuple[float, float] = PIX2PIX_BETAS
    betas_d: tuple[float, float] = PIX2PIX_BETAS


@dataclass(frozen=True)
class Stage:
    """What one stage trains, and how."""

    name: str
    title: str  # for reports and figure titles
    arch: str  # the generator (see colorlib.models.networks.ARCHS)
    adversarial: bool  # True: GAN + lambda * L1 with a PatchGAN; False: L1 alone
    lr_g: float  # the generator's Adam learning rate (the tutorial's)
    # The generator's Adam betas; None: pix2pix's (TrainConfig.beta1, beta2), as the discriminator.
    betas_g: tuple[float, float] | None
    init_from: str | None  # the stage whose generator this one starts from
    notebook: str  # the notebook that teaches and trains it
    # True: the generator scores a*b* classes, trained with rebalanced cross-entropy
    # (colorlib.models.classify); False: it regresses ab (L1, or GAN + L1).
    classes: bool = False


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("baseline", "pix2pix baseline (GAN + L1)", "pix2pix_unet", adversarial=True,
          lr_g=PIX2PIX_LR, betas_g=None, init_from=None, notebook="03_pix2pix_baseline.ipynb"),
    # The tutorial pretrains with Adam's default betas and lr 1e-4.
    Stage("pretrain", "ResNet18 U-Net, L1 pretraining", "resnet18_unet", adversarial=False,
          lr_g=PRETRAIN_LR, betas_g=ADAM_BETAS, init_from=None,
          notebook="04_resnet_unet_pretraining.ipynb"),
    Stage("gan", "ResNet18 U-Net, GAN fine-tuned", "resnet18_unet", adversarial=True,
          lr_g=PIX2PIX_LR, betas_g=None, init_from="pretrain",
          notebook="05_adversarial_finetuning.ipynb"),
    # pretrain's optimiser, so that the loss is the one difference between the two.
    Stage("classify", "ResNet18 U-Net, colour classes (Zhang et al.)", "resnet18_unet",
          adversarial=False, lr_g=PRETRAIN_LR, betas_g=ADAM_BETAS, init_from=None,
          notebook="04_resnet_unet_pretraining.ipynb", classes=True),
)}
STAGE_NAMES = tuple(STAGES)  # in training order
# The series' main road, baseline -> pretrain -> gan; classify is notebook 04's side road.
MAIN_ROAD = tuple(name for name, stage in STAGES.items() if not stage.classes)


def final_stage(names) -> str:
    """The furthest stage of the main road among ``names`` (e.g. the trained checkpoints).

    Notebook 07 calls the model this picks "the final model": ``gan`` if it is
    there, else ``pretrain``, else ``baseline``; never ``classify``, which is
    a side road, not a further step. ValueError if none of them is in ``names``.
    """
    names = set(names)
    on_road = [name for name in MAIN_ROAD if name in names]
    if not on_road:
        raise ValueError(f"none of {sorted(names)} is a stage of the main road {MAIN_ROAD}")
    return on_road[-1]


def get_stage(name: str) -> Stage:
    """The stage called ``name``; a clear ValueError for anything else."""
    try:
        return STAGES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown stage {name!r}; choose from {STAGE_NAMES}") from None
