"""What a full training run costs before you start it: time per epoch and disk per checkpoint.

Three kinds of number, and each says which kind it is:

* **FLOPs per training image** are *counted*: one training step of the real
  networks runs on PyTorch's ``meta`` device (shapes only, no arithmetic,
  so it takes a second even for 256-px images) under
  :class:`torch.utils.flop_counter.FlopCounterMode`, which adds up the
  multiply-adds of every convolution and matrix product, forward and
  backward. Element-wise work (BatchNorm, activations, the optimiser) is
  not counted; on a GPU it is limited by memory bandwidth, which is one
  reason why the utilisation below is far from 100 %.
* **Minutes per epoch on a CPU** are *derived from measured throughput*:
  ``benchmarks/results.json`` holds images per second for a ResNet18 U-Net
  L1 step and GAN step at 128 px (batch 16, two threads, float32, on the
  2-core Xeon described in ``benchmarks/RESULTS.md``). For the full run's
  256 px they are scaled by the ratio of counted FLOPs; the pix2pix
  baseline was not benchmarked, so it gets the FLOP rate of the measured
  GAN step.
* **Minutes per epoch on a Colab T4** are *derived, not measured*: counted
  FLOPs divided by an assumed share (:data:`T4_ASSUMED_UTILISATION`) of
  the T4's published fp16 tensor-core peak (colorlib trains in float16 on
  a T4, which has no fast bfloat16).
* **Checkpoint sizes** are *measured*: a trainer of the full-run shape is
  built, its optimiser state filled in, and the exact dictionary a
  checkpoint holds is serialised with ``torch.save`` into a byte counter.
  With the prepared copy of the COCO sample (bounded by the size of fastai's
  download, from fastai's own size check) they give the Drive space the
  series needs (:func:`drive_space`).
"""
from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# Published peak of an NVIDIA T4 (datasheet): 65 TFLOPS fp16 with fp32 accumulate on
# its tensor cores, 8.1 TFLOPS in plain fp32.
T4_PEAK_FP16_TFLOPS = 65.0
# An assumption, not a measurement: convolution networks of this size in PyTorch mixed
# precision typically keep a T4's tensor cores 15-40 % busy (memory-bound layers, small
# channel counts at full resolution, kernel launches, a 70 W power limit).
T4_ASSUMED_UTILISATION = 0.25
T4_UTILISATION_RANGE = (0.15, 0.40)

# Measured on a 2-core Intel Xeon VM, batch 16, 2 torch threads, float32, 128 px:
# benchmarks/results.json ("pretrain_step" and "gan_step", colorlib column, medians),
# run of 2026-11-22. tests/test_cost.py checks these against the file.
CPU_MEASURED_IMAGES_PER_S = {"pretrain": 5.348, "gan": 4.256}
CPU_MEASURED_SIZE = 128
CPU_MEASURED_WHERE = "2-core Intel Xeon VM, 2 threads, fp32 (benchmarks/results.json)"

# The full run of the series: the tutorial's 8,000 COCO training photos at 256 px.
FULL_RUN_IMAGES = 8000
FULL_RUN_SIZE = 256
FULL_RUN_EPOCHS = {"baseline": 100, "pretrain": 20, "gan": 20}
STAGE_TITLES = {"baseline": "pix2pix baseline (03)", "pretrain": "ResNet18 U-Net, L1 (04)",
                "gan": "ResNet18 U-Net, GAN fine-tuning (05)"}


def without_type_casts(net: nn.Module) -> nn.Module:
    """``net`` with fastai's ``ToTensorBase`` layers replaced by ``nn.Identity`` (in place).

    fastai's DynamicUnet ends in ``ToTensorBase``, which only changes the
    output's Python class (no arithmetic, so no FLOPs). Under a dispatch mode
    such as ``FlopCounterMode``, torch 2.3 (our declared floor) refuses that
    re-typing ("the raw Tensor object is already associated to a python
    object"), so the copy we count goes without it.
    """
    from fastai.layers import ToTensorBase

    for name, child in net.named_children():
        if isinstance(child, ToTensorBase):
            setattr(net, name, nn.Identity())
        else:
            without_type_casts(child)
    return net


def _networks(stage: str, size: int, num_filters: int, device: str | torch.device = "meta"):
    """The stage's generator (and discriminator, if it has one) on ``device``."""
    from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
    from colorlib.models.stages import get_stage

    cfg = ModelConfig(arch=get_stage(stage).arch, size=size, num_filters=num_filters)
    net_G = without_type_casts(build_generator(cfg, None)).to(device)
    net_D = build_discriminator(cfg).to(device) if get_stage(stage).adversarial else None
    return net_G, net_D


@functools.lru_cache(maxsize=None)
def training_flops_per_image(stage: str, size: int = FULL_RUN_SIZE, num_filters: int = 64) -> float:
    """FLOPs (counted, forward + backward) of one training step, per image.

    The step follows the training algorithm, :class:`colorlib.models.pix2pix.Pix2Pix`
    (``tests/test_cost.py`` checks the count against its real step): L1
    pretraining is one generator pass and its backward; a GAN step adds the
    discriminator on a detached fake and on a real pair with a backward for
    its own weights, then the discriminator (frozen) on the fake again with a
    backward through it into the generator.
    """
    from torch.utils.flop_counter import FlopCounterMode

    net_G, net_D = _networks(stage, size, num_filters)
    L = torch.empty(1, 1, size, size, device="meta")
    ab = torch.empty(1, 2, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        fake = net_G(L)
        if net_D is None:
            (fake - ab).abs().mean().backward()
        else:
            loss_D = net_D(torch.cat([L, fake.detach()], 1)).mean() \
                + net_D(torch.cat([L, ab], 1)).mean()
            loss_D.backward()
            for p in net_D.parameters():
                p.requires_grad_(False)
            (net_D(torch.cat([L, fake], 1)).mean() + (fake - ab).abs().mean()).backward()
    return float(counter.get_total_flops())


class _ByteCounter(io.RawIOBase):
    """A write-only file that keeps nothing but the number of bytes written."""

    def __init__(self):
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.count += n
        return n


def serialised_bytes(payload: dict) -> int:
    """How many bytes ``torch.save(payload, file)`` writes (nothing is kept in memory)."""
    sink = _ByteCounter()
    torch.save(payload, sink)
    return sink.count


def checkpoint_bytes(stage: str, size: int = FULL_RUN_SIZE, num_filters: int = 64) -> int:
    """Size of a ``<stage>.pt`` checkpoint of this shape, measured by serialising one.

    Weights, BatchNorm statistics and both Adam moments per weight (filled in
    by one optimiser step with zero gradients, which leaves the weights as
    they are): the training algorithm's own state
    (:meth:`colorlib.models.base_model.BaseModel.state_dict`), which is nearly all of a
    checkpoint. The settings, the random state and the loss history (a few
    numbers per step) that a real run adds are small next to it.
    """
    from colorlib.models.algorithms import build_model
    from colorlib.training.checkpoint import FORMAT, FORMAT_VERSION

    net_G, net_D = _networks(stage, size, num_filters, device="cpu")
    model = build_model(stage, net_G, net_D)
    optimisers = [model.opt_G] + ([model.opt_D] if net_D is not None else [])
    for opt in optimisers:
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return serialised_bytes({"format": FORMAT, "format_version": FORMAT_VERSION,
                             **model.state_dict()})


@dataclass
class StageCost:
    """The cost of one stage of the full run (see the module docstring for each kind)."""

    stage: str
    epochs: int
    images_per_epoch: int
    gflop_per_image: float  # counted
    t4_minutes_per_epoch: float  # derived from FLOPs and an assumed T4 utilisation
    t4_minutes_range: tuple[float, float]
    cpu_minutes_per_epoch: float  # derived from measured CPU throughput
    checkpoint_mb: float | None  # measured by serialising a checkpoint (None: not asked)

    @property
    def t4_hours_total(self) -> float:
        return self.t4_minutes_per_epoch * self.epochs / 60

    @property
    def cpu_hours_total(self) -> float:
        return self.cpu_minutes_per_epoch * self.epochs / 60


def _minutes(images: int, flops_per_image: float, flops_per_second: float) -> float:
    return images * flops_per_image / flops_per_second / 60


def cpu_flop_rate(stage: str) -> float:
    """FLOP/s the measured CPU benchmark achieved for ``stage`` (the GAN step's for baseline)."""
    measured = stage if stage in CPU_MEASURED_IMAGES_PER_S else "gan"
    return (CPU_MEASURED_IMAGES_PER_S[measured]
            * training_flops_per_image(measured, CPU_MEASURED_SIZE))


def stage_cost(stage: str, images: int = FULL_RUN_IMAGES, size: int = FULL_RUN_SIZE,
               epochs: int | None = None, num_filters: int = 64,
               measure_checkpoint: bool = True) -> StageCost:
    """Minutes per epoch on a T4 and on the benchmark CPU, and the checkpoint's size."""
    flops = training_flops_per_image(stage, size, num_filters)
    t4 = T4_PEAK_FP16_TFLOPS * 1e12
    lo, hi = T4_UTILISATION_RANGE
    return StageCost(
        stage=stage, epochs=FULL_RUN_EPOCHS[stage] if epochs is None else epochs,
        images_per_epoch=images, gflop_per_image=flops / 1e9,
        t4_minutes_per_epoch=_minutes(images, flops, t4 * T4_ASSUMED_UTILISATION),
        t4_minutes_range=(_minutes(images, flops, t4 * hi), _minutes(images, flops, t4 * lo)),
        cpu_minutes_per_epoch=_minutes(images, flops, cpu_flop_rate(stage)),
        checkpoint_mb=(checkpoint_bytes(stage, size, num_filters) / 1e6
                       if measure_checkpoint else None))


def coco_download_bytes() -> int | None:
    """Bytes of fastai's COCO sample download, from fastai's own size check (None if unknown)."""
    import ast
    import importlib.util
    import warnings

    try:
        with warnings.catch_warnings():  # fastai's import-time deprecation notices
            warnings.simplefilter("ignore", FutureWarning)
            from fastai.data.external import URLs
        # fastai.data's download_checks.py: {url: (size in bytes, md5)}, read as fastdownload does
        folder = importlib.util.find_spec("fastai.data").submodule_search_locations[0]
        checks = ast.literal_eval((Path(folder) / "download_checks.py").read_text())
        return int(checks[URLs.COCO_SAMPLE][0])
    except (ImportError, OSError, SyntaxError, KeyError, TypeError, ValueError, IndexError):
        return None


def drive_space(costs: list[StageCost]) -> list[tuple[str, float | None, str]]:
    """(file in the store, MB, how the number was obtained) for what the series keeps on Drive.

    The store (:func:`colorlib.teaching.notebook.persist`: ``MyDrive/colorlib`` in
    Colab, the notebook's output on Kaggle) holds the prepared COCO copy and
    one checkpoint per stage. The checkpoints are the ones ``costs``
    measured (:func:`stage_cost`, :func:`checkpoint_bytes`); the prepared
    copy holds 10,000 of the sample's photos, unchanged, so the size of the
    whole download (fastai's size check) bounds it from above; its exact size
    is printed when it is written (:func:`colorlib.data.sources.coco_sample_paths`).
    """
    from colorlib.data.sources import COCO_CACHE_NAME
    from colorlib.training.checkpoint import checkpoint_path

    download = coco_download_bytes()
    rows = [(f"data/{COCO_CACHE_NAME}", None if download is None else download / 1e6,
             "at most: it holds 10,000 of the photos of fastai's download, whose size this is")]
    for c in costs:
        mb = c.checkpoint_mb if c.checkpoint_mb is not None else \
            checkpoint_bytes(c.stage) / 1e6
        rows.append((checkpoint_path("checkpoints", c.stage).as_posix(), mb,
                     "measured: the checkpoint serialised"))
    return rows


def drive_table(rows: list[tuple[str, float | None, str]]) -> str:
    """A markdown table of :func:`drive_space`, with the total."""
    lines = ["| file in the store | MB | how we know |", "|---|---:|---|"]
    for name, mb, how in rows:
        lines.append(f"| `{name}` | {'?' if mb is None else f'{mb:,.0f}'} | {how} |")
    known = [mb for _, mb, _ in rows if mb is not None]
    lines.append(f"| **all of it** | **{sum(known) / 1e3:.1f} GB** | at most; plus figures, "
                 "validation grids and your own photos (notebook 06) |")
    return "\n".join(lines)


def cost_table(costs: list[StageCost]) -> str:
    """A markdown table of :func:`stage_cost` results, with a line on what each column is."""
    rows = ["| stage | epochs | GFLOP per training image (counted) | T4 min/epoch (derived) "
            "| CPU min/epoch (derived) | whole stage: T4 / CPU | checkpoint MB (measured) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for c in costs:
        lo, hi = c.t4_minutes_range
        size = "" if c.checkpoint_mb is None else f"{c.checkpoint_mb:.0f}"
        rows.append(f"| {STAGE_TITLES.get(c.stage, c.stage)} | {c.epochs} | {c.gflop_per_image:.0f} "
                    f"| {c.t4_minutes_per_epoch:.1f} ({lo:.1f}-{hi:.1f}) "
                    f"| {c.cpu_minutes_per_epoch:.0f} "
                    f"| {c.t4_hours_total:.1f} h / {c.cpu_hours_total / 24:.1f} days | {size} |")
    rows.append("")
    rows.append(f"T4: counted FLOPs at {T4_ASSUMED_UTILISATION:.0%} (range "
                f"{T4_UTILISATION_RANGE[0]:.0%}-{T4_UTILISATION_RANGE[1]:.0%}) of the published "
                f"{T4_PEAK_FP16_TFLOPS:g} TFLOPS fp16 peak: an assumption, not a measurement. "
                f"CPU: images/s measured at {CPU_MEASURED_SIZE} px on a {CPU_MEASURED_WHERE}, "
                "scaled by counted FLOPs (the baseline at the GAN step's FLOP rate). "
                "The first epoch also decodes every photo once.")
    return "\n".join(rows)


# ------------------------------------------------------------------ memory
@dataclass
class MemoryEstimate:
    """Training memory of one stage at one size: a fixed part and a part per photo of a batch.

    ``fixed_bytes``: weights, their gradients and Adam's two moments (4 x the
    parameters, float32). ``per_image_bytes``: the outputs of every layer of
    one forward pass (the generator's, and for a GAN step the
    discriminator's three passes), which backward keeps. An estimate, good
    enough to refuse an impossible size, which is all it is for.
    """

    # Good enough because it was checked once against measured peak memory: the numbers are
    # in benchmarks/RESULTS.md, "Other measurements", "Training memory estimate".

    fixed_bytes: int
    per_image_bytes: int

    def bytes(self, batch_size: int) -> int:
        return self.fixed_bytes + batch_size * self.per_image_bytes


@functools.lru_cache(maxsize=None)
def training_memory(stage: str, size: int, num_filters: int = 64) -> MemoryEstimate:
    """:class:`MemoryEstimate` of ``stage`` at ``size`` px, counted on PyTorch's meta device
    (shapes only: no memory is used, even for a size that could never be trained)."""
    from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
    from colorlib.models.stages import get_stage

    info = get_stage(stage)
    with torch.device("meta"):
        cfg = ModelConfig(arch=info.arch, size=size, num_filters=num_filters)
        net_G = build_generator(cfg, None)
        net_D = build_discriminator(cfg) if info.adversarial else None
    counted = [0]

    def count(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            counted[0] += output.numel()

    nets = [n for n in (net_G, net_D) if n is not None]
    hooks = [m.register_forward_hook(count) for net in nets for m in net.modules()
             if not list(m.children())]
    try:
        with torch.no_grad():
            net_G(torch.empty(1, 1, size, size, device="meta"))
            if net_D is not None:
                generator = counted[0]
                net_D(torch.empty(1, 3, size, size, device="meta"))
                counted[0] = generator + 3 * (counted[0] - generator)  # fake, real, fake again
    finally:
        for hook in hooks:
            hook.remove()
    params = sum(p.numel() for net in nets for p in net.parameters())
    if info.classes:  # class scores per pixel and their soft targets (about 230 classes)
        counted[0] += 2 * 230 * size * size
    return MemoryEstimate(fixed_bytes=16 * params, per_image_bytes=4 * counted[0])


def training_memory_bytes(stage: str, size: int, batch_size: int, num_filters: int = 64) -> int:
    """Estimated bytes to train ``stage`` at ``size`` px and ``batch_size`` (see
    :class:`MemoryEstimate`)."""
    return training_memory(stage, size, num_filters).bytes(batch_size)


def device_memory_bytes(device) -> int | None:
    """All the memory of ``device`` (a GPU's, or this machine's RAM for the CPU); None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None
