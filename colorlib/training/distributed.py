"""Data-parallel training with ``torchrun``: one process per GPU (or CPU).

``torchrun --nproc_per_node=2 -m colorlib train ...`` starts two processes
and tells each its place through the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``). :func:`setup` reads that, joins the process group (NCCL
on GPUs, gloo on the CPU) and says which device the process owns. Each
rank then trains on every world-th image of each global batch
(:class:`colorlib.data.loading.EpochSampler`), DistributedDataParallel averages the
gradients, and only rank 0 writes checkpoints, logs and progress bars.

BatchNorm statistics stay per rank (SyncBatchNorm exists only for GPUs and
costs one all-reduce per BatchNorm layer per forward pass): with a global
batch of 16 on two GPUs each rank normalises over its own 8 images. That is
the one way a data-parallel run differs from a single-process run over the
same global batch; ``tests/test_ddp.py`` measures how much. Every rank
builds the same initial weights from the run's seed, then draws its own
dropout masks (:func:`seed_rank`, as nanoGPT offsets its seed by the rank).
Each rank keeps its own decoded copy of the training photos in memory.

A run never hangs on one rank's trouble: a decision that one rank alone
could make (a loss that is NaN or infinite, a share of a batch with no
readable image) is agreed with an all-reduce, so every rank stops at the
same step with the same one-line message (:func:`finite_check`,
:func:`stop_if_any`), and ``train_stage`` leaves the process group on
every way out.

Not taught in a notebook; README, section Several GPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from colorlib.models.base_model import NonFiniteLossError, Replication


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_here: bool = False  # this call created the process group

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_os() -> DistEnv:
    """The launcher's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (one process if unset)."""
    try:
        return DistEnv(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers "
                         f"(got {os.environ.get('RANK')!r}, {os.environ.get('WORLD_SIZE')!r}, "
                         f"{os.environ.get('LOCAL_RANK')!r})") from None


def setup(device: torch.device) -> tuple[DistEnv, torch.device]:
    """Join the process group if launched by ``torchrun``; return (env, this rank's device).

    On CUDA each rank takes GPU ``LOCAL_RANK``. A process group that already
    exists (a notebook or test that made its own) is used as it is.
    """
    import torch.distributed as dist

    env = env_from_os()
    if dist.is_available() and dist.is_initialized():
        env = DistEnv(dist.get_rank(), dist.get_world_size(), env.local_rank)
    elif env.enabled:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        if device.type == "cuda":
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        env = DistEnv(env.rank, env.world, env.local_rank, started_here=True)
    if env.enabled and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
    return env, device


def teardown(env: DistEnv) -> None:
    """Leave the process group if :func:`setup` created it."""
    import torch.distributed as dist

    if env.started_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.enabled:
        import torch.distributed as dist

        dist.barrier()


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``net``, set up for the GAN loop.

    ``broadcast_buffers=False``: the discriminator runs several forward
    passes per step, and re-broadcasting BatchNorm buffers between them
    would modify tensors autograd still needs; buffers stay per rank.
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # PyTorch renamed the switch; the new one still syncs buffers once at start.
    new_name = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_buffer_sync = {"forward_sync_buffers" if new_name else "broadcast_buffers": False}
    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None,
        gradient_as_bucket_view=True, **no_buffer_sync)


class DataParallelWhileTrained(nn.Module):
    """``net`` under DistributedDataParallel while it learns, ``net`` itself while frozen.

    pix2pix freezes the discriminator (``requires_grad=False``) while the
    generator learns from its verdict. A DDP forward would then wait for
    gradients of D's weights that never come, so a frozen network is called
    directly. ``.module`` is the network itself (what checkpoints store).
    """

    def __init__(self, net: nn.Module, device: torch.device):
        super().__init__()
        self.module = net
        self.ddp = wrap(net, device)

    def forward(self, *args, **kwargs):
        learning = any(p.requires_grad for p in self.module.parameters())
        return (self.ddp if learning else self.module)(*args, **kwargs)


def replication(env: DistEnv, device: torch.device) -> Replication | None:
    """How a model trains as one rank of this run (None: a one-process run).

    Passed to the model's constructor (:class:`colorlib.models.base_model.Replication`): its
    networks get wrappers that average gradients over the ranks, while ``model.generator`` /
    ``model.discriminator`` stay the plain modules, so checkpoints look exactly like
    single-process ones; its loss checks are agreed over the ranks (:func:`finite_check`).
    """
    if not env.enabled:
        return None
    return Replication(wrap=lambda net: DataParallelWhileTrained(net, device),
                       check_finite=finite_check(env, device))


def _codes_of_all_ranks(env: DistEnv, device: torch.device, code: int) -> list[int]:
    """Every rank's ``code`` (0: all well), gathered with one all-reduce."""
    import torch.distributed as dist

    t = torch.zeros(env.world, dtype=torch.int32, device=device)
    t[env.rank] = code
    dist.all_reduce(t)
    return t.tolist()


def stop_if_any(env: DistEnv, device: torch.device, trouble: bool, error) -> None:
    """Raise ``error(ranks)`` on every rank if ``trouble`` is true on any of them.

    ``error`` gets the list of troubled ranks and returns the exception;
    every rank raises the same one, at the same point, so no rank is left
    waiting in a collective for the others.
    """
    if not env.enabled:
        if trouble:
            raise error([env.rank])
        return
    ranks = [r for r, c in enumerate(_codes_of_all_ranks(env, device, int(trouble))) if c]
    if ranks:
        raise error(ranks)


def any_rank(env: DistEnv, device: torch.device, flag: bool) -> bool:
    """``flag`` of any rank, the same answer on every rank (one all-reduce; alone: ``flag``)."""
    if not env.enabled:
        return flag
    return any(_codes_of_all_ranks(env, device, int(flag)))


_NON_FINITE = {1: "NaN", 2: "infinite"}


def finite_check(env: DistEnv, device: torch.device):
    """A loss check for a training algorithm that all ranks decide together.

    Each rank's verdict (finite, NaN, infinite) is all-reduced before any
    backward pass, so a NaN on one rank stops every rank before the update
    (a rank that stopped alone would leave the others waiting in DDP's
    gradient all-reduce until the process-group timeout).
    """
    def check(name: str, loss: torch.Tensor) -> None:
        value = loss.detach()
        code = 0 if bool(torch.isfinite(value)) else 1 if bool(torch.isnan(value)) else 2
        codes = _codes_of_all_ranks(env, device, code)
        bad = [f"rank {r} ({_NON_FINITE[c]})" for r, c in enumerate(codes) if c]
        if bad:
            raise NonFiniteLossError(f"{name} is not finite on {', '.join(bad)} of "
                                     f"{env.world} ranks; every rank stopped")
    return check


def seed_rank(env: DistEnv, seed: int, step: int = 0) -> None:
    """Give each rank after the first its own random stream (dropout), reproducibly.

    Called after the networks are built (identical weights on every rank)
    and after a resume (which restores rank 0's saved state on every rank).
    Rank 0 keeps its stream, so a one-process run and rank 0 draw alike.
    """
    if env.enabled and env.rank > 0:
        torch.manual_seed(seed + 1_000_003 * env.rank + step)


def mean_over_ranks(values: dict[str, float], env: DistEnv,
                    device: torch.device) -> dict[str, float]:
    """Average logged numbers over ranks, so the history describes the global batch."""
    if not env.enabled or not values:
        return values
    import torch.distributed as dist

    keys = list(values)  # same order on every rank: the same code made the dict
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: v / env.world for k, v in zip(keys, t.tolist())}
