"""Where and how the networks run: device, mixed precision, memory layout.

One policy for training and inference, so each of these is decided here and
nowhere else:

* the **device**: CUDA when available, else the CPU (:func:`resolve_device`);
* the **autocast dtype** (:func:`autocast_dtype`): bf16 where the hardware
  does it natively (GPUs from the A100/L4 generation on, CPUs with AMX or
  AVX512-BF16), fp16 on older GPUs such as Colab's and Kaggle's T4, fp32
  otherwise. Training asks for it on GPUs by default and on CPUs only with
  ``cpu_amp`` (it changes results slightly); inference only with ``amp``;
* the **gradient scaler**: only fp16 needs one (its small range underflows
  gradients); bf16 and fp32 train without (:class:`MixedPrecision`);
* the **memory layout**: channels_last (NHWC) on GPUs, with bf16, and for
  the ResNet18 U-Net on the CPU; the pix2pix U-Net in fp32 on the CPU keeps
  NCHW, which is as fast or faster for it (``benchmarks/RESULTS.md``, "Other
  measurements");
* the process-wide **malloc settings** on the CPU (:mod:`colorlib.system.malloc`),
  applied by entry points (the CLI, ``train_stage``, the notebooks'
  settings), never by a constructor.

Mentioned in notebook 03 (mixed precision on a GPU); not taught in detail.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch
from torch import nn


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


@functools.lru_cache(maxsize=None)
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


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The mixed-precision dtype for ``device`` if ``amp`` is asked for; None means fp32."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(device_type: str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype``, or nothing at all for fp32 (``dtype=None``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def same_layout(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` in ``like``'s memory layout (channels_last or not); values untouched.

    ``torch.cat`` returns NCHW when its inputs' layouts disagree, and a
    1-channel tensor counts as both, so concatenating the L channel to a
    channels_last ab quietly gives NCHW: without this a network that runs
    channels_last would convert that input (and its gradient) every call.
    """
    if like.dim() == 4 and not like.is_contiguous() \
            and like.is_contiguous(memory_format=torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x


class MixedPrecision:
    """autocast, plus gradient scaling where fp16 needs it (bf16 and fp32 need none).

    With ``dtype=None`` (fp32, the default) every method is the plain thing:
    :meth:`backward` is ``loss.backward()``, :meth:`step` is
    ``optimizer.step()``. With fp16 a ``GradScaler`` multiplies the loss
    before backward (so small gradients do not underflow to zero), unscales
    the gradients in :meth:`step` and skips steps whose gradients overflowed.
    """

    def __init__(self, device_type: str = "cpu", dtype: torch.dtype | None = None):
        self.device_type, self.dtype = device_type, dtype
        self.scaler = torch.amp.GradScaler(device_type) if dtype == torch.float16 else None

    def autocast(self):
        return autocast(self.device_type, self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per training step, after the last :meth:`step`: adapt the fp16 loss scale."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        # {} comes from a run without a scaler (fp32/bf16): an fp16 run then starts a fresh scale.
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


@dataclass(frozen=True)
class DevicePolicy:
    """Device, autocast dtype and memory layout, decided once per run."""

    device: torch.device
    amp_dtype: torch.dtype | None = None  # None: fp32
    channels_last: bool = False

    @classmethod
    def for_training(cls, device: str | torch.device | None = None, arch: str = "pix2pix_unet",
                     amp: bool = True, cpu_amp: bool = False) -> "DevicePolicy":
        """``amp``: mixed precision on GPUs (default on); ``cpu_amp``: bf16 on CPUs that have it.

        channels_last: GPUs and bf16 CPU kernels (oneDNN) want NHWC. In fp32 on
        a CPU it pays for the ResNet18 U-Net but not for the pix2pix U-Net
        (``benchmarks/RESULTS.md``, "Other measurements").
        """
        dev = resolve_device(device)
        dtype = autocast_dtype(dev, cpu_amp if dev.type == "cpu" else amp)
        fast_nhwc = dev.type == "cuda" or dtype is not None or arch == "resnet18_unet"
        return cls(dev, dtype, fast_nhwc)

    @classmethod
    def for_inference(cls, device: str | torch.device | None = None,
                      amp: bool = False) -> "DevicePolicy":
        """Inference runs channels_last everywhere (quicker per photo also on a CPU at batch 1)."""
        dev = resolve_device(device)
        return cls(dev, autocast_dtype(dev, amp), channels_last=True)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        return autocast(self.device.type, self.amp_dtype)

    def mixed_precision(self) -> MixedPrecision:
        """What a training step needs for this dtype (a gradient scaler only for fp16)."""
        return MixedPrecision(self.device.type, self.amp_dtype)

    def place(self, net: nn.Module | None) -> nn.Module | None:
        """Move ``net`` to the device, in the policy's memory layout."""
        return None if net is None else net.to(self.device, memory_format=self.memory_format)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the networks' memory layout (a no-op when it already is)."""
        return x.contiguous(memory_format=self.memory_format) if self.channels_last else x

    def prepare_process(self) -> bool:
        """Process-wide settings for this device; for entry points only (CLI, train_stage, notebooks).

        On the CPU: let glibc's malloc reuse freed large blocks (colorlib.system.malloc).
        On CUDA: ``cudnn.benchmark``, since training batches and the network's
        input at inference (``size`` x ``size``, batches of up to 16) keep
        their shapes, so cuDNN's timing of candidate kernels on the first
        batch pays off on every later one.
        Returns True if anything is in force.
        """
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            return True
        if self.device.type != "cpu":
            return False
        from colorlib.system.malloc import keep_freed_memory

        return keep_freed_memory()
