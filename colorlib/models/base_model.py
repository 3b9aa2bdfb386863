"""What every training algorithm of the series shares, and nothing more.

A model here is a generator G: L -> ab with its Adam optimiser, trained one step at a time.
:class:`BaseModel` holds what the three algorithms have in common, as ``BaseModel`` does in
pytorch-CycleGAN-and-pix2pix: the optimiser, mixed precision, the loss check, prediction and
the state a checkpoint stores. Each algorithm is a small subclass that writes the paper's
methods ``set_input``, ``forward``, ``backward_G`` and ``optimize_parameters``:

* :class:`colorlib.models.pix2pix.Pix2Pix`: the conditional GAN (adds D and ``backward_D``);
* :class:`colorlib.models.pretrain.L1Pretraining`: the generator alone, plain L1;
* :class:`colorlib.models.classify.ClassifyTraining`: colour classes, rebalanced cross-entropy.

Where the networks run is decided outside: the device and mixed precision by
:mod:`colorlib.system.device` (``amp``), a data-parallel run by
:mod:`colorlib.training.distributed`, which passes in a :class:`Replication` (how each network
is wrapped, and a loss check all ranks agree on). Nothing is patched onto a model afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from colorlib.models.stages import AdamSettings
from colorlib.system.device import MixedPrecision

__all__ = ["BaseModel", "NonFiniteLossError", "Replication", "check_finite",
           "make_adam", "set_requires_grad", "unwrap"]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped before the bad update."""


def check_finite(name: str, loss: torch.Tensor) -> None:
    """Stop before an update that would spoil the weights with NaN or infinity."""
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"{name} is {loss.item()}")


@dataclass(frozen=True)
class Replication:
    """How a model takes part in a data-parallel run: made by
    :func:`colorlib.training.distributed.replication`, passed to the model's constructor.

    ``wrap`` puts a network under DistributedDataParallel; ``check_finite`` is a loss check
    that every rank decides together, so a NaN on one rank stops all of them at once.
    """

    wrap: Callable[[nn.Module], nn.Module]
    check_finite: Callable[[str, torch.Tensor], None]


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused (one kernel for all tensors) update where this PyTorch has it.

    The fused update computes the same formula as the per-tensor loop, quicker for the
    ResNet18 U-Net's 31M parameters on a CPU (``benchmarks/RESULTS.md``, "Other measurements").
    """
    params = list(params)
    if params and _fused_adam_runs(params[0].device):
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(params, lr=lr, betas=betas)


_FUSED_ADAM: dict[str, bool] = {}


def _fused_adam_runs(device: torch.device) -> bool:
    """Whether a fused Adam step runs on ``device`` here (tried once per device type).

    PyTorch 2.3 accepts ``fused=True`` for CPU tensors and only fails at the first step (its
    fused kernel exists on CUDA only; the CPU's came in 2.4), so constructing the optimiser
    proves nothing: one step on a scratch tensor does.
    """
    if device.type not in _FUSED_ADAM:
        try:
            probe = torch.zeros(1, device=device, requires_grad=True)
            opt = torch.optim.Adam([probe], fused=True)
            probe.grad = torch.ones_like(probe)
            opt.step()
            _FUSED_ADAM[device.type] = True
        except (RuntimeError, TypeError, ValueError, NotImplementedError):
            _FUSED_ADAM[device.type] = False
    return _FUSED_ADAM[device.type]


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """Restore an optimiser's moments, keeping this machine's choice of the fused kernel.

    A saved state records ``fused=True`` where it was made; restored as is on a machine
    without a fused kernel for the device (PyTorch 2.3 on a CPU), the first step would fail.
    """
    fused = [group.get("fused") for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, flag in zip(opt.param_groups, fused):
        group["fused"] = flag


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every weight of ``net``."""
    for p in net.parameters():
        p.requires_grad_(flag)


def unwrap(net: nn.Module | None) -> nn.Module | None:
    """The network itself, also when a data-parallel wrapper holds it (``.module``)."""
    return getattr(net, "module", net)


class BaseModel:
    """A generator and its Adam, trained one :meth:`train_step` at a time.

    Subclasses write ``forward`` and ``backward_G`` (``optimize_parameters`` too where one
    update is more than G's step, as in pix2pix) and name the losses they record in
    ``loss_names``. ``adam``: learning rate and betas
    (:class:`colorlib.models.stages.AdamSettings`); ``amp``: mixed precision
    (:class:`colorlib.system.device.MixedPrecision`, fp32 by default); ``replication``:
    data-parallel training (None: one process).
    """

    loss_names: tuple[str, ...] = ()

    def __init__(self, net_G: nn.Module, *, adam: AdamSettings = AdamSettings(),
                 amp: MixedPrecision | None = None, replication: Replication | None = None):
        self.replication = replication
        self.net_G = self._replicated(net_G)
        self.opt_G = make_adam(net_G.parameters(), adam.lr_g, adam.betas_g)
        self.amp = amp if amp is not None else MixedPrecision()
        self.check_finite = replication.check_finite if replication else check_finite

    def _replicated(self, net: nn.Module) -> nn.Module:
        return self.replication.wrap(net) if self.replication else net

    # ------------------------------------------------------------ one step
    def set_input(self, L: torch.Tensor, ab: torch.Tensor) -> None:
        self.L, self.ab = L, ab

    def forward(self) -> None:
        raise NotImplementedError  # the algorithm's: G's output for self.L

    def backward_G(self) -> None:
        raise NotImplementedError  # the algorithm's: G's loss and its gradients

    def optimize_parameters(self) -> None:
        """One update of G alone: its output, its loss's gradients, an Adam step.

        The step of every algorithm with a generator only (L1 pretraining, colour classes);
        pix2pix, with a discriminator to update first, writes its own.
        """
        self.forward()
        self.opt_G.zero_grad(set_to_none=True)
        self.backward_G()
        self.amp.step(self.opt_G)
        self.amp.update()

    def train_step(self, L: torch.Tensor, ab: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch (normalised L and ab); returns its losses."""
        self.net_G.train()
        self.set_input(L, ab)
        self.optimize_parameters()
        return {name: getattr(self, name).item() for name in self.loss_names}

    @torch.no_grad()
    def predict(self, L: torch.Tensor) -> torch.Tensor:
        """ab for a batch of normalised L, in eval mode (BatchNorm running stats), as float32."""
        net = self.generator
        net.eval()
        with self.amp.autocast():
            out = net(L.to(next(net.parameters()).device)).float()
        net.train()
        return out

    # ------------------------------------------------------------ state I/O
    @property
    def generator(self) -> nn.Module:
        """G itself (not a data-parallel wrapper): what checkpoints store."""
        return unwrap(self.net_G)

    @property
    def discriminator(self) -> nn.Module | None:
        return None

    def state_dict(self) -> dict:
        """Weights, optimiser moments and the fp16 loss scale (checkpoint keys)."""
        return {"generator": self.generator.state_dict(), "discriminator": None,
                "opt_G": self.opt_G.state_dict(), "opt_D": None,
                "scaler": self.amp.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        load_optimizer(self.opt_G, state["opt_G"])
        self.amp.load_state_dict(state.get("scaler") or {})
