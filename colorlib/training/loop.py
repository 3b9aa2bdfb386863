"""The training loop: epochs of steps of one algorithm, with validation, saves and exact resume.

What sits where:

* the **algorithm** (:mod:`colorlib.models`): networks, optimisers, losses and one
  optimisation step (``Pix2Pix.train_step``, ``L1Pretraining.train_step``, ...);
* the **device policy** (:mod:`colorlib.system.device`): device, mixed precision,
  gradient scaler, memory layout;
* the **loop** (here): :class:`Trainer` runs epochs of steps, validates, saves checkpoints
  and calls :class:`Callback` hooks (live feedback and validation images are callbacks, in
  :mod:`colorlib.teaching.live_feedback`); where it stands is one :class:`LoopState`;
* the **stage runner** (:mod:`colorlib.training.runner`): data, lock, resume and
  process set-up around the loop, for one :class:`~colorlib.training.config.RunConfig`.

:meth:`Trainer.state_dict` is everything needed to continue a run bit-for-bit on the CPU,
and :meth:`Trainer.fit` saves it atomically at every epoch end (and every ``save_every``
steps), so a lost Colab session costs at most the steps since the last save. On a GPU the
same state comes back (weights, optimiser moments, the fp16 loss scale, the CPU and CUDA
random states), but cuDNN picks kernels whose floating-point sums have no fixed order, so a
resumed GPU run matches an uninterrupted one to rounding, not bit for bit
(tests/test_gpu_paths.py). Taught in notebooks 03-05.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

import torch

from colorlib import __version__
from colorlib.data.loading import prepare_batch, steps_per_epoch
from colorlib.models.algorithms import build_model
from colorlib.models.base_model import BaseModel, NonFiniteLossError
from colorlib.models.losses import l1_loss
from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
from colorlib.models.stages import get_stage
from colorlib.system.device import DevicePolicy
from colorlib.training import distributed
from colorlib.training.checkpoint import (check_model_settings, load_checkpoint, load_init,
                                          misfit_error, refuse_resume, restore_rng_state,
                                          rng_state, save_checkpoint)
from colorlib.training.config import TrainConfig
from colorlib.training.run_safety import StepGuard, TrainingInterrupted

LOGGED_LOSSES = ("loss_G_L1", "loss_G_GAN", "loss_D", "loss_G_class")  # on the progress bar


@dataclass
class LoopState:
    """Where a run stands; with the weights and the random state, all a resume needs."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches done in the current (unfinished) epoch
    step: int = 0  # optimisation steps in total
    history: list[dict] = field(default_factory=list)  # one record of losses per step
    val_history: list[dict] = field(default_factory=list)  # one record per epoch
    train_seconds: float = 0.0

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "LoopState":
        return cls(ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"], list(ckpt["history"]),
                   list(ckpt["val_history"]), ckpt.get("train_seconds", 0.0))


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


class Trainer:
    """The loop: epochs of steps of a model (:mod:`colorlib.models`), validation, checkpoints,
    callbacks. Build one with :meth:`build` (networks for a stage) or from a model you made.
    Its progress is ``trainer.state`` (also ``trainer.step``, ``trainer.epoch``, ...).
    ``dist``: this process's place in a data-parallel run (the model is built for it)."""

    def __init__(self, model: BaseModel, policy: DevicePolicy, cfg: TrainConfig,
                 model_cfg: ModelConfig, started_from: str = "none",
                 dist: distributed.DistEnv = distributed.DistEnv()):
        self.model, self.policy, self.cfg, self.model_cfg = model, policy, cfg, model_cfg
        # What the generator's weights started from, in words: "imagenet", a weights file,
        # "none" (random), or "init from pretrain.pt". Checkpoints store it as "weights".
        self.started_from, self.dist = started_from, dist
        self.state = LoopState()
        self.val_batch: dict | None = None  # the fixed batch validated on (callbacks draw it)
        self.run_info: dict = {}  # the data settings a resume must repeat (run_record)
        self._saved_step: int | None = None  # the step of the last checkpoint written or loaded

    @classmethod
    def build(cls, model_cfg: ModelConfig, cfg: TrainConfig,
              device: str | torch.device | None = None, weights: str | None = "imagenet",
              init: str | Path | None = None,
              dist: distributed.DistEnv = distributed.DistEnv()) -> "Trainer":
        """Fresh networks and their algorithm for ``cfg.stage`` on ``device``.

        ``weights``: the ResNet18 encoder's ("imagenet", a file, or None); ``init``: a
        checkpoint whose generator to start from. Draws from the global torch random state
        (:func:`~colorlib.training.runner.train_stage` seeds it)."""
        policy = DevicePolicy.for_training(device, model_cfg.arch, cfg.amp, cfg.cpu_amp)
        model, started_from = _stage_model(model_cfg, cfg, policy, weights, init, dist)
        return cls(model, policy, cfg, model_cfg, started_from, dist)

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
        """ab for a batch of normalised L, in eval mode (see :meth:`BaseModel.predict`)."""
        return self.model.predict(L)

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

    def validate(self, val_batch: dict) -> float:
        """Mean |ab error| on a fixed validation batch, recorded per epoch."""
        prepared = prepare_batch(val_batch, self.policy.device)
        if prepared is None:  # every validation image was unreadable (already reported)
            return float("nan")
        L, ab = prepared
        loss = l1_loss(self.predict(L), ab).item()
        self.state.val_history.append({"epoch": self.state.epoch, "step": self.state.step,
                                       "train_seconds": round(self.state.train_seconds, 2),
                                       "val_l1": loss})  # seconds: L1 against training time
        return loss

    # ------------------------------------------------------------ state I/O
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly (weights_only-safe: checkpoint.py)."""
        amp_dtype = self.policy.amp_dtype
        return {
            "stage": self.cfg.stage, "model": self.model_cfg.to_dict(), "train": asdict(self.cfg),
            "colorlib_version": __version__, "weights": self.started_from,
            "amp_dtype": str(amp_dtype).removeprefix("torch.") if amp_dtype else None,
            **self.model.state_dict(),
            **{f.name: getattr(self.state, f.name) for f in fields(LoopState)},
            "rng": rng_state(),
            **({"run": self.run_info} if self.run_info else {}),
        }

    def load_state_dict(self, ckpt: dict, source: str | Path | None = None) -> None:
        """Restore a :meth:`state_dict`; ``source`` (the file) names it in errors."""
        refuse_resume(ckpt, source or "checkpoint")  # a weights-only export cannot continue
        check_model_settings(ckpt, self.model_cfg, source)
        try:
            self.model.load_state_dict(ckpt)
            self.state = LoopState.from_checkpoint(ckpt)
            self.started_from = ckpt.get("weights", self.started_from)
            self.run_info = dict(ckpt.get("run", {}))
            self._saved_step = self.state.step
            restore_rng_state(ckpt["rng"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise misfit_error(err, source) from None

    def resume(self, path: str | Path) -> None:
        self.load_state_dict(load_checkpoint(path, arch=self.model_cfg.arch, stage=self.cfg.stage),
                             source=path)

    def save(self, path: str | Path | None) -> Path | None:
        """Write the checkpoint to ``path`` and return it (None: the run keeps no checkpoint).
        Every rank checks the weights (equal on all, so all stop alike); rank 0 writes."""
        if path is None:
            return None
        check_finite_weights(self.model, f"stage '{self.cfg.stage}', step {self.state.step}")
        if self.dist.is_main:
            save_checkpoint(self.state_dict(), path)
            self._saved_step = self.state.step
        return Path(path)

    # ------------------------------------------------------------------ loop
    def fit(self, loader, checkpoint: str | Path | None = None, val_batch: dict | None = None,
            callbacks: Iterable[Callback] = (), progress: bool = True,
            on_error: str = "skip") -> "Trainer":
        """Train until ``cfg.epochs`` epochs (or ``cfg.max_steps`` steps) are done.

        ``loader``: from :func:`colorlib.data.loading.make_loader` (its sampler starts an epoch
        part-way: after :meth:`resume` this goes on mid-epoch). Each epoch ends with validation
        on ``val_batch``, a save to ``checkpoint``, then the callbacks. Ctrl-C or SIGTERM saves
        at the step's end and raises ``TrainingInterrupted`` (see :mod:`~colorlib.training.
        run_safety`)."""
        _check_resumable_loader(loader)
        self.val_batch = val_batch
        run = _Fit(loader, checkpoint, list(callbacks), progress, on_error, StepGuard())
        first_step = self.state.step
        # Data-parallel, a Ctrl-C is never acted on mid-way: only at the agreed stop points.
        held = run.guard.shielded(reraise=False) if self.dist.enabled else contextlib.nullcontext()
        with run.guard:
            try:
                with held:
                    while self.state.epoch < self.cfg.epochs and not self._done(run):
                        self._epoch(run)
            except KeyboardInterrupt:
                raise _interruption(self, run, first_step) from None
        return self

    def _epoch(self, run: "_Fit") -> None:
        """One epoch (or what is left of it after a resume), then its end."""
        st, loader = self.state, run.loader
        loader.sampler.set_epoch(st.epoch, skip=st.batch_in_epoch * loader.batch_size)
        bar = _progress_bar(self, steps_per_epoch(loader), run.progress)
        first_batch, steps_before, clock = st.batch_in_epoch, st.step, time.perf_counter()
        for batch in loader:
            with run.guard.shielded():  # a Ctrl-C now waits for this step (and its save)
                losses = self._step(batch, run)
                bar.update(1)
                if losses is not None:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()
                                     if k in LOGGED_LOSSES})
                done = self._done(run)
                if done or (self.cfg.save_every and st.step % self.cfg.save_every == 0):
                    clock = _add_seconds(st, since=clock)
                    self.save(run.checkpoint)
                for cb in run.callbacks if losses is not None else ():
                    cb.on_step_end(self, losses)
                _stop_point(self, run.guard)
            if done:
                break
        bar.close()
        _add_seconds(st, since=clock)
        if first_batch == 0 and st.batch_in_epoch > 0 and st.step == steps_before:
            raise ValueError(f"stage '{self.cfg.stage}': no training image could be read (every "
                             f"batch of epoch {st.epoch + 1} was empty); see the messages above")
        if st.batch_in_epoch >= steps_per_epoch(loader):
            with run.guard.shielded():
                self._end_epoch(run)

    def _step(self, batch: dict, run: "_Fit") -> dict[str, float] | None:
        """Prepare one batch and train on it (None: none of its photos could be read)."""
        st = self.state
        # The flip coins depend only on (seed, step): reproducible, and a resume is exact.
        coins = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + st.step)
        prepared = prepare_batch(batch, self.policy.device, augment=True, generator=coins,
                                 on_error=run.on_error, rank=self.dist.rank,
                                 world=self.dist.world)
        if self.dist.enabled:  # a step skipped on one rank alone would hang the others
            distributed.stop_if_any(self.dist, self.policy.device, prepared is None,
                                    lambda ranks: _unreadable_share(self, ranks))
        losses = None
        if prepared is not None:
            losses = self.train_step(*prepared)
            st.step += 1
            st.history.append({"step": st.step, "epoch": st.epoch, **losses})
        st.batch_in_epoch += 1
        return losses

    def _end_epoch(self, run: "_Fit") -> None:
        self.state.epoch, self.state.batch_in_epoch = self.state.epoch + 1, 0
        if self.val_batch is not None:
            self.validate(self.val_batch)
        self.save(run.checkpoint)
        for cb in run.callbacks:
            cb.on_epoch_end(self)
        _stop_point(self, run.guard)

    def _done(self, run: "_Fit") -> bool:
        budget_spent = self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps
        return budget_spent or any(cb.should_stop(self) for cb in run.callbacks)



def _stage_model(model_cfg: ModelConfig, cfg: TrainConfig, policy: DevicePolicy,
                 weights: str | None, init: str | Path | None,
                 dist: distributed.DistEnv) -> tuple[BaseModel, str]:
    """The stage's networks and algorithm, placed by ``policy``; and what G started from."""
    stage = get_stage(cfg.stage)
    if model_cfg.arch != stage.arch:
        raise ValueError(f"stage {cfg.stage!r} trains a {stage.arch}, not a {model_cfg.arch}")
    net_G = build_generator(model_cfg, weights if init is None else None)
    started_from = "none" if weights is None else str(weights)
    if init is not None:
        load_init(net_G, init, model_cfg)
        started_from = f"init from {Path(init).name}"
    net_D = build_discriminator(model_cfg) if stage.adversarial else None
    model = build_model(cfg.stage, policy.place(net_G), policy.place(net_D), adam=cfg.adam(),
                        lambda_l1=cfg.lambda_l1, gan_mode=cfg.gan_mode,
                        amp=policy.mixed_precision(),
                        replication=distributed.replication(dist, policy.device))
    return model, started_from


@dataclass
class _Fit:
    """What one call of :meth:`Trainer.fit` was given, handed from the loop to its parts."""

    loader: object
    checkpoint: str | Path | None
    callbacks: list[Callback]
    progress: bool
    on_error: str
    guard: StepGuard


def _add_seconds(state: LoopState, since: float) -> float:
    """Add the time since ``since`` to the run's training seconds; the clock's new start."""
    now = time.perf_counter()
    state.train_seconds += now - since
    return now


def _stop_point(trainer: Trainer, guard: StepGuard) -> None:
    """The end of a step: data-parallel, stop every rank here if any had a Ctrl-C."""
    if trainer.dist.enabled and distributed.any_rank(trainer.dist, trainer.device, guard.pending):
        raise KeyboardInterrupt


def _interruption(trainer: Trainer, run: _Fit, first_step: int) -> TrainingInterrupted:
    """Ctrl-C: save where the loop stands (a step boundary) unless nothing is new or a second
    Ctrl-C cut a step short; say which."""
    st, guard, checkpoint = trainer.state, run.guard, run.checkpoint
    new_steps = checkpoint is not None and st.step > first_step
    saved = new_steps and trainer._saved_step == st.step  # the step in progress was just saved
    if new_steps and not saved and not guard.forced:
        with guard.shielded(reraise=False):
            trainer.save(checkpoint)
        saved = True
    return TrainingInterrupted(checkpoint, st.step, st.epoch, st.batch_in_epoch, saved,
                               trainer._saved_step, guard.forced, guard.signal or "SIGINT")


def check_finite_weights(model: BaseModel, where: str) -> None:
    """Never overwrite a good checkpoint with weights a bad update has spoiled."""
    for name, net in (("generator", model.generator), ("discriminator", model.discriminator)):
        if net is not None and not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
            raise NonFiniteLossError(f"{where}: the {name}'s weights are no longer finite; "
                                     "training stopped, the last saved checkpoint is kept")


def _check_resumable_loader(loader) -> None:
    """fit resumes mid-epoch through the sampler: say so in one line if it cannot."""
    sampler = getattr(loader, "sampler", None)
    if not (hasattr(sampler, "set_epoch") and hasattr(sampler, "indices")):
        raise TypeError("Trainer.fit needs a loader from colorlib.data.loading.make_loader "
                        f"(its sampler starts an epoch part-way on resume); got {type(loader)}")


def _progress_bar(trainer: Trainer, total: int, progress: bool):
    from tqdm.auto import tqdm

    cfg, st = trainer.cfg, trainer.state
    label = (f"{cfg.stage} epoch {st.epoch + 1} (step budget {cfg.max_steps})"
             if cfg.max_steps is not None else f"{cfg.stage} epoch {st.epoch + 1}/{cfg.epochs}")
    return tqdm(total=total, initial=st.batch_in_epoch, desc=label, leave=False,
                disable=not progress or not trainer.dist.is_main)


def _unreadable_share(trainer: Trainer, ranks: list[int]) -> ValueError:
    st = trainer.state
    return ValueError(
        f"stage '{trainer.cfg.stage}', epoch {st.epoch + 1}, batch {st.batch_in_epoch + 1}: no "
        f"image of rank {', '.join(map(str, ranks))}'s share could be read (named above); "
        "a data-parallel step cannot be skipped on one rank alone, so every rank stopped, "
        "the last saved checkpoint is kept")
