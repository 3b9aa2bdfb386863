"""The stage runner: one call from a :class:`~colorlib.training.config.RunConfig` to a trained,
saved stage.

:func:`train_stage` finds the photos, takes the checkpoint's lock, resumes or starts the
networks, joins a data-parallel run when ``torchrun`` started it, and hands the rest to the
loop (:class:`colorlib.training.loop.Trainer`). The CLI and the notebooks call it.
Taught in notebook 03.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from colorlib.data.loading import ColorizationDataset, make_loader, prepare_batch
from colorlib.data.sources import DataConfig, drop_unreadable, resolve_source, warn_if_mostly_grey
from colorlib.models.stages import get_stage
from colorlib.system.device import resolve_device
from colorlib.training import distributed
from colorlib.training.checkpoint import init_checkpoint, load_checkpoint
from colorlib.training.config import RunConfig, TrainConfig
from colorlib.training.loop import Callback, Trainer
from colorlib.training.run_safety import RunLock, check_resume, run_record


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
    return resolve_source(run.data, exclude=[Path(run.checkpoint_dir)])


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
    from colorlib.models.classify import measure_class_prior

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
    shows progress and writes the checkpoint (see :mod:`colorlib.training.distributed`).

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
    from colorlib.training.checkpoint import checkpoint_kind

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

    The estimate (:func:`colorlib.training.cost.training_memory`) counts weights,
    gradients, Adam's moments and each photo's activations; it is compared
    with the device's *total* memory, so only the impossible is refused.
    """
    from colorlib.training.cost import device_memory_bytes, training_memory

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
        trainer = Trainer.build(model_cfg, cfg, device, weights=None, dist=env)
        trainer.load_state_dict(ckpt, source=ckpt_path)
        del ckpt
        st = trainer.state
        resumed_from = {"epoch": st.epoch, "batch_in_epoch": st.batch_in_epoch, "step": st.step}
        log(f"Resumed {cfg.stage} from {ckpt_path}: epoch {st.epoch + 1}, "
            f"batch {st.batch_in_epoch}, step {st.step}")
    else:
        if run.resume:
            log(f"No checkpoint at {ckpt_path} yet: starting {cfg.stage} from the beginning")
        trainer = Trainer.build(model_cfg, cfg, device, weights=run.weights, init=run.init,
                                dist=env)
        if get_stage(cfg.stage).classes:  # once per run: a resume reads them from the checkpoint
            _measure_class_weights(trainer, loader.dataset, log)
    trainer.run_info = run_record(run, resumed=started)
    trainer.policy.prepare_process()
    distributed.seed_rank(env, cfg.seed, trainer.step)  # each rank its own dropout masks
    trainer.fit(loader, checkpoint=ckpt_path, val_batch=_validation_batch(val_paths, run.data),
                callbacks=callbacks, progress=progress, on_error=run.data.on_error)
    if not ckpt_path.exists():  # e.g. zero steps to run
        trainer.save(ckpt_path)
    return StageResult(trainer, ckpt_path, resumed_from, list(val_paths))
