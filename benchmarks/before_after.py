"""Did a change to colorlib slow its training step? Two checkouts, one machine, one run.

    python benchmarks/before_after.py --before CHECKOUT [--stages pretrain,gan] [--rounds N]
                                      [--cpu-amp] [--threads T] --json FILE

``--before`` is a checkout of colorlib as it was (e.g. ``git worktree add /tmp/before
<commit>``); the other side is this repository. Each side's training step is
``benchmarks/run.py``'s ``colorlib_train`` block (the ResNet18 U-Net at 128 px on the CPU,
batch 16, the same photos, seeds and threads), built in a process of its own that imports
colorlib from its own checkout, and the two are timed in interleaved rounds (AB, BA, ...)
exactly as ``run.py`` times colorlib against the seed: a machine getting busier or quieter
during the run favours neither. Reported per stage: each side's median images/s and the
ratio after / before with the spread of the per-round ratios, which is the noise a verdict
has to beat. Results: ``benchmarks/RESULTS.md`` ("Before and after a refactor").

``--json`` follows colorlib's output rule (``benchmarks/bench_outputs.py``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_outputs import (CLIError, choices, one_line_errors, output_file, positive_int,
                           write_text, written_by)

import run

REPO = Path(__file__).resolve().parents[1]
STAGES = ("pretrain", "gan")


def _import_from(checkout: str) -> None:
    """Make ``import colorlib`` read ``checkout``'s package in this (peer) process."""
    for name in [m for m in sys.modules if m == "colorlib" or m.startswith("colorlib.")]:
        del sys.modules[name]
    sys.path.insert(0, checkout)
    import colorlib

    if not Path(colorlib.__file__).resolve().is_relative_to(Path(checkout).resolve()):
        raise RuntimeError(f"colorlib came from {colorlib.__file__}, not from {checkout}")


def colorlib_train_at(s: run.Settings, paths, stage: str, cpu_amp: bool, checkout: str):
    """``run.colorlib_train`` with colorlib imported from ``checkout`` (either layout)."""
    _import_from(checkout)
    if not (Path(checkout) / "colorlib" / "training" / "loop.py").is_file():
        return _flat_layout_train(s, paths, stage, cpu_amp)
    return run.colorlib_train(s, paths, stage, cpu_amp)


def _flat_layout_train(s: run.Settings, paths, stage: str, cpu_amp: bool):
    """The same block for a checkout from before colorlib's layers became folders."""
    import itertools

    from colorlib.data import ColorizationDataset, make_loader, prepare_batch
    from colorlib.networks import ModelConfig
    from colorlib.train import TrainConfig, Trainer

    torch.manual_seed(0)
    trainer = Trainer.build(ModelConfig(arch="resnet18_unet", size=s.train_size),
                            TrainConfig(stage=stage, seed=0, cpu_amp=cpu_amp), s.device,
                            weights=None)
    trainer.policy.prepare_process()
    loader = make_loader(ColorizationDataset(paths, s.train_size, lab=False), run.BATCH,
                         train=True, seed=0, num_workers=s.workers)
    batches = run.forever(loader, set_epoch=True)
    counter = itertools.count()

    def step():
        L, ab = prepare_batch(next(batches), s.device, augment=True,
                              generator=torch.Generator().manual_seed(next(counter)))
        trainer.train_step(L, ab)

    return run.timed_step(step, s)


run.MAKERS["colorlib_train_at"] = colorlib_train_at  # also in the spawned peers (re-imported)


def measure(stage: str, before: Path, paths, s: run.Settings, cpu_amp: bool) -> dict:
    peers = {"before": ("colorlib_train_at", paths, stage, cpu_amp, str(before)),
             "after": ("colorlib_train_at", paths, stage, cpu_amp, str(REPO))}
    rates = run.timed_rounds(run.compare(peers, s), s)
    ratios = [a / b for a, b in zip(rates["after"], rates["before"])]
    return {"before_images_per_s": round(statistics.median(rates["before"]), 3),
            "after_images_per_s": round(statistics.median(rates["after"]), 3),
            "ratio": round(statistics.median(rates["after"]) / statistics.median(rates["before"]),
                           3),
            "round_ratios": [round(r, 3) for r in ratios],
            "round_ratio_min": round(min(ratios), 3), "round_ratio_max": round(max(ratios), 3),
            "rounds": {k: [round(v, 3) for v in vs] for k, vs in rates.items()}}


def _commit(checkout: Path) -> str | None:
    """The commit a checkout is at (with "+changes" if its colorlib/ differs), if git says."""
    import subprocess

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *argv], capture_output=True,
                              text=True, check=True).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--", "colorlib")
        return git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True,
                   help="a checkout of colorlib as it was (its folder holds colorlib/)")
    p.add_argument("--stages", default=",".join(STAGES), type=choices(STAGES),
                   help="comma-separated subset of: pretrain, gan")
    p.add_argument("--rounds", type=positive_int, default=15, help="timed steps per side")
    p.add_argument("--cpu-amp", action="store_true", help="both sides with bf16 autocast")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads per side (default: CPU cores)")
    p.add_argument("--json", type=Path, required=True, help="write the results here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with one_line_errors("before_after.py"):
        before = args.before.resolve()
        if not (before / "colorlib" / "__init__.py").is_file():
            raise CLIError(f"--before: {args.before} holds no colorlib/ package (give a "
                           "checkout, e.g. from git worktree add)")
        cores = os.cpu_count() or 1
        s = run.Settings(quick=True, device=torch.device("cpu"), workers=0,
                         threads=args.threads or cores, data_images=320, rounds=args.rounds,
                         photos=0)
        paths, source = run.photo_list(s.data_images)
        output_file(args.json, "--json", is_ours=written_by("before_after.py"),
                    what="a results file of benchmarks/before_after.py",
                    inputs=[("a photo it measures", paths)])
        started = time.perf_counter()
        results = {}
        for stage in filter(None, args.stages.split(",")):
            results[stage] = measure(stage, before, paths, s, args.cpu_amp)
            r = results[stage]
            print(f"{stage}: before {r['before_images_per_s']} images/s, after "
                  f"{r['after_images_per_s']}, ratio {r['ratio']} (rounds "
                  f"{r['round_ratio_min']}-{r['round_ratio_max']})", flush=True)
        meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "command": "python " + " ".join(["benchmarks/before_after.py", *sys.argv[1:]]),
                "before": str(args.before), "before_commit": _commit(before),
                "after_commit": _commit(REPO), "machine": run.machine(), "threads": s.threads,
                "batch": run.BATCH, "train_size_px": s.train_size, "images": source,
                "cpu_amp": args.cpu_amp, "rounds": s.rounds,
                "seconds": round(time.perf_counter() - started, 1)}
        write_text(args.json, json.dumps({"meta": meta, **results}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
