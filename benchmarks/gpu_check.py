"""The GPU check: on one GPU, in under 8 minutes, everything that only a GPU exercises.

    python tools/prepare_gpu_check.py            # once, where ../shared is (makes .photos128/)
    python benchmarks/gpu_check.py --json benchmarks/gpu_check.json

Three parts, each in a process of its own with a time limit, then one JSON:

1. ``tests``: the tests marked ``cuda`` (``pytest -m cuda``): fp16/bf16
   autocast with GradScaler, kornia's Lab conversion and cross-device
   resume on the GPU. Without CUDA they skip, and the JSON says so.
2. ``benchmark``: ``benchmarks/run.py --device cuda --quick`` (images/s
   against the seed tutorial, and model FLOP utilisation in bf16/fp16).
   Its photos and the seed's code come from ``.gpu_check/shared`` when
   ``../shared`` is not beside the checkout (a GPU machine gets the
   working tree only; ``tools/prepare_gpu_check.py`` fills it).
3. ``training``: the three stages, briefly, at 128 px on the photos in
   ``.photos128/`` (``colorlib train``: baseline, pretrain, then gan from
   that pretrain), with images/s, the mixed-precision dtype, losses and
   checkpoint sizes from each checkpoint; then the fine-tuned generator is
   exported (``colorlib export``, half precision) and the export colorizes
   the validation photos (``colorlib colorize``: mixed precision by default
   on the GPU, as in training).

``--tiny`` runs the same parts on the CPU in a minute or two (the tiny set
at 32 px, two steps per stage, the benchmark's data measure only), which is
how CI runs it (``tests/test_gpu_check.py``) so the script cannot rot
before a GPU sees it. The exit status is 0 when every part ran and passed.

``--json`` follows colorlib's output rule (``benchmarks/bench_outputs.py``): decided before
any part runs (one line naming the flag if unusable), never over a file colorlib did not
write (an earlier check's JSON is replaced), written atomically.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_outputs import (choices, one_line_errors, output_file, positive_int, write_text,
                           written_by)

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / ".photos128"
CARRIED_SHARED = REPO / ".gpu_check" / "shared"
BUDGET_S = 480  # the whole check, on one GPU

# name -> (seconds allowed on a GPU, seconds allowed in the tiny CPU setting)
# On a GPU they add up to BUDGET_S: a part that needs longer fails the check, by name.
LIMITS = {"tests": (90, 300), "benchmark": (210, 400), "train_baseline": (45, 240),
          "train_pretrain": (45, 240), "train_gan": (45, 240), "export": (15, 120),
          "colorize": (30, 120)}
assert sum(gpu for gpu, _ in LIMITS.values()) == BUDGET_S


def run(name: str, cmd: list[str], tiny: bool, env: dict | None = None) -> dict:
    """Run ``cmd`` with its time limit; its exit status, seconds and last lines of output."""
    limit = LIMITS[name][1 if tiny else 0]
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit,
                             env={**os.environ, **(env or {})})
        code, text = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as err:
        code = "timeout"
        text = ((err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes)
                else (err.stdout or "")) + f"\n{name}: stopped after {limit} s"
    seconds = round(time.perf_counter() - start, 1)
    print(f"{name:16s} {'ok' if code == 0 else 'FAILED (' + str(code) + ')':14s} {seconds:7.1f} s",
          flush=True)
    return {"command": " ".join(cmd[1:] if cmd[0] == sys.executable else cmd),
            "returncode": code, "seconds": seconds, "limit_s": limit,
            "output_tail": text.strip().splitlines()[-15:]}


def pytest_counts(lines: list[str]) -> dict:
    """Counts from pytest's closing line (passed, failed, skipped, deselected, ...)."""
    counts = {}
    for line in lines[::-1]:
        found = re.findall(r"(\d+) (passed|failed|skipped|deselected|error|errors|xfailed)", line)
        if found:
            counts = {kind: int(n) for n, kind in found}
            break
    return counts


def checkpoint_facts(path: Path, batch: int) -> dict:
    """What a stage's checkpoint says about its training (read with weights_only)."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    steps, seconds = ckpt.get("step"), ckpt.get("train_seconds")
    train = ckpt.get("train") or {}
    history = ckpt.get("history") or []
    facts = {"steps": steps, "train_seconds": round(seconds, 2) if seconds else seconds,
             "size_mb": round(path.stat().st_size / 2**20, 1), "amp": train.get("amp"),
             "amp_dtype": ckpt.get("amp_dtype"), "last_losses": history[-1] if history else None}
    if steps and seconds and batch:
        facts["images_per_s"] = round(steps * batch / seconds, 1)
    return facts


def device_facts(device: str) -> dict:
    import torch

    facts = {"python": platform.python_version(), "torch": torch.__version__,
             "cuda_available": torch.cuda.is_available(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        facts.update(name=torch.cuda.get_device_name(0),
                     capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                     memory_gb=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                     bf16_native=torch.cuda.get_device_capability(0)[0] >= 8,
                     cudnn=torch.backends.cudnn.version())
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--tiny", action="store_true",
                        help="CPU, tiny set, two steps per stage: a check that the script works")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="optimisation steps per stage (default 60; tiny: 2)")
    parser.add_argument("--skip", default="", type=choices(("tests", "benchmark", "training")),
                        help="comma-separated parts to leave out: tests, benchmark, training")
    args = parser.parse_args(argv)
    with one_line_errors("gpu_check"):
        output_file(args.json, "--json", is_ours=written_by("gpu_check.py"),
                    what="a result of benchmarks/gpu_check.py")
    skip = set(filter(None, args.skip.split(",")))
    device = "cpu" if args.tiny else "cuda"
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: error: no CUDA GPU here (use --tiny for the CPU run)",
                  file=sys.stderr)
            return 2
        if "training" not in skip and not (PHOTOS / "train").is_dir():
            print(f"gpu_check: error: {PHOTOS}/train missing; run tools/prepare_gpu_check.py "
                  "and carry .photos128", file=sys.stderr)
            return 2
    started = time.perf_counter()
    result: dict = {"meta": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             "command": "python " + " ".join(
                                 [os.path.relpath(__file__, REPO)] + (argv or sys.argv[1:])),
                             "tiny": args.tiny, **device_facts(device)}}
    py = sys.executable
    if "tests" not in skip:
        part = run("tests", [py, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p",
                             "no:cacheprovider", "tests"], args.tiny)
        part["counts"] = pytest_counts(part["output_tail"])
        # pytest's 5: nothing selected ran (no test is marked cuda) - a failure of this check.
        result["tests"] = part
    peer = (REPO.parent / "shared" / "reference").is_dir() or CARRIED_SHARED.is_dir()
    if "benchmark" not in skip and args.tiny and not peer:
        # The benchmark measures colorlib against the seed tutorial's code, which lives only
        # beside the checkout; the project's tests must pass without it, so the tiny CPU run
        # records why the part did not run. On a GPU a missing peer stays a failure.
        result["benchmark"] = {"skipped": "no seed peer: ../shared/reference is not beside "
                                          "this checkout", "returncode": 0}
    elif "benchmark" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run.json"
            cmd = [py, "benchmarks/run.py", "--device", device, "--quick", "--json", str(out)]
            if args.tiny:
                cmd += ["--only", "data", "--workers", "0", "--threads", "1"]
            env = {}
            if not (REPO.parent / "shared" / "reference").is_dir() and CARRIED_SHARED.is_dir():
                env["COLORLIB_SHARED"] = str(CARRIED_SHARED)
            part = run("benchmark", cmd, args.tiny, env)
            if out.is_file():
                part["results"] = json.loads(out.read_text())
            result["benchmark"] = part
    if "training" not in skip:
        result["training"] = train_stages(args, device)
    result["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    result["meta"]["budget_s"] = BUDGET_S
    failed = [name for name, part in result.items() if name != "meta" and not _ok(name, part)]
    result["ok"] = not failed
    result["failed"] = failed
    with one_line_errors("gpu_check"):
        write_text(args.json, json.dumps(result, indent=2, default=str) + "\n")
    over = "" if args.tiny or result["meta"]["seconds"] <= BUDGET_S else \
        f" (over the {BUDGET_S} s budget)"
    print(f"wrote {args.json}: {'ok' if not failed else 'FAILED: ' + ', '.join(failed)}, "
          f"{result['meta']['seconds']:.0f} s{over}")
    return 0 if not failed else 1


def _ok(name: str, part: dict) -> bool:
    if name == "training":
        return all(p.get("returncode") == 0 for p in part.values())
    if name == "tests" and not part.get("counts", {}).get("passed") and \
            not part.get("counts", {}).get("skipped"):
        return False
    return part.get("returncode") == 0


def train_stages(args, device: str) -> dict:
    """baseline, pretrain, then gan from that pretrain: brief runs at 128 px (tiny: 32 px)."""
    steps = args.steps or (2 if args.tiny else 60)
    data, size, batch = ("tiny", "32", "4") if args.tiny else (str(PHOTOS), "128", "32")
    parts: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = Path(tmp) / "checkpoints"
        common = ["--data", data, "--size", size, "--batch-size", batch, "--max-steps", str(steps),
                  "--checkpoint-dir", str(ckpts), "--weights", "none", "--overwrite",
                  "--no-progress", "--device", device,
                  "--workers", "0" if args.tiny else "4"]
        for stage in ("baseline", "pretrain", "gan"):
            extra = ["--init", str(ckpts / "pretrain.pt")] if stage == "gan" else []
            part = run(f"train_{stage}", [sys.executable, "-m", "colorlib", "train", "--stage",
                                          stage, *common, *extra], args.tiny)
            if part["returncode"] == 0 and (ckpts / f"{stage}.pt").is_file():
                part.update(checkpoint_facts(ckpts / f"{stage}.pt", int(batch)))
            parts[stage] = part
        if parts["gan"]["returncode"] == 0:
            if args.tiny:
                from colorlib.photos.tiny_set import build_tiny_set

                val = build_tiny_set() / "photos"
            else:
                val = PHOTOS / "val"
            part = run("export", [sys.executable, "-m", "colorlib", "export",
                                  str(ckpts / "gan.pt")], args.tiny)
            if (ckpts / "gan-generator.pt").is_file():
                part["size_mb"] = round((ckpts / "gan-generator.pt").stat().st_size / 2**20, 1)
            parts["export"] = part
            part = run("colorize", [sys.executable, "-m", "colorlib", "colorize", str(val),
                                    "--checkpoint", str(ckpts / "gan-generator.pt"), "--out",
                                    str(Path(tmp) / "colorized"), "--device", device], args.tiny)
            done = list((Path(tmp) / "colorized").glob("*.png"))
            part["photos"] = len(done)
            if done and part["seconds"]:
                part["photos_per_s_with_startup"] = round(len(done) / part["seconds"], 2)
            parts["colorize"] = part
    return parts


if __name__ == "__main__":
    sys.exit(main())
