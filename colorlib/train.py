"""The training loop around :class:`colorlib.pix2pix.Pix2Pix`, with exact resume.

Three layers, each in its own place:

* the **algorithm** (:mod:`colorlib.pix2pix`): networks, optimisers, losses
  and one optimisation step (``gan_step``, ``l1_step``);
* the **device policy** (:mod:`colorlib.device`): device, mixed precision,
  gradient scaler, memory layout;
* the **loop** (here): :class:`Trainer` runs epochs of steps, validates,
  saves checkpoints and calls :class:`Callback` hooks; where it stands is one
  :class:`LoopState`. :func:`train_stage` is the one-call entry point (the
  CLI and the notebooks use it) for a :class:`RunConfig`.

:meth:`Trainer.state_dict` is everything needed to continue a run
bit-for-bit on the CPU, and :meth:`Trainer.fit` saves it atomically at every
epoch end (and every ``save_every`` steps), so a lost Colab session costs at
most the steps since the last save. On a GPU the same state comes back
(weights, optimiser moments, the fp16 loss scale, the CPU and CUDA random
states), but cuDNN picks kernels whose floating-point sums have no fixed
order, so a resumed GPU run matches an uninterrupted one to rounding, not
bit for bit (tests/test_gpu_paths.py). Taught in notebooks 03-05.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

import torch

from . import __version__
from . import distributed
from .checkpoint import (CheckpointError, checkpoint_path, describe_misfit, load_checkpoint,
                         refuse_resume, restore_rng_state, rng_state, save_checkpoint)
from .data import (DataConfig, ColorizationDataset, drop_unreadable, make_loader, prepare_batch,
                   resolve_source, steps_per_epoch, warn_if_mostly_grey)
from .device import DevicePolicy, resolve_device
from .losses import LAMBDA_L1, l1_loss
from .networks import ModelConfig, build_discriminator, build_generator
from .pix2pix import AdamSettings, NonFiniteLossError, Pix2Pix
from .runs import RunLock, StepGuard, TrainingInterrupted, check_resume, run_record
from .stages import PIX2PIX_BETAS, PIX2PIX_LR, get_stage

__all__ = ["Callback", "EveryEpoch", "LoopState", "NonFiniteLossError", "RunConfig", "StageResult",
           "TrainConfig", "Trainer", "train_stage"]


@dataclass
class TrainConfig:
    """Optimisation settings of one stage (stored in its checkpoint). Defaults follow the tutorial."""

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
class LoopState:
    """Where a run stands; with the weights and the random state, all a resume needs."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches done in the current (unfinished) epoch
    step: int = 0  # optimisation steps in total
    history: list[dict] = field(default_factory=list)  # one record of losses per step
    val_history: list[dict] = field(default_factory=list)  # one record per epoch
    train_seconds: float = 0.0


class Callback:
    """Hooks into :meth:`Trainer.fit`. Override the ones you need; each gets the trainer."""

    def on_step_end(self, trainer: "Trainer", losses: dict[str, float]) -> None:
        """After each optimisation step (counted in ``trainer.step``, saved if a save was due)."""

    def on_epoch_end(self, trainer: "Trainer") -> None:
        """After each full epoch, once validation ran and the checkpoint is saved."""

    def should_stop(self, trainer: "Trainer") -> bool:
        """True ends training after the current step (which is then saved)."""
        return False


class EveryEpoch(Callback):
    """A callback that calls ``fn(trainer)`` at the end of every epoch: ``EveryEpoch(report)``."""

    def __init__(self, fn: Callable[["Trainer"], None]):
        self.fn = fn

    def on_epoch_end(self, trainer: "Trainer") -> None:
        self.fn(trainer)


# The old name, kept importable because notebook 03 imports it.
every_epoch = EveryEpoch


def init_checkpoint(init: str | Path, model_cfg: ModelConfig) -> dict:
    """The checkpoint ``--init`` names, if its generator is one this run can start from.

    Starting points are generators that predict ab with ``model_cfg``'s
    architecture: pretrain's (or gan's, or an export of either). A classify
    checkpoint holds the same U-Net with a head that scores colour classes, so
    its weights would fail to load with a page of tensor names; it, and any
    other generator, is refused in one line naming the file and its stage.
    """
    path = Path(init)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"--init: {err}") from None
    model, stage = ckpt["model"], ckpt.get("stage") or "unknown"
    if model["arch"] != model_cfg.arch:
        what = f"a {model['arch']} generator, not a {model_cfg.arch}"
    elif model.get("classes", 0) != model_cfg.classes:
        what = (f"its generator scores {model.get('classes')} a*b* colour classes instead of "
                "predicting ab")
    else:
        return ckpt
    raise CheckpointError(f"--init: {path} is a '{stage}' checkpoint ({what}); --init needs a "
                          "pretrain checkpoint (e.g. <checkpoint-dir>/pretrain.pt, or its "
                          "export)")


def _load_init(net_G: torch.nn.Module, init: str | Path, model_cfg: ModelConfig) -> None:
    ckpt = init_checkpoint(init, model_cfg)
    try:
        net_G.load_state_dict(ckpt["generator"])
    except RuntimeError:  # e.g. a checkpoint of another size: say how, in one line
        raise CheckpointError(
            f"--init: {init}: its generator ('{ckpt.get('stage')}' checkpoint, "
            f"{ckpt['model'].get('size')} px) does not fit this run's {model_cfg.arch} of "
            f"{model_cfg.size} px ({describe_misfit(net_G.state_dict(), ckpt['generator'])})"
        ) from None


class Trainer:
    """The loop: epochs of steps of a :class:`Pix2Pix`, validation, checkpoints, callbacks.

    Build one with :meth:`Trainer.build` (networks for a stage) or from a
    model you made yourself. Its progress is ``trainer.state`` (also readable
    as ``trainer.step``, ``trainer.epoch``, ``trainer.history``, ...).
    """

    def __init__(self, model: Pix2Pix, policy: DevicePolicy, cfg: TrainConfig,
                 model_cfg: ModelConfig, started_from: str = "none"):
        self.model, self.policy, self.cfg, self.model_cfg = model, policy, cfg, model_cfg
        # What the generator's weights started from, in words: "imagenet", a weights file,
        # "none" (random), or "init from pretrain.pt". Checkpoints store it as "weights".
        self.started_from = started_from
        self.state = LoopState()
        self.dist = distributed.DistEnv()
        self.run_info: dict = {}  # the data settings a resume must repeat (runs.run_record)
        self._saved_step: int | None = None  # the step of the last checkpoint written or loaded

    @classmethod
    def build(cls, model_cfg: ModelConfig, cfg: TrainConfig,
              device: str | torch.device | None = None, weights: str | None = "imagenet",
              init: str | Path | None = None) -> "Trainer":
        """Fresh networks and optimisers for ``cfg.stage`` on ``device``.

        ``weights``: the ResNet18 encoder's ("imagenet", a file, or None);
        ``init``: a checkpoint whose generator to start from (the gan stage
        starts from pretrain's). Uses the global torch random state; seeding
        it is the caller's business (:func:`train_stage` does).
        """
        stage = get_stage(cfg.stage)
        if model_cfg.arch != stage.arch:
            raise ValueError(f"stage {cfg.stage!r} trains a {stage.arch}, not a {model_cfg.arch}")
        policy = DevicePolicy.for_training(device, model_cfg.arch, cfg.amp, cfg.cpu_amp)
        net_G = build_generator(model_cfg, weights if init is None else None)
        described = "none" if weights is None else str(weights)
        if init is not None:
            _load_init(net_G, init, model_cfg)
            described = f"init from {Path(init).name}"
        net_D = build_discriminator(model_cfg) if stage.adversarial else None
        model = Pix2Pix(policy.place(net_G), policy.place(net_D), adam=cfg.adam(),
                        lambda_l1=cfg.lambda_l1, gan_mode=cfg.gan_mode,
                        amp=policy.mixed_precision())
        return cls(model, policy, cfg, model_cfg, described)

    # Short names for what notebooks and reports read most.
    step = property(lambda self: self.state.step)
    epoch = property(lambda self: self.state.epoch)
    history = property(lambda self: self.state.history)
    val_history = property(lambda self: self.state.val_history)
    train_seconds = property(lambda self: self.state.train_seconds)
    device = property(lambda self: self.policy.device)
    net_G = property(lambda self: self.model.generator)
    net_D = property(lambda self: self.model.discriminator)

    def predict(self, L: torch.Tensor) -> torch.Tensor:
        """ab for a batch of normalised L, in eval mode (see :meth:`Pix2Pix.predict`)."""
        return self.model.predict(L)

    # ----------------------------------------------------------------- steps
    def train_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """One step of the stage on a prepared batch; the losses averaged over ranks."""
        L, ab = self.policy.layout(L), self.policy.layout(ab)
        try:
            losses = self.model.train_step(L, ab)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(
                f"stage '{self.cfg.stage}', step {self.state.step + 1}: {err}; training stopped "
                "before this update, the last saved checkpoint is kept") from None
        return distributed.mean_over_ranks(losses, self.dist, self.policy.device)

    def distribute(self, env: distributed.DistEnv) -> None:
        """Train as one rank of a data-parallel run (after :func:`distributed.setup`)."""
        self.dist = env
        if env.enabled:
            distributed.wrap_model(self.model, self.policy.device, env)

    # ------------------------------------------------------------ state I/O
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly (weights_only-safe; see checkpoint.py)."""
        return {
            "stage": self.cfg.stage, "model": self.model_cfg.to_dict(), "train": asdict(self.cfg),
            "colorlib_version": __version__, "weights": self.started_from,
            "amp_dtype": (str(self.policy.amp_dtype).removeprefix("torch.")
                          if self.policy.amp_dtype is not None else None),
            **self.model.state_dict(),
            **{f.name: getattr(self.state, f.name) for f in fields(LoopState)},
            "rng": rng_state(),
            **({"run": self.run_info} if self.run_info else {}),
        }

    def load_state_dict(self, ckpt: dict, source: str | Path | None = None) -> None:
        """Restore a :meth:`state_dict`; ``source`` (the file) names it in errors."""
        where = f"{source}: " if source is not None else ""
        refuse_resume(ckpt, source or "checkpoint")  # a weights-only export cannot continue
        ours = self.model_cfg.to_dict()
        if ckpt["model"] != ours:
            diff = ", ".join(f"{k}={ckpt['model'].get(k)!r} (this run: {v!r})"
                             for k, v in ours.items() if ckpt["model"].get(k) != v)
            raise CheckpointError(f"{where}checkpoint was trained with other model settings: "
                                  f"{diff}; use the same settings, or start afresh with another "
                                  "--checkpoint-dir")
        try:
            self.model.load_state_dict(ckpt)
            self.state = LoopState(ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"],
                                   list(ckpt["history"]), list(ckpt["val_history"]),
                                   ckpt.get("train_seconds", 0.0))
            self.started_from = ckpt.get("weights", self.started_from)
            self.run_info = dict(ckpt.get("run", {}))
            self._saved_step = self.state.step
            restore_rng_state(ckpt["rng"])
        except (KeyError, RuntimeError, ValueError) as err:
            reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else repr(err)
            raise CheckpointError(f"{where}checkpoint does not fit this model ({reason})") from None

    def save(self, path: str | Path) -> Path:
        self._check_finite_weights()  # on every rank: they hold equal weights, so all stop alike
        if not self.dist.is_main:  # data-parallel: rank 0 alone writes (weights are equal)
            return Path(path)
        saved = save_checkpoint(self.state_dict(), path)
        self._saved_step = self.state.step
        return saved

    def _check_finite_weights(self) -> None:
        """Never overwrite a good checkpoint with weights a bad update has spoiled."""
        for name, net in (("generator", self.net_G), ("discriminator", self.net_D)):
            if net is not None and not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                raise NonFiniteLossError(
                    f"stage '{self.cfg.stage}', step {self.state.step}: the {name}'s weights are "
                    "no longer finite; training stopped, the last saved checkpoint is kept")

    def resume(self, path: str | Path) -> None:
        self.load_state_dict(load_checkpoint(path, arch=self.model_cfg.arch, stage=self.cfg.stage),
                             source=path)

    # ------------------------------------------------------------------ loop
    def _augmentation_generator(self) -> torch.Generator:
        """The random generator of this step's augmentation (the flip coins): it depends only on
        (seed, step), so a run is reproducible and a resume exact."""
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.state.step)

    def _done(self, callbacks: Iterable[Callback]) -> bool:
        budget_spent = self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps
        return budget_spent or any(cb.should_stop(self) for cb in callbacks)

    def fit(self, loader, checkpoint: str | Path | None = None, val_batch: dict | None = None,
            callbacks: Iterable[Callback] = (), progress: bool = True, on_error: str = "skip",
            val_image_dir: str | Path | None = None, val_every: int = 1) -> "Trainer":
        """Train until ``cfg.epochs`` epochs (or ``cfg.max_steps`` steps) are done.

        Continues from ``self.state``, so calling it after :meth:`resume` picks
        up mid-epoch where the checkpoint left off. At each epoch end: validate
        on ``val_batch``, save validation images every ``val_every`` epochs,
        save ``checkpoint``, then call the callbacks.

        Ctrl-C (Colab's stop button) or SIGTERM (a scheduler, Kaggle, ``kill``)
        lets the step in progress finish, saves a checkpoint there that resumes
        exactly, and raises :class:`~colorlib.runs.TrainingInterrupted` saying
        so. SIGKILL cannot be caught: it costs the steps since the last save
        (epoch ends and every ``save_every`` steps). Data-parallel,
        a Ctrl-C on any rank is held until the step ends; then all ranks learn
        of it together (:meth:`_stop_point`) and stop after that same step, so
        none is left waiting for the others in a collective. (``torchrun``
        passes one Ctrl-C on to each worker and kills them 30 s later; the
        checkpoint is written atomically, so a kill mid-save keeps the last one.)
        """
        guard = StepGuard()
        first_step = self.state.step
        # Data-parallel, a Ctrl-C is never acted on mid-way: only at the agreed stop points.
        held = guard.shielded(reraise=False) if self.dist.enabled else contextlib.nullcontext()
        with guard:
            try:
                with held:
                    self._run_loop(guard, loader, checkpoint, val_batch, list(callbacks),
                                   progress, on_error, val_image_dir, val_every)
            except KeyboardInterrupt:
                raise self._interrupted(guard, checkpoint, first_step) from None
        return self

    def _stop_point(self, guard: StepGuard) -> None:
        """The end of a step: data-parallel, stop every rank here if any had a Ctrl-C."""
        if self.dist.enabled and distributed.any_rank(self.dist, self.policy.device,
                                                      guard.pending):
            raise KeyboardInterrupt

    def _run_loop(self, guard: StepGuard, loader, checkpoint, val_batch, callbacks: list,
                  progress: bool, on_error: str, val_image_dir, val_every: int) -> None:
        """The loop of :meth:`fit`; each step (with its save) is shielded from Ctrl-C by ``guard``."""
        from tqdm.auto import tqdm

        cfg, st = self.cfg, self.state
        epoch_steps = steps_per_epoch(loader)
        while st.epoch < cfg.epochs and not self._done(callbacks):
            loader.sampler.set_epoch(st.epoch, skip=st.batch_in_epoch * loader.batch_size)
            bar = tqdm(total=epoch_steps, initial=st.batch_in_epoch,
                       disable=not progress or not self.dist.is_main,
                       desc=self._progress_label(), leave=False)
            start = time.perf_counter()
            first_batch, steps_before = st.batch_in_epoch, st.step
            for batch in loader:
                with guard.shielded():  # a Ctrl-C now waits for this step (and its save)
                    prepared = prepare_batch(batch, self.policy.device, augment=True,
                                             generator=self._augmentation_generator(), on_error=on_error,
                                             rank=self.dist.rank, world=self.dist.world)
                    if self.dist.enabled:  # a step skipped on one rank alone would hang the others
                        distributed.stop_if_any(self.dist, self.policy.device, prepared is None,
                                                self._unreadable_share)
                    if prepared is not None:
                        losses = self.train_step(*prepared)
                        st.step += 1
                        st.history.append({"step": st.step, "epoch": st.epoch, **losses})
                        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k in
                                         ("loss_G_L1", "loss_G_GAN", "loss_D",
                                          "loss_G_class")})
                    st.batch_in_epoch += 1
                    bar.update(1)
                    done = self._done(callbacks)
                    if done or (cfg.save_every and st.step % cfg.save_every == 0):
                        st.train_seconds += time.perf_counter() - start
                        start = time.perf_counter()
                        if checkpoint is not None:
                            self.save(checkpoint)
                    if prepared is not None:
                        for cb in callbacks:
                            cb.on_step_end(self, losses)
                    self._stop_point(guard)
                if done:
                    break
            bar.close()
            st.train_seconds += time.perf_counter() - start
            if first_batch == 0 and st.batch_in_epoch > 0 and st.step == steps_before:
                raise ValueError(f"stage '{cfg.stage}': no training image could be read (every "
                                 f"batch of epoch {st.epoch + 1} was empty); see the messages "
                                 "above")
            if st.batch_in_epoch >= epoch_steps:
                with guard.shielded():
                    st.epoch, st.batch_in_epoch = st.epoch + 1, 0
                    if val_batch is not None:
                        self.validate(val_batch)
                        if (val_image_dir is not None and st.epoch % val_every == 0
                                and self.dist.is_main):
                            self.save_val_images(val_batch, val_image_dir)
                    if checkpoint is not None:
                        self.save(checkpoint)
                    for cb in callbacks:
                        cb.on_epoch_end(self)
                    self._stop_point(guard)

    def _interrupted(self, guard: StepGuard, checkpoint, first_step: int) -> TrainingInterrupted:
        """Ctrl-C: save where the loop stands (a step boundary) unless nothing is new or a second
        Ctrl-C cut a step short; say which."""
        st = self.state
        saved = False
        if checkpoint is not None and not guard.forced and st.step > first_step \
                and self._saved_step != st.step:
            with guard.shielded(reraise=False):
                self.save(checkpoint)
            saved = True
        elif checkpoint is not None and self._saved_step == st.step and st.step > first_step:
            saved = True  # the step in progress had just been saved
        return TrainingInterrupted(checkpoint, st.step, st.epoch, st.batch_in_epoch, saved,
                                   self._saved_step, guard.forced, guard.signal or "SIGINT")

    def _unreadable_share(self, ranks: list[int]) -> ValueError:
        st = self.state
        return ValueError(
            f"stage '{self.cfg.stage}', epoch {st.epoch + 1}, batch {st.batch_in_epoch + 1}: no "
            f"image of rank {', '.join(map(str, ranks))}'s share could be read (named above); "
            "a data-parallel step cannot be skipped on one rank alone, so every rank stopped, "
            "the last saved checkpoint is kept")

    def _progress_label(self) -> str:
        if self.cfg.max_steps is not None:
            return f"{self.cfg.stage} epoch {self.state.epoch + 1} (step budget {self.cfg.max_steps})"
        return f"{self.cfg.stage} epoch {self.state.epoch + 1}/{self.cfg.epochs}"

    def validate(self, val_batch: dict) -> float:
        """Mean |ab error| on a fixed validation batch, recorded per epoch."""
        prepared = prepare_batch(val_batch, self.policy.device)
        if prepared is None:  # every validation image was unreadable (already reported)
            return float("nan")
        L, ab = prepared
        loss = l1_loss(self.predict(L), ab).item()
        # train_seconds lets a report plot validation L1 against training time
        self.state.val_history.append({"epoch": self.state.epoch, "step": self.state.step,
                                       "train_seconds": round(self.state.train_seconds, 2),
                                       "val_l1": loss})
        return loss

    def save_val_images(self, val_batch: dict, folder: str | Path) -> Path:
        """Save input / prediction / truth for the fixed validation batch."""
        from .figures import plot_colorization_grid, save_figure

        L, ab = prepare_batch(val_batch, self.policy.device)
        fig = plot_colorization_grid(L, self.predict(L), ab)
        fig.suptitle(f"{self.cfg.stage}: epoch {self.state.epoch}, step {self.state.step}")
        return save_figure(fig, Path(folder) / f"{self.cfg.stage}_epoch{self.state.epoch:04d}.png",
                           legacy_ok=True)  # val_images/ is colorlib's own folder


# ------------------------------------------------------------ one-call API
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
    num_filters: int = 64  # pix2pix U-Net base width
    val_image_dir: str | Path | None = None  # input / prediction / truth figures per epoch
    val_every: int = 1
    progress: bool = True

    @property
    def stage(self) -> str:
        return self.train.stage

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.checkpoint_dir, self.stage)

    def model_config(self) -> ModelConfig:
        stage = get_stage(self.stage)
        classes = 0
        if stage.classes:
            from .classify import class_centres

            classes = len(class_centres())
        return ModelConfig(arch=stage.arch, size=self.data.size, num_filters=self.num_filters,
                           classes=classes)


@dataclass
class StageResult:
    trainer: Trainer
    checkpoint: Path
    resumed_from: dict | None = None
    val_paths: list = field(default_factory=list)


def training_paths(run: RunConfig) -> tuple[list[Path], list[Path]]:
    """The run's (train, val) photos, never its own outputs.

    A checkpoint folder (and its validation figures) inside the data folder
    is not scanned: a run never reads what it writes as photos.
    """
    own = [Path(p) for p in (run.checkpoint_dir, run.val_image_dir) if p is not None]
    return resolve_source(run.data, exclude=own)


def _training_data(run: RunConfig, env: distributed.DistEnv, device: torch.device):
    """The training loader and the validation paths for this rank."""
    data = run.data
    if data.batch_size % env.world:
        raise ValueError(f"--batch-size {data.batch_size} cannot be split evenly over "
                         f"{env.world} processes; use a multiple of {env.world}")
    if not env.is_main:
        distributed.barrier(env)  # rank 0 builds or downloads the data set first
    found, val_paths = training_paths(run)
    if env.is_main:
        distributed.barrier(env)
    train_paths = drop_unreadable(found, data.on_error)
    val_paths = drop_unreadable(val_paths, data.on_error)
    if not train_paths:
        raise ValueError(f"{data.source}: none of the training images can be read "
                         "(each one is named above)")
    _check_batchnorm_batch(run, min(data.batch_size, len(train_paths)) // env.world)
    warn_if_mostly_grey(train_paths, data.source)
    loader = make_loader(ColorizationDataset(train_paths, data.size, lab=False),
                         data.batch_size // env.world, train=True, seed=run.train.seed,
                         num_workers=data.num_workers, rank=env.rank, world=env.world,
                         pin_memory=device.type == "cuda")
    return loader, val_paths


def _check_batchnorm_batch(run: RunConfig, per_process: int) -> None:
    """BatchNorm cannot train on one value per channel: refuse a batch of one photo where the
    ResNet18 U-Net's bottleneck is 1 x 1 (size 32), before any work."""
    if per_process >= 2 or run.model_config().arch != "resnet18_unet" or run.data.size > 32:
        return
    n = f"{per_process} photo" + ("" if per_process == 1 else "s")
    raise ValueError(f"--batch-size {run.data.batch_size}: batches of {n} per process, but at "
                     f"--size {run.data.size} the ResNet18 U-Net's BatchNorm needs at least 2 "
                     "(its bottleneck is 1 x 1 there); use --batch-size 2 or more (and at least "
                     "2 training photos), or --size 64")


def _measure_class_weights(trainer: Trainer, dataset, log: Callable[[str], None]) -> None:
    """The classify stage: measure the training photos' a*b* class shares and store them, with
    the rebalancing weights made from them, in the generator (so in every checkpoint)."""
    from .classify import measure_class_prior

    net = trainer.net_G
    prior = measure_class_prior(dataset, net.centres, trainer.device, log=log)
    net.set_class_weights(prior, rebalance=trainer.cfg.rebalance)


def _steps_left(ckpt: dict, cfg: TrainConfig) -> bool:
    """Whether resuming ``ckpt`` under ``cfg`` would train at all (a finished run only loads)."""
    if cfg.max_steps is not None and ckpt.get("step", 0) >= cfg.max_steps:
        return False
    return not (ckpt.get("epoch", 0) >= cfg.epochs and ckpt.get("batch_in_epoch", 0) == 0)


def _validation_batch(val_paths: list, data: DataConfig) -> dict | None:
    """The fixed batch validated on after each epoch (None if no image of it is readable)."""
    if not val_paths:
        return None
    val_ds = ColorizationDataset(val_paths[: data.batch_size], data.size, lab=False)
    val_batch = next(iter(make_loader(val_ds, len(val_ds), train=False)))
    if "rgb" not in val_batch:  # no validation image is readable
        prepare_batch(val_batch, "cpu", on_error=data.on_error)  # reports each file
        return None
    return val_batch


def train_stage(run: RunConfig, callbacks: Iterable[Callback] = (),
                log: Callable[[str], None] = print) -> StageResult:
    """Build data and models for ``run.stage``, (re)load its checkpoint, train, save.

    The checkpoint is ``<checkpoint_dir>/<stage>.pt``. An existing one is
    continued with ``resume=True``, replaced with ``overwrite=True``, and
    otherwise left alone with an error, so no finished work is lost by a
    repeated command.

    An entry point: it seeds torch's global random state (``run.train.seed``)
    before building the networks and applies the device's process-wide
    settings (:meth:`DevicePolicy.prepare_process`).

    Launched by ``torchrun --nproc_per_node=N``, each of the N processes
    trains on its share of every batch (``data.batch_size`` is the global
    batch, split evenly) with DistributedDataParallel; rank 0 alone logs,
    shows progress and writes the checkpoint (see :mod:`colorlib.distributed`).

    Shown in notebook 03.
    """
    ckpt_path = run.checkpoint
    if ckpt_path.exists() and not (run.resume or run.overwrite):
        raise FileExistsError(f"{ckpt_path}: a checkpoint already exists; pass --resume to "
                              "continue it, or train into another --checkpoint-dir to start "
                              "afresh")
    _check_outputs(run)
    if run.init is not None and not (run.resume and ckpt_path.exists()):
        init_checkpoint(run.init, run.model_config())  # a wrong --init now, not after the data
    env, device = distributed.setup(resolve_device(run.device))
    try:  # leave the process group on every way out (errors included), never hang a peer
        check_training_memory(run, device, env.world)
        # One writer per checkpoint: a second run on it is refused while this one lives.
        with RunLock(ckpt_path, log) if env.is_main else contextlib.nullcontext():
            return _train_stage(run, callbacks, log, env, device)
    finally:
        distributed.teardown(env)


def _check_outputs(run: RunConfig) -> None:
    """The checkpoint this run writes is never its own ``--init``, nor, even with
    ``overwrite``, a file colorlib did not write (issue 20's output rule)."""
    from .checkpoint import checkpoint_kind

    ckpt_path = run.checkpoint
    if run.init is not None and Path(run.init).resolve() == ckpt_path.resolve():
        raise ValueError(f"--init: {run.init} is the checkpoint this run writes ({ckpt_path}); "
                         "kept it (start from a copy of it, or train into another "
                         "--checkpoint-dir)")
    if not run.overwrite or run.resume:
        return
    if ckpt_path.is_dir():
        raise IsADirectoryError(f"--checkpoint-dir: {ckpt_path} is a folder, where this run "
                                "writes its checkpoint; kept it")
    if ckpt_path.exists() or ckpt_path.is_symlink():
        kind, reason = checkpoint_kind(ckpt_path)
        if kind is None:
            raise FileExistsError(f"--overwrite: {ckpt_path} was not written by colorlib "
                                  f"({reason}); kept it (train into another --checkpoint-dir, "
                                  "or move that file away)")


def check_training_memory(run: RunConfig, device: torch.device, world: int = 1) -> None:
    """Refuse, before any work, a size or batch that cannot fit this machine's memory.

    The estimate (:func:`colorlib.cost.training_memory`) counts weights,
    gradients, Adam's moments and each photo's activations; it is compared
    with the device's *total* memory, so only the impossible is refused.
    """
    from .cost import device_memory_bytes, training_memory

    total = device_memory_bytes(device)
    if total is None:
        return
    per_process = max(run.data.batch_size // max(world, 1), 1)
    try:
        estimate = training_memory(run.stage, run.data.size, run.num_filters)
    except Exception:  # noqa: BLE001 - an estimate that cannot be made never blocks training
        return
    need = estimate.bytes(per_process)
    if need > total:
        raise ValueError(
            f"--size {run.data.size} with --batch-size {run.data.batch_size}: training the "
            f"{run.stage} stage needs about {need / 1e9:,.1f} GB of memory (an estimate: "
            f"{estimate.fixed_bytes / 1e9:,.1f} GB of weights, gradients and Adam moments, "
            f"{estimate.per_image_bytes / 1e9:,.2f} GB of activations per photo), more than "
            f"the {total / 1e9:,.1f} GB of {device}; use a smaller --size or --batch-size")


def _train_stage(run: RunConfig, callbacks: Iterable[Callback], log: Callable[[str], None],
                 env: distributed.DistEnv, device: torch.device) -> StageResult:
    cfg, model_cfg, ckpt_path = run.train, run.model_config(), run.checkpoint
    progress = run.progress and env.is_main
    if not env.is_main:
        log = lambda *_: None  # noqa: E731
    ckpt = None
    if run.resume and ckpt_path.exists():  # checked before the data is loaded
        ckpt = load_checkpoint(ckpt_path, arch=model_cfg.arch)
        if _steps_left(ckpt, cfg):
            check_resume(ckpt, run, ckpt_path)
        else:  # e.g. a notebook showing a finished run's checkpoint on its own photos
            log(f"{ckpt_path}: already trained to step {ckpt['step']}; nothing more is trained, "
                "so the data only feeds validation and its settings need not match")
    loader, val_paths = _training_data(run, env, device)
    torch.manual_seed(cfg.seed)  # the networks' initial weights
    resumed_from = None
    started = None if ckpt is None else dict(ckpt.get("run") or {})  # a resume keeps its start
    if ckpt is not None:
        trainer = Trainer.build(model_cfg, cfg, device, weights=None)
        trainer.load_state_dict(ckpt, source=ckpt_path)
        del ckpt
        st = trainer.state
        resumed_from = {"epoch": st.epoch, "batch_in_epoch": st.batch_in_epoch, "step": st.step}
        log(f"Resumed {cfg.stage} from {ckpt_path}: epoch {st.epoch + 1}, "
            f"batch {st.batch_in_epoch}, step {st.step}")
    else:
        if run.resume:
            log(f"No checkpoint at {ckpt_path} yet: starting {cfg.stage} from the beginning")
        trainer = Trainer.build(model_cfg, cfg, device, weights=run.weights, init=run.init)
        if get_stage(cfg.stage).classes:  # once per run: a resume reads them from the checkpoint
            _measure_class_weights(trainer, loader.dataset, log)
    trainer.run_info = run_record(run, resumed=started)
    trainer.policy.prepare_process()
    distributed.seed_rank(env, cfg.seed, trainer.step)  # each rank its own dropout masks
    trainer.distribute(env)
    trainer.fit(loader, checkpoint=ckpt_path, val_batch=_validation_batch(val_paths, run.data),
                callbacks=callbacks, val_image_dir=run.val_image_dir, val_every=run.val_every,
                progress=progress, on_error=run.data.on_error)
    if not ckpt_path.exists():  # e.g. zero steps to run
        trainer.save(ckpt_path)
    return StageResult(trainer, ckpt_path, resumed_from, list(val_paths))
