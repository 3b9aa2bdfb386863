"""The settings of one training run: :class:`TrainConfig` (how a stage optimises) and
:class:`RunConfig` (which stage, on which data, saved where).

``colorlib train`` builds a :class:`RunConfig` from its flags, and the notebooks' settings
cells build theirs from it; :func:`colorlib.training.runner.train_stage` runs it.
Taught in notebooks 03-05.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colorlib.data.sources import DataConfig
from colorlib.models.model_config import ModelConfig
from colorlib.models.stages import LAMBDA_L1, PIX2PIX_BETAS, PIX2PIX_LR, AdamSettings, get_stage


@dataclass
class TrainConfig:
    """How one stage optimises (stored in its checkpoint). The defaults follow the tutorial."""

    stage: str = "pretrain"
    epochs: int = 20
    lr_g: float | None = None  # None: the stage's (stages.STAGES: lr_g)
    lr_d: float = PIX2PIX_LR
    beta1: float = PIX2PIX_BETAS[0]
    beta2: float = PIX2PIX_BETAS[1]
    lambda_l1: float = LAMBDA_L1
    gan_mode: str = "vanilla"
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA (bf16 where native, else fp16); ignored on CPU
    # bf16 autocast on CPUs with native bf16 (AMX / AVX512-BF16): faster there
    # (benchmarks/RESULTS.md); off by default so CPU results stay fp32 and
    # machine-independent.
    cpu_amp: bool = False
    max_steps: int | None = None  # stop after this many steps in total (quick runs)
    save_every: int = 0  # also checkpoint every N steps (0: at epoch ends only)
    # classify stage only: Zhang et al.'s class rebalancing (False: plain cross-entropy, the
    # ablation that shows what rebalancing does)
    rebalance: bool = True

    def __post_init__(self):
        get_stage(self.stage)  # a clear error for an unknown stage

    @property
    def generator_lr(self) -> float:
        return self.lr_g if self.lr_g is not None else get_stage(self.stage).lr_g

    @property
    def generator_betas(self) -> tuple[float, float]:
        return get_stage(self.stage).betas_g or (self.beta1, self.beta2)

    def adam(self) -> AdamSettings:
        """Both optimisers' settings for this stage (the generator's may be the stage's own)."""
        return AdamSettings(lr_g=self.generator_lr, lr_d=self.lr_d, betas_g=self.generator_betas,
                            betas_d=(self.beta1, self.beta2))


@dataclass
class RunConfig:
    """One training run: what to optimise (``train``), on what (``data``), where it is saved.

    ``colorlib train`` builds one from its flags; each flag sets one field
    here, in ``train`` (:class:`TrainConfig`) or in ``data`` (:class:`DataConfig`).
    """

    train: TrainConfig
    data: DataConfig
    checkpoint_dir: str | Path
    init: str | Path | None = None  # the gan stage: the pretrain checkpoint to start from
    resume: bool = False  # continue <checkpoint_dir>/<stage>.pt if it exists
    overwrite: bool = False  # start again even though it exists
    device: str | None = None  # None: CUDA if available, else CPU
    weights: str | None = "imagenet"  # the ResNet18 encoder's starting weights
    num_filters: int = ModelConfig.num_filters  # pix2pix U-Net base width
    progress: bool = True

    @property
    def stage(self) -> str:
        return self.train.stage

    @property
    def checkpoint(self) -> Path:
        from colorlib.training.checkpoint import checkpoint_path  # torch: not for --help

        return checkpoint_path(self.checkpoint_dir, self.stage)

    def model_config(self) -> ModelConfig:
        stage = get_stage(self.stage)
        classes = 0
        if stage.classes:
            from colorlib.models.classify import class_centres

            classes = len(class_centres())
        return ModelConfig(arch=stage.arch, size=self.data.size, num_filters=self.num_filters,
                           classes=classes)
