"""The long quality run: every stage trained for whole epochs on the shared photos, resumable.

It runs from its own git worktree at a fixed commit, with its own install, so that work on
the checkout cannot change a run in progress (each step is a new process that imports
colorlib afresh). One command starts it and the same command continues it after any
interruption (each step resumes from its checkpoint, or is skipped when it is complete)::

    git worktree add ../long64-src <commit> && cd ../long64-src && python -m venv .venv \
        && .venv/bin/pip install -e .
    nohup nice -n 5 .venv/bin/python benchmarks/long_run.py run >> ../runs/long64.log 2>&1 &

On a GPU the tutorial's own schedule is ``run --device cuda --size 256 --pretrain-epochs 20
--gan-epochs 20`` (mixed precision there; ``--cpu-amp`` is passed on the CPU only, where it
means bf16 if the CPU has it natively and fp32 otherwise). ``--size 128`` is the CPU
alternative; its cost is in ``benchmarks/RESULTS.md``.

And one command turns whatever has finished into the committed results file::

    python benchmarks/long_run.py report

Steps, in order (``--threads`` torch threads each):

1. ``colorlib_pretrain``: the ResNet18 U-Net, L1 only, ``--pretrain-epochs`` (10) epochs.
2. ``colorlib_gan``: GAN + 100*L1 fine-tuning for ``--gan-epochs`` (5) epochs, one epoch
   per call so that every epoch's checkpoint is kept (``gan_epochs/``); the epoch with the
   lowest validation L1 is the ablation's first variant.
3. ``colorlib_baseline``: the pix2pix U-Net from scratch, ``--baseline-epochs`` (10) epochs.
4. ``seed_pretrain``: the seed tutorial's own L1 pretraining loop
   (``../shared/reference/seed_tutorial.py``) for the same training seconds as step 1,
   same threads, fp32 as the seed has it, validated on the same photos once per epoch.
5. ``evaluate``: ``colorlib evaluate`` on the 300 validation photos at full resolution for
   every finished model (the greyscale baseline comes with each report).

Optional steps, only with ``--optional``, and only after steps 1-5 are done:
``gan_lowlr`` (the same fine-tuning with a 4x lower generator learning rate),
``seed_gan`` (the seed's GAN loop for the same seconds as step 2) and ``classify``
(the ResNet18 U-Net predicting a*b* classes, Zhang et al.'s loss, ``--classify-epochs``
(10) epochs; notebook 04), scored twice: decoded with the annealed mean at T = 0.38, as
everywhere, and with the plain mean (T = 1) as the decoding's ablation.

Every subprocess is logged to ``<out>/steps.jsonl`` with the commit it ran from, its
command, wall-clock and CPU seconds and the load average, so the report can say what ran
where.

Every file it writes follows colorlib's output rule (``benchmarks/bench_outputs.py``):
``--out`` and, for ``report``, ``--results`` and ``--plot`` are decided before any work
(one line naming the flag if unusable); ``--results`` and ``--plot`` never replace a file
of the run they read (its steps log, checkpoints, scores, photos), nor a file colorlib did
not write, but do replace the results file and plot an earlier report wrote; every file
(the report, the plot, ``steps.jsonl``, the kept epochs, the seed's checkpoints) is written
atomically, so a full disk keeps the earlier file and names it.

No ImageNet weights can be had on this machine, so both ResNet18 encoders start from the
same random initialisation. Checkpoints stay under ``--out`` (git-ignored): weights trained
on the shared photos are never committed. ``report`` writes
``colorlib/teaching/published_results.json``, the one file every quoted number comes from.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_outputs import (append_line, count, different, input_folder, one_line_errors,
                           output_file, output_folder, plot_output, positive_int, save_plot, seed,
                           size, write_text, written_by)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data" / "photos"
RESULTS = ROOT / "colorlib" / "teaching" / "published_results.json"
TTQ_PLOT = ROOT / "benchmarks" / "time_to_quality.png"  # drawn by report, shown in RESULTS.md
LOWLR = 5e-5  # the ablation variant: a quarter of the default 2e-4
OPTIONAL = ("gan_lowlr", "seed_gan", "classify")


def log(msg: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)


def _env(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    return env


def commit() -> str:
    """The commit this script's checkout is at (``+dirty`` if it has changes)."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def logged_run(args, name: str, cmd: list[str], done=lambda: False) -> None:
    """Run one step's subprocess and append what it cost to ``<out>/steps.jsonl``.

    A non-zero exit stops the run, unless ``done()`` says the step's output is there
    anyway (``colorlib evaluate`` exits 1 when it lists photos it could not score).
    """
    log("run: " + " ".join(cmd))
    start, cpu, load = time.time(), _children_cpu(), os.getloadavg()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(args.threads))
    rec = {"step": name, "commit": commit(), "command": cmd, "returncode": proc.returncode,
           "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)),
           "wall_seconds": round(time.time() - start, 1),
           "cpu_seconds": round(_children_cpu() - cpu, 1),
           "loadavg_start": [round(x, 2) for x in load],
           "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
    append_line(args.out / "steps.jsonl", json.dumps(rec))
    if proc.returncode and not done():
        raise SystemExit(f"step {name} failed (exit {proc.returncode}); run the same command "
                         "again to resume")


def _ckpt_info(path: Path) -> dict | None:
    """epoch / step / seconds / histories of a colorlib checkpoint, or None."""
    if not path.is_file():
        return None
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    keys = ("stage", "epoch", "batch_in_epoch", "step", "train_seconds", "history", "val_history",
            "train", "model")
    return {k: ck.get(k) for k in keys}


def colorlib_train(args, stage: str, epochs: int, folder: Path, extra: list[str] = ()) -> None:
    cmd = [sys.executable, "-m", "colorlib", "train", "--stage", stage, "--data", str(args.data),
           "--size", str(args.size), "--batch-size", str(args.batch_size), "--epochs", str(epochs),
           "--checkpoint-dir", str(folder), "--weights", "none", "--device", args.device,
           *(["--cpu-amp"] if args.device == "cpu" else []), "--resume",
           "--save-every", str(args.save_every), "--seed", str(args.seed), "--no-progress",
           *extra]
    logged_run(args, f"{folder.name}/{stage}", cmd)


def stage_done(path: Path, epochs: int) -> bool:
    info = _ckpt_info(path)
    return info is not None and info["epoch"] >= epochs


def gan_by_epoch(args, folder: Path, init: Path, extra: list[str] = ()) -> None:
    """Fine-tune one epoch per call, keeping a copy of the checkpoint after each epoch."""
    keep = folder / "gan_epochs"
    keep.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, args.gan_epochs + 1):
        snap = keep / f"gan_e{epoch}.pt"
        if snap.exists():
            continue
        colorlib_train(args, "gan", epoch, folder, ["--init", str(init), *extra])
        keep_copy(folder / "gan.pt", snap)


def keep_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically, with its times (as ``shutil.copy2`` does)."""
    from colorlib.system.atomic_files import atomic_write

    with open(src, "rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out, 1 << 22))
    shutil.copystat(src, dst)


# ---------------------------------------------------------------------- seed
def seed_train(args, stage: str, seconds: float) -> None:
    """The seed's loop for ``seconds`` of training time, saving a resumable state."""
    import torch
    from torch import nn, optim

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality_run import _import_seed, export_seed_generator, seed_paths

    torch.set_num_threads(args.threads)
    st = _import_seed()
    out = args.out / "seed"
    out.mkdir(parents=True, exist_ok=True)
    state_path, final = out / f"{stage}_state.pt", out / f"{stage}.pt"
    if final.exists():
        return
    torch.manual_seed(args.seed)  # the same random initialisation as colorlib's encoder
    net_G = st.build_res_unet(n_input=1, n_output=2, size=args.size, device=args.device,
                              pretrained=False)
    if stage == "gan":
        from colorlib.training.checkpoint import load_checkpoint

        net_G.load_state_dict(load_checkpoint(out / "pretrain.pt")["generator"])
        model = st.MainModel(net_G=net_G, lambda_L1=100.0, device=args.device)
        modules = {"model": model, "opt_G": model.opt_G, "opt_D": model.opt_D}

        def step_fn(data):
            model.setup_input(data)
            model.optimize()
            return {"loss_D": model.loss_D.item(), "loss_G_GAN": model.loss_G_GAN.item(),
                    "loss_G_L1": model.loss_G_L1.item()}
    else:
        opt, criterion = optim.Adam(net_G.parameters(), lr=1e-4), nn.L1Loss()
        modules = {"net_G": net_G, "opt": opt}

        def step_fn(data):
            return {"loss_G_L1": st.pretrain_step(net_G, opt, criterion, data,
                                                  device=args.device)}
    done, step, history = 0.0, 0, []
    if state_path.exists():
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        for k, m in modules.items():
            m.load_state_dict(saved[k])
        done, step, history = saved["seconds"], saved["step"], saved["history"]
        log(f"seed {stage}: resumed at step {step}, {done:.0f} of {seconds:.0f} s")
    paths = seed_paths(args.data / "train")
    dl = st.make_dataloaders(batch_size=args.batch_size, n_workers=0, pin_memory=False,
                             paths=paths, split="train", size=args.size)
    steps_per_epoch = len(dl)
    val_L, val_ab = seed_validation_batch(args)
    val_history = saved.get("val_history", []) if state_path.exists() else []

    def validate() -> None:
        """colorlib's per-epoch measurement: L1 on the same 16 validation photos, eval mode."""
        net_G.eval()
        with torch.no_grad():
            loss = (net_G(val_L) - val_ab).abs().mean().item()
        net_G.train()
        val_history.append({"epoch": step // steps_per_epoch, "step": step,
                            "train_seconds": round(done, 2), "val_l1": loss})
        log(f"seed {stage}: step {step}, {done:.0f} s, val L1 {loss:.5f}")

    def save() -> None:  # atomically: a full disk keeps the previous state and says so
        from colorlib.training.checkpoint import save_checkpoint

        save_checkpoint({**{k: m.state_dict() for k, m in modules.items()}, "seconds": done,
                         "step": step, "history": history, "val_history": val_history},
                        state_path)

    last_save = time.perf_counter()
    while done < seconds:
        for data in dl:
            t = time.perf_counter()
            losses = step_fn(data)
            done += time.perf_counter() - t
            step += 1
            history.append({"step": step, "epoch": (step - 1) // steps_per_epoch,
                            **losses})
            if step % steps_per_epoch == 0 and stage == "pretrain":
                validate()
            if time.perf_counter() - last_save > 300:
                save()
                last_save = time.perf_counter()
            if done >= seconds:
                break
    if stage == "pretrain" and (not val_history or val_history[-1]["step"] != step):
        validate()  # the end of the budget, mid-epoch
    save()
    info = {"steps": step, "seconds": round(done, 1), "history": history,
            "val_history": val_history}
    net_G.eval()
    export_seed_generator(net_G, stage, args.size, info, final)
    log(f"seed {stage}: {step} steps in {done:.0f} s -> {final}")


def seed_validation_batch(args):
    """The batch colorlib's trainer validates on (the first ``--batch-size`` validation
    photos), normalised by colorlib, which the seed's Lab scaling matches (L/50 - 1, ab/110)."""
    from colorlib.data.loading import prepare_batch
    from colorlib.data.sources import DataConfig, resolve_source
    from colorlib.training.runner import _validation_batch

    cfg = DataConfig(source=str(args.data), size=args.size, batch_size=args.batch_size)
    _, val_paths = resolve_source(cfg)
    return prepare_batch(_validation_batch(val_paths, cfg), args.device)


# ------------------------------------------------------------------ evaluate
MODELS = {  # key: checkpoint relative to --out
    "colorlib_pretrain": "colorlib/pretrain.pt",
    "colorlib_gan": "colorlib/gan.pt",
    "colorlib_baseline": "baseline/baseline.pt",
    "gan_lowlr": "gan_lowlr/gan.pt",
    "seed_pretrain": "seed/pretrain.pt",
    "seed_gan": "seed/gan.pt",
    "colorlib_classify": "classify/classify.pt",
}


def evaluate(args, key: str, ckpt: Path, extra: tuple[str, ...] = ()) -> None:
    out = args.out / "eval" / f"{key}.json"

    def done() -> bool:
        return out.exists() and out.stat().st_mtime > ckpt.stat().st_mtime

    if done():
        return
    cmd = [sys.executable, "-m", "colorlib", "evaluate", "--checkpoint", str(ckpt),
           "--data", str(args.data / "val"), "--json", str(out), "--no-progress",
           "--device", args.device, *extra]
    if out.exists():  # this run's report of an older checkpoint: replacing it is the point
        cmd.append("--overwrite")
    # exit 1 with the report written: a photo could not be scored (the validation set has a
    # greyscale one, listed in the report as unusable), every other one was
    logged_run(args, f"evaluate/{key}", cmd, done)


def best_gan_epoch(args) -> int | None:
    """The fine-tuning epoch with the lowest validation L1 (the ablation's first variant)."""
    info = _ckpt_info(args.out / "colorlib" / "gan.pt")
    vals = [v for v in (info or {}).get("val_history") or [] if "val_l1" in v]
    return min(vals, key=lambda v: v["val_l1"])["epoch"] if vals else None


def evaluate_all(args) -> None:
    """Score every finished model, and of the kept fine-tuning epochs the one chosen on
    validation L1 (the last epoch is ``gan.pt`` itself); each scoring takes minutes."""
    (args.out / "eval").mkdir(parents=True, exist_ok=True)
    for key, rel in MODELS.items():
        if (args.out / rel).is_file():
            evaluate(args, key, args.out / rel)
    best = best_gan_epoch(args)
    snap = args.out / "colorlib" / "gan_epochs" / f"gan_e{best}.pt"
    if best is not None and best != args.gan_epochs and snap.is_file():
        evaluate(args, f"colorlib_gan_e{best}", snap)
    classify = args.out / MODELS["colorlib_classify"]
    if classify.is_file():  # the ablation of the decoding: the plain mean instead of T = 0.38
        evaluate(args, "colorlib_classify_mean", classify, ("--temperature", "1"))


# -------------------------------------------------------------------- report
STAGE_CKPTS = {  # stage key: (checkpoint relative to --out, target epochs attribute)
    "colorlib_pretrain": ("colorlib/pretrain.pt", "pretrain_epochs"),
    "colorlib_gan": ("colorlib/gan.pt", "gan_epochs"),
    "colorlib_baseline": ("baseline/baseline.pt", "baseline_epochs"),
    "gan_lowlr": ("gan_lowlr/gan.pt", "gan_epochs"),
    "seed_pretrain": ("seed/pretrain.pt", None),
    "seed_gan": ("seed/gan.pt", None),
    "colorlib_classify": ("classify/classify.pt", "classify_epochs"),
}
CORE = ("colorlib_pretrain", "colorlib_gan", "colorlib_baseline", "seed_pretrain")  # steps 1-4
LOSS_KEYS = ("loss_G_L1", "loss_G_GAN", "loss_D", "loss_G_class")
# steps.jsonl names of each stage's training calls
STEP_NAMES = {"colorlib_pretrain": "colorlib/pretrain", "colorlib_gan": "colorlib/gan",
              "colorlib_baseline": "baseline/baseline", "gan_lowlr": "gan_lowlr/gan",
              "colorlib_classify": "classify/classify"}


def epoch_log(history: list[dict], val_history: list[dict]) -> list[dict]:
    """Mean training losses per epoch (1-based) with that epoch's validation L1."""
    rows: dict[int, dict] = {}
    for h in history or []:
        row = rows.setdefault(int(h.get("epoch", 0)) + 1, {"n": 0})
        row["n"] += 1
        for k in LOSS_KEYS:
            if k in h:
                row[k] = row.get(k, 0.0) + float(h[k])
    out = []
    for epoch, row in sorted(rows.items()):
        n = row.pop("n")
        entry = {"epoch": epoch, "steps": n, **{k: round(v / n, 5) for k, v in row.items()}}
        val = [v["val_l1"] for v in val_history or [] if v["epoch"] == epoch]
        if val:
            entry["val_l1"] = round(float(val[-1]), 5)
        out.append(entry)
    return out


def step_log(args) -> list[dict]:
    """Every subprocess the run started, from ``<out>/steps.jsonl`` (oldest first)."""
    path = args.out / "steps.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_costs(steps: list[dict], name: str) -> dict:
    """Wall-clock and CPU seconds of every call of one step (a resumed stage has several)."""
    # 130: stopped by Ctrl-C after saving a checkpoint that the next call resumed
    calls = [r for r in steps if r["step"] == name and r["returncode"] in (0, 130)]
    return {"calls": len(calls),
            "wall_seconds": round(sum(r["wall_seconds"] for r in calls), 1),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in calls), 1),
            "commits": sorted({r["commit"] for r in calls})}


def stage_record(args, key: str, steps: list[dict] | None = None) -> dict | None:
    rel, target_attr = STAGE_CKPTS[key]
    info = _ckpt_info(args.out / rel)
    if info is None:
        return None
    images = len(list((args.data / "train").glob("*.jpg")))
    step = int(info["step"] or 0)
    seconds = float(info["train_seconds"] or 0.0)
    per_epoch = max(1, images // args.batch_size)  # the loader drops the last, partial batch
    epochs = int(info["epoch"] or 0) + int(info["batch_in_epoch"] or 0) / per_epoch
    if key.startswith("seed"):  # the seed's own loader keeps the partial batch
        epochs = step / -(-images // args.batch_size)
    rec = {"checkpoint": rel, "steps": step, "images_seen": step * args.batch_size,
           "epochs": round(epochs, 2), "train_minutes": round(seconds / 60, 1),
           "minutes_per_epoch": round(seconds / 60 / epochs, 1) if epochs else None,
           "checkpoint_mb": round((args.out / rel).stat().st_size / 2**20, 1),
           "epoch_log": epoch_log(info["history"], info["val_history"]),
           "val_history": [{"step": v["step"], "epoch": v["epoch"],
                            "train_minutes": round(v.get("train_seconds", 0.0) / 60, 2),
                            "val_l1": round(float(v["val_l1"]), 5)}
                           for v in info["val_history"] or [] if "val_l1" in v]}
    if key in STEP_NAMES:  # a colorlib stage: its subprocesses' wall and CPU seconds
        rec["process"] = step_costs(steps or [], STEP_NAMES[key])
    else:  # the seed trains inside the orchestrating process: only its training seconds
        rec["process"] = {"note": "trained in long_run.py's own process; training seconds only"}
    if target_attr is not None:
        rec["target_epochs"] = getattr(args, target_attr)
        rec["complete"] = int(info["epoch"] or 0) >= rec["target_epochs"]
    else:  # the seed's budget is colorlib's seconds for the same stage
        rec["complete"] = True
    if info.get("train"):
        rec["lr_g"] = info["train"].get("lr_g")
    return rec


def scores(args) -> dict:
    out = {}
    for f in sorted((args.out / "eval").glob("*.json")):
        rep = json.loads(f.read_text())
        out[f.stem] = {k: round(float(v), 4) for k, v in rep["model"].items()}
        if "greyscale" in rep.get("baselines", {}):
            out["greyscale"] = {k: round(float(v), 4)
                                for k, v in rep["baselines"]["greyscale"].items()}
        out[f.stem]["images"] = rep["images"]
    return out


def ablation(stages: dict, sc: dict) -> dict:
    """The fine-tuning variants at equal budget, and which one won on validation PSNR."""
    gan = stages.get("colorlib_gan")
    variants = {"colorlib_gan": "lr_G 2e-4 (default), last epoch",
                "gan_lowlr": f"lr_G {LOWLR:g}, last epoch"}
    best = None
    if gan and gan["epoch_log"]:
        with_val = [e for e in gan["epoch_log"] if "val_l1" in e]
        if with_val:
            best = min(with_val, key=lambda e: e["val_l1"])["epoch"]
            variants["gan_best_epoch"] = (f"lr_G 2e-4, epoch {best} of {len(gan['epoch_log'])}, "
                                          "chosen by validation L1")
            if f"colorlib_gan_e{best}" in sc:
                sc["gan_best_epoch"] = dict(sc[f"colorlib_gan_e{best}"])
            elif best == len(gan["epoch_log"]) and "colorlib_gan" in sc:  # the last one
                sc["gan_best_epoch"] = dict(sc["colorlib_gan"])
    scored = {k: sc[k]["psnr"] for k in variants if k in sc}
    return {"variants": variants, "best_epoch": best,
            "winner": max(scored, key=scored.get) if len(scored) == len(variants) else None,
            "selection_note": "the validation L1 is measured on the first 16 of the 300 "
                              "validation photos, which are also among those scored"}


def targets(sc: dict, stages: dict) -> list[dict]:
    """The results issue's targets, judged on the validation scores.

    "Final generator" is the fine-tuning variant chosen on validation L1
    (``gan_best_epoch``) when it was scored, else the last epoch.
    """
    rows = []

    def add(name, value, threshold, met):
        rows.append({"target": name, "value": None if value is None else round(value, 3),
                     "threshold": threshold, "met": bool(met)})

    grey, pre = sc.get("greyscale"), sc.get("colorlib_pretrain")
    final_key = "gan_best_epoch" if "gan_best_epoch" in sc else "colorlib_gan"
    gan = sc.get(final_key)
    if grey and pre:
        d = pre["psnr"] - grey["psnr"]
        add("L1 generator PSNR above greyscale (dB)", d, ">= 1.0", d >= 1.0)
    if gan:
        add(f"final generator ({final_key}) |ΔCF|", abs(gan["delta_colorfulness"]), "<= 5",
            abs(gan["delta_colorfulness"]) <= 5)
        add(f"final generator ({final_key}) near-grey share", gan["grey_fraction"], "<= 0.35",
            gan["grey_fraction"] <= 0.35)
    if grey and gan:
        d = gan["psnr"] - grey["psnr"]
        add(f"final generator ({final_key}) PSNR minus greyscale (dB)", d, ">= -0.3", d >= -0.3)
        d = gan["auc"] - grey["auc"]
        add(f"final generator ({final_key}) AuC minus greyscale (points)", d, ">= 0", d >= 0)
    seed = sc.get("seed_pretrain")
    pre_stage, seed_stage = stages.get("colorlib_pretrain"), stages.get("seed_pretrain")
    if pre_stage and seed_stage and pre_stage["val_history"] and seed_stage["val_history"]:
        d = seed_stage["val_history"][-1]["val_l1"] - pre_stage["val_history"][-1]["val_l1"]
        add("L1 generator vs seed at equal seconds: validation L1 lower by", d, "> 0", d > 0)
    if pre and seed:
        d = pre["psnr"] - seed["psnr"]
        add("L1 generator vs seed at equal seconds: PSNR higher by (dB)", d, "> 0", d > 0)
    return rows


def minutes_to_reach(val_history: list[dict], level: float) -> float | None:
    """Training minutes until validation L1 first reached ``level``, linearly interpolated
    between the validations either side (None if it never did)."""
    prev = {"train_minutes": 0.0, "val_l1": None}
    for v in val_history:
        if v["val_l1"] <= level:
            if prev["val_l1"] is None or prev["val_l1"] == v["val_l1"]:
                return v["train_minutes"]
            frac = (prev["val_l1"] - level) / (prev["val_l1"] - v["val_l1"])
            return prev["train_minutes"] + frac * (v["train_minutes"] - prev["train_minutes"])
        prev = v
    return None


def time_to_quality(stages: dict) -> dict | None:
    """Minutes colorlib's L1 pretraining needed to reach the seed's final validation L1."""
    ours, seed = stages.get("colorlib_pretrain"), stages.get("seed_pretrain")
    if not (ours and seed and ours["val_history"] and seed["val_history"]):
        return None
    level = seed["val_history"][-1]["val_l1"]
    seed_minutes = seed["val_history"][-1]["train_minutes"]
    minutes = minutes_to_reach(ours["val_history"], level)
    return {"seed_final_val_l1": level, "seed_minutes": round(seed_minutes, 1),
            "colorlib_minutes": None if minutes is None else round(minutes, 1),
            "ratio": None if not minutes else round(seed_minutes / minutes, 1),
            "method": "colorlib's validation L1 after each epoch, linearly interpolated to the "
                      "first crossing of the seed's final validation L1; training seconds "
                      "(validation and saving excluded) on the same machine"}


def software() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "fastai", "kornia", "numpy", "scikit-image", "pillow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def precision() -> str:
    """What ``--cpu-amp`` amounted to here: bf16 only where the CPU has it natively."""
    from colorlib.system.device import cpu_has_native_bf16

    ours = "bf16 autocast" if cpu_has_native_bf16() else "fp32 (this CPU has no native bf16)"
    return f"colorlib: {ours}; seed tutorial: fp32"


def machine() -> dict:
    """quality_run's machine facts plus the GPU, if any."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality_run import machine_info

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    info = machine_info()
    try:
        flags = next(line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                     if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = []
    info["cpu_flags"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                         if f in flags]
    info["loadavg"] = [round(x, 2) for x in info["loadavg"]]  # as JSON reads it back
    return {**info, "gpu": gpu,
            "note": "shared with other work while training; minutes are wall-clock"}


def run_command(args) -> str:
    """The command that ran this schedule: the script and the flags that differ from defaults."""
    defaults = vars(build_parser().parse_args(["run"]))
    flags = []
    for key in ("size", "batch_size", "threads", "device", "seed", "pretrain_epochs",
                "gan_epochs", "baseline_epochs", "classify_epochs"):
        if getattr(args, key) != defaults[key]:
            flags.append(f"--{key.replace('_', '-')} {getattr(args, key)}")
    return " ".join(["nice -n 5 python benchmarks/long_run.py run", *flags])


def report_inputs(args) -> list[tuple[str, list[Path]]]:
    """What ``report`` reads: no output of it may replace one of these."""
    return [("the run's steps log", [args.out / "steps.jsonl"]),
            ("a checkpoint of --out", [args.out / rel for rel, _ in STAGE_CKPTS.values()]),
            ("a score of --out", sorted((args.out / "eval").glob("*.json"))),
            ("a photo of --data", [p for split in ("train", "val")
                                   for p in sorted((args.data / split).glob("*.jpg"))])]


def check_report_outputs(args) -> None:
    """Decide ``--results`` and ``--plot`` before reading anything (one line if refused)."""
    input_folder(args.out, "--out")
    inputs = report_inputs(args)
    plot = getattr(args, "plot", None)
    different({"--results": args.results, "--plot": plot})
    output_file(args.results, "--results", is_ours=written_by("long_run.py"),
                what="a results file of benchmarks/long_run.py", inputs=inputs)
    if plot is not None:
        plot_output(plot, "--plot", inputs=inputs)


def report(args) -> dict:
    check_report_outputs(args)
    steps = step_log(args)
    stages = {k: r for k in STAGE_CKPTS if (r := stage_record(args, k, steps)) is not None}
    sc = scores(args)
    core_done = all(k in stages and stages[k]["complete"] and k in sc for k in CORE)
    result = {
        "schema": 1,
        "status": "complete" if core_done else "partial",
        "written": time.strftime("%Y-%m-%d"),
        "command": run_command(args),
        "commits": sorted({r["commit"] for r in steps}),
        "settings": {"train_photos": len(list((args.data / "train").glob("*.jpg"))),
                     "val_photos": len(list((args.data / "val").glob("*.jpg"))),
                     "size": args.size, "batch_size": args.batch_size, "seed": args.seed,
                     "threads": args.threads, "precision": precision(),
                     "encoder_weights": "none: random initialisation "
                     "(ImageNet weights cannot be downloaded on this machine)"},
        "machine": machine(), "software": software(),
        "stages": stages, "scores": sc, "ablation": ablation(stages, sc),
        "time_to_quality": time_to_quality(stages),
        "notes": list(getattr(args, "note", None) or []),
    }
    result["targets"] = targets(sc, stages)
    write_text(args.results, json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {args.results} ({result['status']})")
    if result["time_to_quality"] and getattr(args, "plot", None):
        plot_time_to_quality(result, args.plot)
        log(f"wrote {args.plot}")
    return result


def plot_time_to_quality(result: dict, path: Path) -> None:
    """Validation L1 against training minutes, colorlib's L1 pretraining and the seed's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ttq = result["time_to_quality"]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ours = result["settings"]["precision"].split(";")[0].removeprefix("colorlib: ")
    for key, label, style in (("colorlib_pretrain", f"colorlib ({ours})", "o-"),
                              ("seed_pretrain", "seed tutorial (fp32)", "s--")):
        hist = result["stages"][key]["val_history"]
        ax.plot([0] + [v["train_minutes"] for v in hist],
                [None] + [v["val_l1"] for v in hist], style, label=label)
    ax.axhline(ttq["seed_final_val_l1"], color="grey", lw=0.8, ls=":")
    if ttq["colorlib_minutes"] is not None:
        ax.axvline(ttq["colorlib_minutes"], color="grey", lw=0.8, ls=":")
        ax.set_title(f"seed's final validation L1 reached in {ttq['colorlib_minutes']:g} min "
                     f"instead of {ttq['seed_minutes']:g} ({ttq['ratio']:g}x)", fontsize=10)
    ax.set_xlabel("training minutes (validation and saving excluded)")
    ax.set_ylabel("validation L1 (normalised ab, 16 photos)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_plot(fig, path, dpi=110)


def run(args) -> None:
    col, base, low = args.out / "colorlib", args.out / "baseline", args.out / "gan_lowlr"
    log(f"long run: {args.out}, {args.size} px, batch {args.batch_size}, {args.threads} threads, "
        f"commit {commit()}")
    colorlib_train(args, "pretrain", args.pretrain_epochs, col)
    gan_by_epoch(args, col, col / "pretrain.pt")
    colorlib_train(args, "baseline", args.baseline_epochs, base)
    seed_train(args, "pretrain", _ckpt_info(col / "pretrain.pt")["train_seconds"])
    evaluate_all(args)
    log("steps 1-5 complete")
    if "gan_lowlr" in args.optional:
        low.mkdir(parents=True, exist_ok=True)
        colorlib_train(args, "gan", args.gan_epochs, low,
                       ["--init", str(col / "pretrain.pt"), "--lr-g", str(LOWLR)])
    if "seed_gan" in args.optional:
        seed_train(args, "gan", _ckpt_info(col / "gan.pt")["train_seconds"])
    if "classify" in args.optional:
        colorlib_train(args, "classify", args.classify_epochs, args.out / "classify")
    if args.optional:
        evaluate_all(args)
    log("long run complete; now: python benchmarks/long_run.py report --out " + str(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "evaluate", "report"))
    parser.add_argument("--out", type=Path, default=ROOT.parent / "runs" / "long64",
                        help="run folder, outside the repository (default ../runs/long64)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--size", type=size, default=64)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--device", default="cpu",
                        help="cpu (bf16 where the CPU has it) or cuda (mixed precision)")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--save-every", type=count, default=100)
    parser.add_argument("--pretrain-epochs", type=positive_int, default=10)
    parser.add_argument("--gan-epochs", type=positive_int, default=5)
    parser.add_argument("--baseline-epochs", type=positive_int, default=10)
    parser.add_argument("--classify-epochs", type=positive_int, default=10)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--note", action="append",
                        help="report: a sentence on how this run deviated from the schedule")
    parser.add_argument("--plot", type=Path, default=TTQ_PLOT,
                        help="report: where to draw validation L1 against minutes")
    parser.add_argument("--optional", nargs="*", default=[], choices=OPTIONAL,
                        help="extra steps after steps 1-5")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    with one_line_errors("long_run.py"):
        args.out = args.out.resolve()
        if args.command == "report":  # reads the run folder; writes --results and --plot
            report(args)
            return
        output_folder(args.out, "--out")
        if args.command == "run":
            run(args)
        else:
            evaluate_all(args)


if __name__ == "__main__":
    main()
