"""Speed: the classify stage's training step beside the L1 (pretrain) step, in one run.

    nice python benchmarks/classify_step.py [--size 64] [--rounds 8] [--threads 1] --json FILE

Both stages train the same ResNet18 U-Net body; they differ in the head (226 class scores
per pixel instead of 2 ab values) and the loss (rebalanced cross-entropy over soft-encoded
targets instead of L1). The two trainers are built in one process, on the same prepared
batches of the tiny set's training photos, and their steps alternate (AB, BA, ...), so a
machine that gets busier or quieter during the run slows both alike; medians are reported,
and every round is in the JSON. Each step is a whole ``Trainer.train_step``: forward,
loss, backward, fused Adam update. With ``--cpu-amp`` on a CPU with native bf16 both also
run under bf16 autocast (how ``benchmarks/long_run.py`` trains), as a second pair.

The loss alone is timed too (forward and backward of the loss on fixed network outputs), to
show how much of the difference is the loss and how much the wider head. The results and
the machine (``lscpu``'s model name) go into ``benchmarks/RESULTS.md`` by hand.

``--json`` follows colorlib's output rule (``benchmarks/bench_outputs.py``): decided before
anything is timed, never over a file colorlib did not write (an earlier results file of
this script is replaced), written atomically.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from bench_outputs import one_line_errors, output_file, positive_int, size, write_text, written_by

REPO = Path(__file__).resolve().parents[1]
BATCH = 16


def cpu_model() -> str:
    """``lscpu``'s model name (the kernel's /proc/cpuinfo where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def batches(size: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` prepared (L, ab) batches of the tiny set's training photos, augmented as in training."""
    from colorlib.data.loading import ColorizationDataset, collate, prepare_batch
    from colorlib.data.sources import DataConfig, resolve_source

    paths = resolve_source(DataConfig(source="tiny", size=size))[0]
    data = ColorizationDataset(paths[: n * BATCH], size, lab=False)
    out = []
    for i in range(n):
        raw = collate([data[j] for j in range(i * BATCH, (i + 1) * BATCH)])
        out.append(prepare_batch(raw, "cpu", augment=True,
                                 generator=torch.Generator().manual_seed(i)))
    return out


def trainer(stage: str, size: int, cpu_amp: bool, prior_data=None):
    """A fresh trainer of ``stage`` (random encoder, as in run.py); classify with its class
    weights measured on ``prior_data``, as ``train_stage`` does before the first step."""
    from colorlib.data.sources import DataConfig
    from colorlib.models.classify import measure_class_prior
    from colorlib.training.config import RunConfig, TrainConfig
    from colorlib.training.loop import Trainer

    run = RunConfig(TrainConfig(stage=stage, seed=0, cpu_amp=cpu_amp),
                    DataConfig(source="tiny", size=size, batch_size=BATCH), checkpoint_dir=".")
    torch.manual_seed(0)
    t = Trainer.build(run.model_config(), run.train, "cpu", weights=None)
    t.policy.prepare_process()  # malloc settings, as train_stage applies them
    if stage == "classify":
        prior = measure_class_prior(prior_data, t.net_G.centres)
        t.net_G.set_class_weights(prior)
    return t


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds of ``fn()``. On a shared machine the CPU
    seconds move less: they leave out the time spent waiting for a core."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def alternate(blocks: dict[str, Callable[[], tuple[float, float]]],
              rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Each block ``rounds`` times, interleaved, the order rotating every round."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in blocks}
    names = list(blocks)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            out[name].append(blocks[name]())
    return out


def step_blocks(size: int, cpu_amp: bool, data) -> dict[str, Callable[[], tuple[float, float]]]:
    """One timed training step per call, for pretrain and classify, cycling over ``data``."""
    from colorlib.data.loading import ColorizationDataset
    from colorlib.data.sources import DataConfig, resolve_source

    paths = resolve_source(DataConfig(source="tiny", size=size))[0]
    trainers = {"pretrain": trainer("pretrain", size, cpu_amp),
                "classify": trainer("classify", size, cpu_amp,
                                    ColorizationDataset(paths, size, lab=False))}
    blocks = {}
    for name, t in trainers.items():
        counter = iter(range(10 ** 9))

        def block(t=t, counter=counter) -> tuple[float, float]:
            L, ab = data[next(counter) % len(data)]
            return timed(lambda: t.train_step(L, ab))

        blocks[name] = block
    return blocks


def loss_blocks(size: int) -> dict[str, Callable[[], tuple[float, float]]]:
    """The loss alone, forward and backward, on fixed outputs of the right shapes."""
    from colorlib.models.classify import class_centres, rebalanced_cross_entropy

    centres = torch.tensor(class_centres())
    g = torch.Generator().manual_seed(0)
    ab = (torch.rand(BATCH, 2, size, size, generator=g) - 0.5) * 1.2
    pred = torch.randn(BATCH, 2, size, size, generator=g).requires_grad_()
    logits = torch.randn(BATCH, len(centres), size, size, generator=g)
    logits = logits.contiguous(memory_format=torch.channels_last).requires_grad_()
    weights = torch.rand(len(centres), generator=g) + 0.5
    return {"L1 loss": lambda: timed(lambda: (pred - ab).abs().mean().backward()),
            "rebalanced CE": lambda: timed(
                lambda: rebalanced_cross_entropy(logits, ab, centres, weights).backward())}


def summary(times: dict[str, list[tuple[float, float]]], warmup: int) -> dict:
    """Medians after the warm-up rounds, wall and CPU seconds; every round kept."""
    out = {}
    for name, rounds in times.items():
        wall = statistics.median(w for w, _ in rounds[warmup:])
        cpu = statistics.median(c for _, c in rounds[warmup:])
        out[name] = {"median_s": round(wall, 4), "median_cpu_s": round(cpu, 4),
                     "images_per_s": round(BATCH / wall, 2),
                     "rounds_s": [round(w, 4) for w, _ in rounds],
                     "rounds_cpu_s": [round(c, 4) for _, c in rounds], "warmup_rounds": warmup}
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=size, default=64)
    p.add_argument("--rounds", type=positive_int, default=8,
                   help="timed rounds per step (after 2 warm-up)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: a shared machine)")
    p.add_argument("--cpu-amp", action="store_true",
                   help="also time both steps under bf16 autocast (CPUs with native bf16)")
    p.add_argument("--json", type=Path, required=True)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with one_line_errors("classify_step.py"):
        output_file(args.json, "--json", is_ours=written_by("classify_step.py"),
                    what="a results file of benchmarks/classify_step.py")
        return measure(args)


def measure(args) -> int:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    from colorlib.system.device import cpu_has_native_bf16

    started = time.perf_counter()
    data = batches(args.size, 4)
    warmup = 2
    results = {}
    variants = [False] + ([True] if args.cpu_amp and cpu_has_native_bf16() else [])
    for amp in variants:
        key = "bf16" if amp else "fp32"
        times = alternate(step_blocks(args.size, amp, data), warmup + args.rounds)
        results[f"step_{key}"] = summary(times, warmup)
        res = results[f"step_{key}"]
        for clock in ("median_s", "median_cpu_s"):
            res[f"classify_over_pretrain_{clock.removeprefix('median_')}"] = round(
                res["classify"][clock] / res["pretrain"][clock], 3)
        print(f"{key}: pretrain {res['pretrain']['median_s']:.3f} s "
              f"({res['pretrain']['median_cpu_s']:.3f} CPU s), classify "
              f"{res['classify']['median_s']:.3f} s ({res['classify']['median_cpu_s']:.3f} CPU s) "
              f"per step: x{res['classify_over_pretrain_s']:.2f} wall, "
              f"x{res['classify_over_pretrain_cpu_s']:.2f} CPU", flush=True)
    loss = summary(alternate(loss_blocks(args.size), warmup + 3 * args.rounds), warmup)
    results["loss_only_fp32"] = loss
    print(f"loss alone: L1 {loss['L1 loss']['median_s'] * 1e3:.1f} ms, rebalanced CE "
          f"{loss['rebalanced CE']['median_s'] * 1e3:.1f} ms", flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
            "size_px": args.size, "batch": BATCH, "rounds": args.rounds,
            "load_average_at_end": None if load is None else [round(x, 2) for x in load],
            "torch": torch.__version__, "python": platform.python_version(),
            "seconds": round(time.perf_counter() - started, 1)}
    write_text(args.json, json.dumps({"meta": meta, **results}, indent=2) + "\n")
    print(f"wrote {args.json} ({meta['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
