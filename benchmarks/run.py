"""Speed: colorlib against the seed tutorial's pipeline, same images, same machine, one run.

    python benchmarks/run.py [--quick] [--device D] [--workers W] [--threads T] [--only ...] --json FILE

Measures (images or photos per second, seed and colorlib): ``lab_batch_conversion``,
``data_pipeline`` (and ``_first_epoch``), ``pretrain_step``, ``gan_step``,
``inference_fullres``; ``*_vs_seed_malloc`` against the seed given colorlib's malloc
settings, ``*_cpu_amp`` / ``*_amp`` with colorlib's opt-in bf16. How they are measured,
and the results: ``benchmarks/RESULTS.md`` (``benchmarks/report.py`` writes its tables).

``--json`` follows colorlib's output rule (``benchmarks/bench_outputs.py``): decided before
anything is measured (one line naming the flag if unusable), never over an input (a photo
it measures, the seed's code) nor over a file colorlib did not write; an earlier results
file of this script is replaced; written atomically (a full disk keeps the earlier file).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from bench_outputs import (CLIError, choices, count, one_line_errors, output_file, positive_int,
                           write_text, written_by)

REPO = Path(__file__).resolve().parents[1]
# The seed's code and the photos; a GPU machine that got the working tree only is pointed
# at a carried copy (benchmarks/gpu_check.py, tools/prepare_gpu_check.py).
SHARED = Path(os.environ.get("COLORLIB_SHARED") or REPO.parent / "shared")
BATCH = 16

# Dense bf16 tensor-core peaks (FLOP/s), from the vendors' data sheets.
BF16_PEAK = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12,
             "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "T4": 65e12, "V100": 125e12}


@dataclass
class Settings:
    quick: bool
    device: torch.device
    workers: int
    threads: int
    data_images: int  # photos per data-pipeline pass
    rounds: int  # timed repetitions per peer (medians reported)
    photos: int  # photos per inference pass

    @property
    def train_size(self) -> int:
        return 256 if self.device.type == "cuda" else 128


# ------------------------------------------------------------------ helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _resident(proc, children: bool) -> int:
    """This process's resident memory, plus its loader workers' own (unshared) memory."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True) if children else ():
        with contextlib.suppress(Exception):  # pages shared with us after fork are not counted
            total += child.memory_full_info().uss
    return total


def _trim_heap() -> None:
    """Give freed heap memory back to the OS, so the next peer starts from a true baseline."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Largest increase of memory in use while the ``with`` block runs (MB)."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mb = device, float("nan")

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        _trim_heap()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        try:
            import psutil
        except ImportError:  # no per-block figure without psutil
            self.proc = None
            return self
        self.proc, self.stop = psutil.Process(), threading.Event()
        self.base = self.top = _resident(self.proc, children=True)
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        for tick in itertools.count():
            if self.stop.wait(0.02):
                return
            with contextlib.suppress(Exception):  # workers' smaps every 0.2 s: slow to read
                self.top = max(self.top, _resident(self.proc, children=tick % 10 == 0))

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        elif self.proc is not None:
            self.stop.set()
            self.thread.join()
            self.peak_mb = (self.top - self.base) / 2**20


def forever(loader, set_epoch: bool = False):
    """Batches from ``loader`` epoch after epoch."""
    for epoch in itertools.count():
        if set_epoch:
            loader.sampler.set_epoch(epoch)
        yield from loader


def seed_module():
    path = SHARED / "reference"
    if not (path / "seed_tutorial.py").is_file():
        raise SystemExit(f"{path}/seed_tutorial.py not found: the peer to measure against "
                         "lives in ../shared/reference")
    sys.path.insert(0, str(path))
    import seed_tutorial

    return seed_tutorial


def photo_list(n: int) -> tuple[list[Path], str]:
    from colorlib.data.sources import find_images

    folder = SHARED / "data" / "photos" / "train"
    if folder.is_dir():
        paths, name = find_images(folder), "../shared/data/photos/train"
    else:
        from colorlib.photos.tiny_set import build_tiny_set

        paths, name = find_images(build_tiny_set() / "train"), "colorlib tiny set (train)"
    # An even spread over the sorted list: every source of the photo set is represented.
    step = max(1, len(paths) // n)
    return paths[::step][:n], name


def alternate(blocks: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each peer's timed block ``rounds`` times, interleaved; returns throughputs.

    The order rotates every round (AB, BA, ...), so a machine getting busier
    or quieter during the run does not favour whichever peer goes first.
    """
    out: dict[str, list[float]] = {name: [] for name in blocks}
    names = list(blocks)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            out[name].append(blocks[name]())
    return out


# --------------------------------------------------------- data pipeline
def seed_loader(seed, paths, size: int, s: Settings, split: str = "train"):
    return seed.make_dataloaders(batch_size=BATCH, n_workers=s.workers,
                                 pin_memory=s.device.type == "cuda",
                                 paths=[str(p) for p in paths], split=split, size=size)


def seed_pipeline_pass(seed, paths, s: Settings) -> float:
    """One pass of the seed's loader; timed from its first batch on (workers already up)."""
    batches = iter(seed_loader(seed, paths, 256, s))
    next(batches)
    n, t0 = 0, time.perf_counter()
    for data in batches:
        L = data["L"].to(s.device, non_blocking=True)
        data["ab"].to(s.device, non_blocking=True)
        sync(s.device)
        n += L.shape[0]
    return n / (time.perf_counter() - t0)


def colorlib_pipeline_passes(paths, s: Settings) -> tuple[float, float]:
    """(first epoch incl. the one decode, a later epoch), images/s, fresh dataset."""
    from colorlib.data.loading import ColorizationDataset, make_loader, prepare_batch

    ds = ColorizationDataset(paths, 256, lab=False)
    loader = make_loader(ds, BATCH, train=True, seed=0, num_workers=s.workers,
                         pin_memory=s.device.type == "cuda")
    rates = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        n, t0 = 0, time.perf_counter()
        for k, batch in enumerate(loader):
            L, _ = prepare_batch(batch, s.device, augment=True,
                                 generator=torch.Generator().manual_seed(k))
            sync(s.device)
            n += L.shape[0]
        rates.append(n / (time.perf_counter() - t0))
    return rates[0], rates[1]


def measure_data_pipeline(seed, paths, s: Settings) -> dict:
    seed_rates, first, later, mem = [], [], [], {"seed": [], "colorlib": []}
    for _ in range(s.rounds):
        with PeakMemory(s.device) as m:
            seed_rates.append(seed_pipeline_pass(seed, paths, s))
        mem["seed"].append(m.peak_mb)
        with PeakMemory(s.device) as m:
            cold, warm = colorlib_pipeline_passes(paths, s)
        mem["colorlib"].append(m.peak_mb)
        first.append(cold)
        later.append(warm)
    memory = (max(mem["seed"]), max(mem["colorlib"]))
    return {
        "data_pipeline": entry(seed_rates, later, "images/s", images=len(paths), memory=memory,
                               note="colorlib's memory includes its cache of every decoded "
                               f"photo ({len(paths)} x 256 x 256 x 3 bytes = "
                               f"{len(paths) * 3 * 256 * 256 / 2**20:.0f} MB)"),
        "data_pipeline_first_epoch": entry(seed_rates, first, "images/s", images=len(paths),
                                           note="colorlib's first epoch decodes every photo "
                                           "once; the seed does that every epoch"),
    }


def measure_lab_conversion(paths, s: Settings) -> dict:
    """Lab conversion alone, one batch of 16 at 256 px, on the CPU: seed (skimage per
    image, as in its Dataset) vs colorlib's numpy path; kornia recorded beside them,
    since it is what colorlib uses on a GPU and was the first choice on the CPU too."""
    import kornia.color
    from skimage.color import rgb2lab

    from colorlib.photos.image_files import load_rgb, resize_rgb
    from colorlib.photos.lab import rgb_to_lab_tensor

    imgs = np.stack([resize_rgb(load_rgb(p), 256) for p in paths[:BATCH]])
    batch = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()

    def rate(fn) -> Callable[[], float]:
        def block() -> float:
            t0 = time.perf_counter()
            fn()
            return BATCH / (time.perf_counter() - t0)
        return block

    blocks = {"seed": rate(lambda: [rgb2lab(im).astype("float32") for im in imgs]),
              "colorlib": rate(lambda: rgb_to_lab_tensor(batch)),
              "kornia": rate(lambda: kornia.color.rgb_to_lab(batch.float() / 255))}
    for block in blocks.values():
        block()
    rates = alternate(blocks, max(5, s.rounds))
    out = entry(rates["seed"], rates["colorlib"], "images/s",
                note="Lab conversion alone (CPU, 16 x 256 x 256): seed = skimage per image; "
                f"kornia on the same batch: {statistics.median(rates['kornia']):.0f} images/s, "
                "so colorlib converts with numpy on the CPU and keeps kornia for GPUs")
    out["kornia"] = round(statistics.median(rates["kornia"]), 3)
    return {"lab_batch_conversion": out}


# ------------------------------------------------- one process per peer
SEED_MALLOC = "seed_malloc"  # the seed, in a process with colorlib's malloc settings
MALLOC_NOTE = ("against the seed run with colorlib's malloc settings (colorlib.system.malloc) "
               "in its process: the part of colorlib's lead that is not the allocator")


class PeerProcess:
    """A peer built, warmed up and timed in a process of its own (spawned).

    Each training and inference peer runs alone in its process, as each
    tutorial does for its users, so a process-wide setting one of them
    makes cannot help or slow the other: colorlib raises glibc's malloc
    thresholds on the CPU (:mod:`colorlib.system.malloc`), the seed does not.
    Only one peer works at a time; the others wait for their next turn.
    """

    def __init__(self, name: str, maker: str, s: "Settings", *args, malloc: bool = False):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.name = name
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_peer_main, args=(child, maker, s, args, malloc),
                                name=name)
        self.proc.start()
        child.close()
        self.memory_mb, self.flops = self._reply()

    def run(self) -> float:
        """One timed block in the peer's process: images (or photos) per second."""
        self.conn.send("run")
        return self._reply()

    def _reply(self):
        try:
            kind, value = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"{self.name}: its process died (exit code "
                               f"{self.proc.exitcode})") from None
        if kind == "error":
            raise RuntimeError(f"{self.name}: {value}")
        return value

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send("stop")
        self.proc.join(timeout=60)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()


def _peer_main(conn, maker: str, s: "Settings", args: tuple, malloc: bool) -> None:
    """The peer process: build, warm up (recording memory and FLOPs), then time on request.

    ``malloc``: apply colorlib's malloc settings first (for the seed: how
    much of colorlib's lead they alone explain).
    """
    import traceback

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(s.threads)
    if malloc:
        from colorlib.system.malloc import keep_freed_memory

        keep_freed_memory()
    try:
        with PeakMemory(s.device) as mem:
            block = MAKERS[maker](s, *args)
            block()  # warm-up: workers start, caches fill, kernels get chosen
            sync(s.device)
        conn.send(("ready", (mem.peak_mb, count_flops(block, s))))
        while conn.recv() == "run":
            conn.send(("rate", block()))
    except Exception as err:  # reported by the parent, naming the peer
        conn.send(("error", f"{err!r}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def compare(peers: dict[str, tuple], s: "Settings") -> dict[str, PeerProcess]:
    """Start every peer's process (one after another, so builds do not overlap)."""
    started: dict[str, PeerProcess] = {}
    try:
        for name, (maker, *args) in peers.items():
            started[name] = PeerProcess(name, maker, s, *args, malloc=name == SEED_MALLOC)
    except BaseException:
        for peer in started.values():
            peer.close()
        raise
    return started


def timed_rounds(peers: dict[str, PeerProcess], s: "Settings") -> dict[str, list[float]]:
    try:
        return alternate({name: peer.run for name, peer in peers.items()}, s.rounds)
    finally:
        for peer in peers.values():
            peer.close()


# ------------------------------------------------------------- training
def timed_step(step: Callable[[], None], s: "Settings") -> Callable[[], float]:
    """One training step as a timed block (images/s); ``.step`` is the bare step."""
    def block() -> float:
        sync(s.device)
        t0 = time.perf_counter()
        step()
        sync(s.device)
        return BATCH / (time.perf_counter() - t0)

    block.step = step
    return block


def seed_pretrain(s: "Settings", paths) -> Callable[[], float]:
    from torch import nn, optim

    seed = seed_module()
    torch.manual_seed(0)
    net = seed.build_res_unet(n_input=1, n_output=2, size=s.train_size, device=s.device,
                              pretrained=False)
    opt, crit = optim.Adam(net.parameters(), lr=1e-4), nn.L1Loss()
    batches = forever(seed_loader(seed, paths, s.train_size, s))
    return timed_step(lambda: seed.pretrain_step(net, opt, crit, next(batches), s.device), s)


def seed_gan(s: "Settings", paths) -> Callable[[], float]:
    seed = seed_module()
    torch.manual_seed(0)
    net_G = seed.build_res_unet(n_input=1, n_output=2, size=s.train_size, device=s.device,
                                pretrained=False)
    model = seed.MainModel(net_G=net_G, device=s.device)
    batches = forever(seed_loader(seed, paths, s.train_size, s))

    def step():
        model.setup_input(next(batches))
        model.optimize()

    return timed_step(step, s)


def colorlib_train(s: "Settings", paths, stage: str, cpu_amp: bool) -> Callable[[], float]:
    from colorlib.data.loading import ColorizationDataset, make_loader, prepare_batch
    from colorlib.models.networks import ModelConfig
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    torch.manual_seed(0)
    trainer = Trainer.build(ModelConfig(arch="resnet18_unet", size=s.train_size),
                            TrainConfig(stage=stage, seed=0, cpu_amp=cpu_amp), s.device,
                            weights=None)
    trainer.policy.prepare_process()  # what train_stage does (malloc settings on the CPU)
    loader = make_loader(ColorizationDataset(paths, s.train_size, lab=False), BATCH, train=True,
                         seed=0, num_workers=s.workers, pin_memory=s.device.type == "cuda")
    batches = forever(loader, set_epoch=True)
    counter = itertools.count()

    def step():
        L, ab = prepare_batch(next(batches), s.device, augment=True,
                              generator=torch.Generator().manual_seed(next(counter)))
        trainer.train_step(L, ab)

    return timed_step(step, s)


def count_flops(block: Callable[[], float], s: "Settings") -> float | None:
    """FLOPs of one training step (GPU only: that is where MFU is reported)."""
    if s.device.type != "cuda" or not hasattr(block, "step"):
        return None
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        block.step()
    return float(counter.get_total_flops())


def measure_training(paths, s: Settings, stage: str) -> dict:
    """seed vs colorlib (and colorlib + CPU bf16 where native) for one training step."""
    from colorlib.system.device import cpu_has_native_bf16

    peers = {"seed": (f"seed_{stage}", paths), SEED_MALLOC: (f"seed_{stage}", paths),
             "colorlib": ("colorlib_train", paths, stage, False)}
    if s.device.type == "cpu" and cpu_has_native_bf16():
        peers["colorlib_cpu_amp"] = ("colorlib_train", paths, stage, True)
    procs = compare(peers, s)
    memory = {name: p.memory_mb for name, p in procs.items()}
    flops = {name: p.flops for name, p in procs.items()}
    rates = timed_rounds(procs, s)
    key, size = f"{stage}_step", s.train_size
    out = {key: entry(rates["seed"], rates["colorlib"], "images/s", size_px=size,
                      memory=(memory["seed"], memory["colorlib"]),
                      flops=(flops["seed"], flops["colorlib"]), device=s.device),
           f"{key}_vs_seed_malloc": entry(rates[SEED_MALLOC], rates["colorlib"], "images/s",
                                          size_px=size, note=MALLOC_NOTE)}
    if "colorlib_cpu_amp" in rates:
        out[f"{key}_cpu_amp"] = entry(rates["seed"], rates["colorlib_cpu_amp"], "images/s",
                                      size_px=size,
                                      memory=(memory["seed"], memory["colorlib_cpu_amp"]),
                                      note="colorlib with TrainConfig(cpu_amp=True): bf16 "
                                      "autocast + channels_last on this CPU's native bf16")
    return out


# ------------------------------------------------------------ inference
def seed_inference(s: "Settings", photos, out: Path) -> Callable[[], float]:
    from PIL import Image

    seed = seed_module()
    torch.manual_seed(0)
    net = seed.build_res_unet(n_input=1, n_output=2, size=256, device=s.device,
                              pretrained=False).eval()

    def run() -> float:
        t0 = time.perf_counter()
        names = iter(photos)
        for data in seed_loader(seed, photos, 256, s, split="val"):
            with torch.no_grad():
                fake = net(data["L"].to(s.device))
            for rgb in seed.lab_to_rgb(data["L"], fake.cpu()):
                target = out / f"{next(names).stem}.png"
                Image.fromarray((rgb * 255).astype(np.uint8)).save(target)
        sync(s.device)
        return len(photos) / (time.perf_counter() - t0)

    return run


def colorlib_inference(s: "Settings", photos, out: Path, amp: bool) -> Callable[[], float]:
    from colorlib.inference.colorizer import Colorizer
    from colorlib.models.networks import ModelConfig, build_generator
    from colorlib.photos.image_files import save_rgb
    from colorlib.system.device import DevicePolicy

    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet18_unet", size=256)
    policy = DevicePolicy.for_inference(s.device, amp)
    policy.prepare_process()  # what the CLI does (malloc settings on the CPU)
    colorizer = Colorizer(policy.place(build_generator(cfg, None)).eval(), cfg,
                          Path("benchmark.pt"), amp)

    def run() -> float:
        t0 = time.perf_counter()
        for path, rgb in zip(photos, colorizer.colorize_many(photos, batch_size=BATCH)):
            save_rgb(rgb, out / f"{path.stem}.png", note=colorizer.provenance, overwrite=True)
        sync(s.device)
        return len(photos) / (time.perf_counter() - t0)

    return run


MAKERS = {"seed_pretrain": seed_pretrain, "seed_gan": seed_gan,
          "colorlib_train": colorlib_train, "seed_inference": seed_inference,
          "colorlib_inference": colorlib_inference}


def measure_inference(photos, s: Settings) -> dict:
    from PIL import Image

    from colorlib.photos.image_files import load_rgb
    from colorlib.system.device import cpu_has_native_bf16

    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: Path(tmp) / name for name in ("seed", "colorlib", "colorlib_amp")}
        for d in dirs.values():
            d.mkdir()
        peers = {"seed": ("seed_inference", photos, dirs["seed"]),
                 SEED_MALLOC: ("seed_inference", photos, dirs["seed"]),
                 "colorlib": ("colorlib_inference", photos, dirs["colorlib"], False)}
        if s.device.type == "cuda" or cpu_has_native_bf16():
            peers["colorlib_amp"] = ("colorlib_inference", photos, dirs["colorlib_amp"], True)
        procs = compare(peers, s)
        memory = {name: p.memory_mb for name, p in procs.items()}
        rates = timed_rounds(procs, s)
        name = f"{photos[0].stem}.png"
        sizes = {peer: Image.open(d / name).size for peer, d in dirs.items() if (d / name).exists()}
    h, w = load_rgb(photos[0]).shape[:2]
    if sizes["colorlib"] != (w, h):
        raise AssertionError(f"colorlib wrote {sizes['colorlib']} for a {w}x{h} photo")
    out = {"inference_fullres": entry(
        rates["seed"], rates["colorlib"], "photos/s", photos=len(photos),
        memory=(memory["seed"], memory["colorlib"]),
        note=f"seed writes {sizes['seed'][0]}x{sizes['seed'][1]} files; colorlib writes each "
             f"photo at its own size (e.g. {w}x{h} in, {sizes['colorlib'][0]}x"
             f"{sizes['colorlib'][1]} out)"),
           "inference_fullres_vs_seed_malloc": entry(rates[SEED_MALLOC], rates["colorlib"],
                                                     "photos/s", photos=len(photos),
                                                     note=MALLOC_NOTE)}
    if "colorlib_amp" in rates:
        out["inference_fullres_amp"] = entry(
            rates["seed"], rates["colorlib_amp"], "photos/s", photos=len(photos),
            memory=(memory["seed"], memory["colorlib_amp"]),
            note="colorlib Colorizer(amp=True): bf16 where the hardware has it natively")
    return out


# -------------------------------------------------------------- results
def entry(seed_rates: list[float], ours: list[float], unit: str, memory=None, flops=None,
          device: torch.device | None = None, **extra) -> dict:
    """One measure: medians, the ratio, the raw rounds, memory and (GPU) MFU."""
    seed_med, ours_med = statistics.median(seed_rates), statistics.median(ours)
    out = {"seed": round(seed_med, 3), "colorlib": round(ours_med, 3), "unit": unit,
           "ratio": round(ours_med / seed_med, 2),
           "rounds": {"seed": [round(x, 3) for x in seed_rates],
                      "colorlib": [round(x, 3) for x in ours]}, **extra}
    if memory is not None:
        out["peak_memory_mb"] = {"seed": round(memory[0], 1), "colorlib": round(memory[1], 1)}
    if flops is not None and device is not None and device.type == "cuda":
        peak = bf16_peak(device)
        out["flops_per_step"] = {"seed": flops[0], "colorlib": flops[1]}
        if peak:
            steps = {"seed": seed_med / BATCH, "colorlib": ours_med / BATCH}
            out["mfu"] = {k: round(flops[i] * steps[k] / peak, 4)
                          for i, k in enumerate(("seed", "colorlib")) if flops[i]}
            out["bf16_peak_flops"] = peak
    return out


def bf16_peak(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device)
    for key, value in BF16_PEAK.items():  # most specific names first
        if key in name:
            return value
    return None


def machine() -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}


PARTS = ("data", "pretrain", "gan", "inference")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer images and rounds (<10 min on 2 CPU cores)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    p.add_argument("--workers", type=count, default=None,
                   help="loader worker processes, the same for both peers (default: CPU cores)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads in the main process, both peers (default: CPU cores)")
    p.add_argument("--only", default=None, type=choices(PARTS),
                   help="comma-separated subset of: data, pretrain, gan, inference")
    p.add_argument("--json", type=Path, required=True, help="write the results here")
    return p.parse_args(argv)


def check_json(path: Path, inputs: list[Path]) -> Path:
    """Decide ``--json`` before anything is measured (one line naming it if refused)."""
    return output_file(path, "--json", is_ours=written_by("run.py"),
                       what="a results file of benchmarks/run.py",
                       inputs=[("a photo it measures or the seed's code", inputs)])


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    from colorlib.system.device import resolve_device

    with one_line_errors("run.py"):
        try:
            device = resolve_device(args.device)
        except ValueError as err:  # names --device
            raise CLIError(str(err)) from None
        return measure_all(args, device)


def measure_all(args, device: torch.device) -> int:
    cores = os.cpu_count() or 1
    s = Settings(quick=args.quick, device=device,
                 workers=cores if args.workers is None else args.workers,
                 threads=cores if args.threads is None else args.threads,
                 data_images=320 if args.quick else 1600, rounds=3 if args.quick else 5,
                 photos=16 if args.quick else 48)
    torch.set_num_threads(s.threads)
    seed = seed_module()
    parts = set(filter(None, (args.only or "data,pretrain,gan,inference").split(",")))
    paths, source = photo_list(s.data_images)
    photos = photo_list(s.photos)[0] if "inference" in parts else []
    check_json(args.json, [*paths, *photos, SHARED / "reference" / "seed_tutorial.py"])
    results: dict = {}
    started = time.perf_counter()
    if "data" in parts:
        results.update(measure_lab_conversion(paths, s))
        results.update(measure_data_pipeline(seed, paths, s))
        report(results)
    # Inference before training: measured after the training peers had run, the seed's
    # inference came out up to 30% slower (colorlib's did not), whatever state the
    # training phases leave the machine's memory in. Measured first, the seed gets its best.
    if "inference" in parts:
        results.update(measure_inference(photos, s))
        report(results)
    if "pretrain" in parts:
        results.update(measure_training(paths, s, "pretrain"))
        report(results)
    if "gan" in parts:
        results.update(measure_training(paths, s, "gan"))
        report(results)
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
            "device": (torch.cuda.get_device_name(s.device) if s.device.type == "cuda"
                       else "cpu"),
            "machine": machine(), "workers": s.workers, "threads": s.threads, "batch": BATCH,
            "train_size_px": s.train_size, "images": source, "data_images": len(paths),
            "rounds": s.rounds, "quick": s.quick,
            "seconds": round(time.perf_counter() - started, 1)}
    write_text(args.json, json.dumps({"meta": meta, **results}, indent=2) + "\n")
    print(f"wrote {args.json} ({meta['seconds']:.0f} s)")
    return 0


_PRINTED: set[str] = set()


def report(results: dict) -> None:
    """Print each measure once, as soon as it is done."""
    for key, value in results.items():
        if isinstance(value, dict) and "ratio" in value and key not in _PRINTED:
            print(f"{key:28s} seed {value['seed']:9.2f}  colorlib {value['colorlib']:9.2f} "
                  f"{value['unit']:9s} ratio {value['ratio']:.2f}x", flush=True)
            _PRINTED.add(key)


if __name__ == "__main__":
    raise SystemExit(main())
