"""Training: L1 pretraining and the pix2pix GAN loop, with exact resume.

Three stages, as in the tutorial:

* ``baseline``: the pix2pix U-Net trained from scratch with GAN + 100*L1;
* ``pretrain``: the ResNet18 U-Net trained with L1 alone;
* ``gan``: that pretrained generator fine-tuned with GAN + 100*L1.

A :class:`Trainer` owns the networks, optimisers and progress counters;
its :meth:`Trainer.state_dict` is everything needed to continue a run
bit-for-bit, and :meth:`Trainer.fit` saves it atomically at every epoch end
(and every ``save_every`` steps), so a lost Colab session costs at most the
steps since the last save.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import __version__
from . import distributed
from .checkpoint import STAGES, CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint
from .data import (DataConfig, ColorizationDataset, drop_unreadable, make_loader, prepare_batch,
                   resolve_source)
from .losses import GANLoss, l1_term
from .memory import keep_freed_memory
from .networks import ModelConfig, build_discriminator, build_generator

STAGE_ARCH = {"baseline": "pix2pix_unet", "pretrain": "resnet18_unet", "gan": "resnet18_unet"}
STAGE_USES_GAN = {"baseline": True, "pretrain": False, "gan": True}


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before the bad update."""


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults follow the tutorial."""

    stage: str = "pretrain"
    epochs: int = 20
    lr_g: float | None = None  # None: 1e-4 for pretrain (tutorial), 2e-4 otherwise
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 100.0
    gan_mode: str = "vanilla"
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA (bf16 where supported); ignored on CPU
    # bf16 autocast on CPUs with native bf16 (AMX / AVX512-BF16), about 3x faster per
    # step there (benchmarks/RESULTS.md); off by default so CPU results stay fp32 and
    # machine-independent.
    cpu_amp: bool = False
    max_steps: int | None = None  # stop after this many steps in total (quick runs)
    save_every: int = 0  # also checkpoint every N steps (0: at epoch ends only)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; choose from {STAGES}")

    @property
    def generator_lr(self) -> float:
        if self.lr_g is not None:
            return self.lr_g
        return 1e-4 if self.stage == "pretrain" else 2e-4

    @property
    def generator_betas(self) -> tuple[float, float]:
        # The tutorial pretrains with Adam's default betas and uses pix2pix's
        # beta1 = 0.5 whenever a discriminator is in the game.
        return (0.9, 0.999) if self.stage == "pretrain" else (self.beta1, self.beta2)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` picks CUDA when available, else the CPU; bad names fail clearly."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device: {device!r} is not a device name (try cpu, cuda, cuda:0)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {device!r} asked for, but no CUDA GPU is available")
    return dev


def cpu_has_native_bf16() -> bool:
    """True on CPUs whose matrix units do bf16 natively (AMX or AVX512-BF16).

    Elsewhere bf16 is emulated and slower than fp32, so it is never used.
    """
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:
            pass
    return False


def cuda_has_native_bf16(device: torch.device) -> bool:
    """True on GPUs with bf16 tensor cores (compute capability 8.0+: A100, L4, H100...).

    ``torch.cuda.is_bf16_supported()`` also says yes on a T4 (Kaggle, Colab)
    because bf16 can be emulated there, slowly; those GPUs get fp16 instead.
    """
    return torch.cuda.get_device_capability(device)[0] >= 8 or bool(torch.version.hip)


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused (one kernel for all tensors) update where this PyTorch has it.

    The fused update computes the same formula as the per-tensor loop; for the
    ResNet18 U-Net's 31M parameters it takes 40 ms instead of 160 ms on one
    CPU thread (a few percent of a training step).
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older PyTorch, or a device without it
        return torch.optim.Adam(params, lr=lr, betas=betas)


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


class Trainer:
    """Networks, optimisers and counters for one stage."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig,
                 device: str | torch.device | None = None,
                 weights: str | None = "imagenet", init: str | Path | None = None):
        if model_cfg.arch != STAGE_ARCH[cfg.stage]:
            raise ValueError(f"stage {cfg.stage!r} trains a {STAGE_ARCH[cfg.stage]}, "
                             f"not a {model_cfg.arch}")
        self.model_cfg, self.cfg = model_cfg, cfg
        self.device = resolve_device(device)
        torch.manual_seed(cfg.seed)
        self.weights = "none" if weights is None else str(weights)
        self.net_G = build_generator(model_cfg, weights if init is None else None)
        self.init = None
        if init is not None:
            ckpt = load_checkpoint(init, arch=model_cfg.arch)
            self.net_G.load_state_dict(ckpt["generator"])
            self.init, self.weights = str(init), f"init from {Path(init).name}"
        self.net_D = build_discriminator(model_cfg) if STAGE_USES_GAN[cfg.stage] else None
        self.amp_dtype = self._amp_dtype()
        self._to_device()
        if self.device.type == "cpu":
            keep_freed_memory()  # each step frees and re-allocates the same large tensors
        # What the training steps call: the networks, or their DDP wrappers (distribute()).
        self.train_G, self.train_D = self.net_G, self.net_D
        self.dist = distributed.DistEnv()
        self.opt_G = make_adam(self.net_G.parameters(), cfg.generator_lr, cfg.generator_betas)
        self.opt_D = (make_adam(self.net_D.parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2))
                      if self.net_D else None)
        self.gan_loss = GANLoss(cfg.gan_mode)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches done in the current (unfinished) epoch
        self.step = 0  # optimisation steps in total
        self.history: list[dict] = []  # one record of losses per step
        self.val_history: list[dict] = []
        self.train_seconds = 0.0

    # ---------------------------------------------------------------- set-up
    @property
    def channels_last(self) -> bool:
        # GPUs and bf16 CPU kernels (oneDNN) want NHWC. In fp32 on a CPU it pays
        # for the ResNet18 U-Net (1.2x per training step, measured on one thread)
        # but not for the pix2pix U-Net (equal at 128 px, 20% slower at 32 px).
        return (self.device.type == "cuda" or self.amp_dtype is not None
                or self.model_cfg.arch == "resnet18_unet")

    def _to_device(self) -> None:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        for net in (self.net_G, self.net_D):
            if net is not None:
                net.to(self.device, memory_format=fmt)

    def _amp_dtype(self) -> torch.dtype | None:
        if self.device.type == "cpu" and self.cfg.cpu_amp and cpu_has_native_bf16():
            return torch.bfloat16
        if not self.cfg.amp or self.device.type != "cuda":
            return None
        return torch.bfloat16 if cuda_has_native_bf16(self.device) else torch.float16

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ----------------------------------------------------------------- steps
    def _pair(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """The discriminator's input: L and ab side by side, in the networks' layout.

        ``torch.cat`` returns NCHW when its inputs' layouts disagree, and a
        1-channel L counts as both, so without this the PatchGAN would
        convert its input (and its gradient) to channels_last every call.
        """
        pair = torch.cat([L, ab], 1)
        return pair.contiguous(memory_format=torch.channels_last) if self.channels_last else pair

    def _check(self, name: str, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"stage '{self.cfg.stage}', step {self.step + 1}: {name} is {loss.item()}; "
                "training stopped before this update, the last saved checkpoint is kept")

    def _update(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)

    def l1_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """Pretraining: predict ab from L and follow the plain L1 error."""
        with self.autocast():
            loss = torch.mean(torch.abs(self.train_G(L).float() - ab))
        self._check("L1 loss", loss)
        self._update(loss, self.opt_G)
        self.scaler.update()
        return {"loss_G_L1": loss.item()}

    def gan_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """pix2pix: one discriminator update, then one generator update."""
        with self.autocast():
            fake_ab = self.train_G(L)
        # Discriminator: real (L, ab) pairs -> 1, generated pairs -> 0. The
        # generated colours are detached so this update leaves G alone.
        set_requires_grad(self.net_D, True)
        with self.autocast():
            loss_D_fake = self.gan_loss(self.train_D(self._pair(L, fake_ab.detach())), False)
            loss_D_real = self.gan_loss(self.train_D(self._pair(L, ab)), True)
            loss_D = 0.5 * (loss_D_fake + loss_D_real)
        self._check("discriminator loss", loss_D)
        self._update(loss_D, self.opt_D)
        # Generator: fool the (now frozen) discriminator and stay close in L1.
        # D is called directly, not through its DDP wrapper: its weights get no
        # gradient here, and DDP would wait for gradients that never come.
        set_requires_grad(self.net_D, False)
        with self.autocast():
            loss_G_GAN = self.gan_loss(self.net_D(self._pair(L, fake_ab)), True)
            loss_G_L1 = l1_term(fake_ab, ab, self.cfg.lambda_l1)
            loss_G = loss_G_GAN + loss_G_L1
        self._check("generator loss", loss_G)
        self._update(loss_G, self.opt_G)
        self.scaler.update()
        return {"loss_D_fake": loss_D_fake.item(), "loss_D_real": loss_D_real.item(),
                "loss_D": loss_D.item(), "loss_G_GAN": loss_G_GAN.item(),
                "loss_G_L1": loss_G_L1.item(), "loss_G": loss_G.item()}

    def train_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        self.net_G.train()
        if self.channels_last:
            L = L.contiguous(memory_format=torch.channels_last)
            ab = ab.contiguous(memory_format=torch.channels_last)
        losses = self.gan_step(L, ab) if self.net_D is not None else self.l1_step(L, ab)
        return distributed.mean_over_ranks(losses, self.dist, self.device)

    def distribute(self, env: distributed.DistEnv) -> None:
        """Train as one rank of a data-parallel run (after :func:`distributed.setup`).

        The networks get DistributedDataParallel wrappers (gradients are
        averaged over ranks); ``net_G``/``net_D`` stay the plain modules, so
        checkpoints look exactly like single-process ones.
        """
        self.dist = env
        if env.enabled:
            self.train_G = distributed.wrap(self.net_G, self.device)
            if self.net_D is not None:
                self.train_D = distributed.wrap(self.net_D, self.device)

    @torch.no_grad()
    def predict(self, L: torch.Tensor) -> torch.Tensor:
        """ab for a batch of normalised L, in eval mode (BatchNorm running stats)."""
        self.net_G.eval()
        with self.autocast():
            out = self.net_G(L.to(self.device)).float()
        self.net_G.train()
        return out

    # ------------------------------------------------------------ state I/O
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly (weights_only-safe)."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "stage": self.cfg.stage, "model": self.model_cfg.to_dict(), "train": asdict(self.cfg),
            "colorlib_version": __version__, "weights": self.weights,
            "generator": self.net_G.state_dict(),
            "discriminator": self.net_D.state_dict() if self.net_D is not None else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict() if self.opt_D is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "history": self.history, "val_history": self.val_history,
            "train_seconds": self.train_seconds, "rng": rng,
        }

    def load_state_dict(self, ckpt: dict, source: str | Path | None = None) -> None:
        """Restore a :meth:`state_dict`; ``source`` (the file) names it in errors."""
        where = f"{source}: " if source is not None else ""
        ours = self.model_cfg.to_dict()
        if ckpt["model"] != ours:
            diff = ", ".join(f"{k}={ckpt['model'].get(k)!r} (this run: {v!r})"
                             for k, v in ours.items() if ckpt["model"].get(k) != v)
            raise CheckpointError(f"{where}checkpoint was trained with other model settings: "
                                  f"{diff}; use the same settings, or --overwrite to start again")
        try:
            self._load_state(ckpt)
        except (KeyError, RuntimeError, ValueError) as err:
            reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else repr(err)
            raise CheckpointError(f"{where}checkpoint does not fit this model ({reason})") from None

    def _load_state(self, ckpt: dict) -> None:
        self.net_G.load_state_dict(ckpt["generator"])
        if self.net_D is not None:
            self.net_D.load_state_dict(ckpt["discriminator"])
            self.opt_D.load_state_dict(ckpt["opt_D"])
        self.opt_G.load_state_dict(ckpt["opt_G"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.batch_in_epoch = ckpt["epoch"], ckpt["batch_in_epoch"]
        self.step, self.train_seconds = ckpt["step"], ckpt.get("train_seconds", 0.0)
        self.history, self.val_history = list(ckpt["history"]), list(ckpt["val_history"])
        self.weights = ckpt.get("weights", self.weights)
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])

    def save(self, path: str | Path) -> Path:
        if not self.dist.is_main:  # data-parallel: rank 0 alone writes (weights are equal)
            return Path(path)
        self._check_finite_weights()
        return save_checkpoint(self.state_dict(), path)

    def _check_finite_weights(self) -> None:
        """Never overwrite a good checkpoint with weights a bad update has spoiled."""
        for name, net in (("generator", self.net_G), ("discriminator", self.net_D)):
            if net is not None and not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                raise NonFiniteLossError(
                    f"stage '{self.cfg.stage}', step {self.step}: the {name}'s weights are no "
                    "longer finite; training stopped, the last saved checkpoint is kept")

    def resume(self, path: str | Path) -> None:
        self.load_state_dict(load_checkpoint(path, arch=self.model_cfg.arch, stage=self.cfg.stage))

    # ------------------------------------------------------------------ loop
    def _batch_generator(self) -> torch.Generator:
        # Augmentation coins depend only on (seed, step): reproducible, resumable.
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)

    def fit(self, loader, checkpoint: str | Path | None = None, val_batch: dict | None = None,
            on_epoch_end: Callable[["Trainer"], None] | None = None, progress: bool = True,
            on_error: str = "skip", val_image_dir: str | Path | None = None,
            val_every: int = 1) -> "Trainer":
        """Train until ``cfg.epochs`` epochs (or ``cfg.max_steps`` steps) are done.

        Continues from the counters already in the trainer, so calling it
        after :meth:`resume` picks up mid-epoch where the checkpoint left off.
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        steps_per_epoch = len(loader.sampler.indices()) // loader.batch_size if loader.drop_last \
            else math.ceil(len(loader.sampler.indices()) / loader.batch_size)
        while self.epoch < cfg.epochs and not self._done():
            loader.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch * loader.batch_size)
            bar = tqdm(total=steps_per_epoch, initial=self.batch_in_epoch,
                       disable=not progress or not self.dist.is_main,
                       desc=self._progress_label(), leave=False)
            start = time.perf_counter()
            first_batch, steps_before = self.batch_in_epoch, self.step
            for batch in loader:
                prepared = prepare_batch(batch, self.device, augment=True,
                                         generator=self._batch_generator(), on_error=on_error,
                                         rank=self.dist.rank, world=self.dist.world)
                if prepared is not None:
                    losses = self.train_step(*prepared)
                    self.step += 1
                    self.history.append({"step": self.step, "epoch": self.epoch, **losses})
                    bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k in
                                     ("loss_G_L1", "loss_G_GAN", "loss_D")})
                self.batch_in_epoch += 1
                bar.update(1)
                if self._done() or (cfg.save_every and self.step % cfg.save_every == 0):
                    self.train_seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    if checkpoint is not None:
                        self.save(checkpoint)
                if self._done():
                    break
            bar.close()
            self.train_seconds += time.perf_counter() - start
            if first_batch == 0 and self.batch_in_epoch > 0 and self.step == steps_before:
                raise ValueError(f"stage '{cfg.stage}': no training image could be read (every "
                                 f"batch of epoch {self.epoch + 1} was empty); see the messages "
                                 "above")
            if self.batch_in_epoch >= steps_per_epoch:
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                if val_batch is not None:
                    self.validate(val_batch)
                    if (val_image_dir is not None and self.epoch % val_every == 0
                            and self.dist.is_main):
                        self.save_val_images(val_batch, val_image_dir)
                if checkpoint is not None:
                    self.save(checkpoint)
                if on_epoch_end is not None:
                    on_epoch_end(self)
        return self

    def _progress_label(self) -> str:
        if self.cfg.max_steps is not None:
            return f"{self.cfg.stage} epoch {self.epoch + 1} (step budget {self.cfg.max_steps})"
        return f"{self.cfg.stage} epoch {self.epoch + 1}/{self.cfg.epochs}"

    def _done(self) -> bool:
        return self.cfg.max_steps is not None and self.step >= self.cfg.max_steps

    def save_val_images(self, val_batch: dict, folder: str | Path) -> Path:
        """Save input / prediction / truth for the fixed validation batch."""
        from .figures import plot_colorization_grid, save_figure

        L, ab = prepare_batch(val_batch, self.device)
        fig = plot_colorization_grid(L, self.predict(L), ab)
        fig.suptitle(f"{self.cfg.stage}: epoch {self.epoch}, step {self.step}")
        return save_figure(fig, Path(folder) / f"{self.cfg.stage}_epoch{self.epoch:04d}.png")

    def validate(self, val_batch: dict) -> float:
        """Mean |ab error| on a fixed validation batch, recorded per epoch."""
        prepared = prepare_batch(val_batch, self.device)
        if prepared is None:  # every validation image was unreadable (already reported)
            return float("nan")
        L, ab = prepared
        loss = torch.mean(torch.abs(self.predict(L) - ab)).item()
        self.val_history.append({"epoch": self.epoch, "step": self.step, "val_l1": loss})
        return loss


# ------------------------------------------------------------ one-call API
@dataclass
class StageResult:
    trainer: Trainer
    checkpoint: Path
    resumed_from: dict | None = None
    val_paths: list = field(default_factory=list)


def train_stage(stage: str, data: DataConfig, epochs: int, checkpoint_dir: str | Path,
                init: str | Path | None = None, resume: bool = False, overwrite: bool = False,
                device: str | None = None, weights: str | None = "imagenet", seed: int = 0,
                max_steps: int | None = None, save_every: int = 0, num_filters: int = 64,
                progress: bool = True, on_epoch_end: Callable | None = None,
                val_image_dir: str | Path | None = None, val_every: int = 1,
                log: Callable[[str], None] = print, **train_kwargs) -> StageResult:
    """Build data and models for ``stage``, (re)load its checkpoint, train, save.

    The checkpoint is ``<checkpoint_dir>/<stage>.pt``. An existing one is
    continued with ``resume=True``, replaced with ``overwrite=True``, and
    otherwise left alone with an error, so no finished work is lost by a
    repeated command.

    Launched by ``torchrun --nproc_per_node=N``, each of the N processes
    trains on its share of every batch (``data.batch_size`` is the global
    batch, split evenly) with DistributedDataParallel; rank 0 alone logs,
    shows progress and writes the checkpoint (see :mod:`colorlib.distributed`).
    """
    model_cfg = ModelConfig(arch=STAGE_ARCH[stage], size=data.size, num_filters=num_filters)
    cfg = TrainConfig(stage=stage, epochs=epochs, seed=seed, max_steps=max_steps,
                      save_every=save_every, **train_kwargs)
    ckpt_path = checkpoint_path(checkpoint_dir, stage)
    if ckpt_path.exists() and not (resume or overwrite):
        raise FileExistsError(f"{ckpt_path}: a checkpoint already exists; pass --resume to "
                              "continue it or --overwrite to start again")
    env, device = distributed.setup(resolve_device(device))
    if data.batch_size % env.world:
        raise ValueError(f"--batch-size {data.batch_size} cannot be split evenly over "
                         f"{env.world} processes; use a multiple of {env.world}")
    if not env.is_main:
        log, progress = (lambda *_: None), False
        distributed.barrier(env)  # rank 0 builds or downloads the data set first
    found, val_paths = resolve_source(data)
    if env.is_main:
        distributed.barrier(env)
    train_paths = drop_unreadable(found, data.on_error)
    val_paths = drop_unreadable(val_paths, data.on_error)
    if not train_paths:
        raise ValueError(f"{data.source}: none of the training images can be read "
                         "(each one is named above)")
    train_ds = ColorizationDataset(train_paths, data.size, lab=False)
    loader = make_loader(train_ds, data.batch_size // env.world, train=True, seed=seed,
                         num_workers=data.num_workers, rank=env.rank, world=env.world,
                         pin_memory=device.type == "cuda")
    resumed_from = None
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, arch=model_cfg.arch, stage=stage)
        trainer = Trainer(model_cfg, cfg, device, weights=None)
        trainer.load_state_dict(ckpt, source=ckpt_path)
        resumed_from = {"epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch,
                        "step": trainer.step}
        log(f"Resumed {stage} from {ckpt_path}: epoch {trainer.epoch + 1}, "
            f"batch {trainer.batch_in_epoch}, step {trainer.step}")
    else:
        if resume:
            log(f"No checkpoint at {ckpt_path} yet: starting {stage} from the beginning")
        trainer = Trainer(model_cfg, cfg, device, weights=weights, init=init)
    trainer.distribute(env)
    val_batch = None
    if val_paths:
        val_ds = ColorizationDataset(val_paths[: data.batch_size], data.size, lab=False)
        val_batch = next(iter(make_loader(val_ds, len(val_ds), train=False)))
        if "rgb" not in val_batch:  # no validation image is readable
            prepare_batch(val_batch, "cpu", on_error=data.on_error)  # reports each file
            val_batch = None
    trainer.fit(loader, checkpoint=ckpt_path, val_batch=val_batch, on_epoch_end=on_epoch_end,
                val_image_dir=val_image_dir, val_every=val_every,
                progress=progress, on_error=data.on_error)
    if not ckpt_path.exists():  # e.g. zero steps to run
        trainer.save(ckpt_path)
    distributed.teardown(env)
    return StageResult(trainer, ckpt_path, resumed_from, list(val_paths))
