"""The training loop around :class:`colorlib.models.pix2pix.Pix2Pix`, with exact resume.

Three layers, each in its own place:

* the **algorithm** (:mod:`colorlib.models.pix2pix`): networks, optimisers, losses
  and one optimisation step (``gan_step``, ``l1_step``);
* the **device policy** (:mod:`colorlib.system.device`): device, mixed precision,
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

from colorlib import __version__
from colorlib.data.loading import prepare_batch, steps_per_epoch
from colorlib.models.losses import l1_loss
from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
from colorlib.models.pix2pix import NonFiniteLossError, Pix2Pix
from colorlib.models.stages import get_stage
from colorlib.system.device import DevicePolicy
from colorlib.training import distributed
from colorlib.training.checkpoint import (CheckpointError, load_checkpoint, load_init,
                                          refuse_resume, restore_rng_state, rng_state,
                                          save_checkpoint)
from colorlib.training.config import TrainConfig
from colorlib.training.run_safety import StepGuard, TrainingInterrupted


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
            load_init(net_G, init, model_cfg)
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
        exactly, and raises :class:`~colorlib.training.run_safety.TrainingInterrupted` saying
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
        from colorlib.teaching.figures import plot_colorization_grid, save_figure

        L, ab = prepare_batch(val_batch, self.policy.device)
        fig = plot_colorization_grid(L, self.predict(L), ab)
        fig.suptitle(f"{self.cfg.stage}: epoch {self.state.epoch}, step {self.state.step}")
        return save_figure(fig, Path(folder) / f"{self.cfg.stage}_epoch{self.state.epoch:04d}.png",
                           legacy_ok=True)  # val_images/ is colorlib's own folder
