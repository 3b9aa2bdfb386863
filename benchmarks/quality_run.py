"""Quality run: colorlib against the seed tutorial's pipeline, same photos, same wall clock.

    python benchmarks/quality_run.py all --out runs/photos64
    python benchmarks/quality_run.py {colorlib,seed} --stage {pretrain,gan,baseline} --minutes M --out DIR
    python benchmarks/quality_run.py evaluate --out DIR

What it trains and compares, the exact commands of the published run and its step counts:
``benchmarks/RESULTS.md``, section "Quality run". ``runs/`` is git-ignored: weights
trained on the shared photos must never be committed or shipped.

Every file it writes follows colorlib's output rule (``benchmarks/bench_outputs.py``):
``--out`` and ``--publish`` are decided before any work (one line naming the flag if
unusable); ``--publish``, ``<out>/results.json``, ``results.md``, ``logs/*.json`` and
``eval/*.json`` never replace an input of the command (a checkpoint, a photo, a score) nor
a file colorlib did not write, and replace their own earlier versions; all are written
atomically (a full disk keeps the earlier file and names it). The subprocesses' logs
(``logs/*.log``) are streamed, so that a crash keeps what they said.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from bench_outputs import (append_line, choices, count, different, input_folder, json_shaped,
                           one_line_errors, output_file, output_folder, positive_int,
                           positive_number, seed, size, text_starting, write_text, written_by)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_DATA = SHARED / "data" / "photos"
LOG_EVERY = 10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ colorlib
def train_colorlib(args) -> dict:
    """One colorlib stage with a wall-clock deadline instead of an epoch count."""
    from colorlib.data.loading import ColorizationDataset, make_loader
    from colorlib.data.sources import find_images
    from colorlib.models.networks import ModelConfig
    from colorlib.models.stages import get_stage
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Callback, Trainer

    class Deadline(Callback):
        """Stop at a wall-clock time; log the losses every LOG_EVERY steps."""

        def __init__(self, deadline: float):
            self.deadline = deadline

        def should_stop(self, trainer) -> bool:
            return time.perf_counter() >= self.deadline

        def on_step_end(self, trainer, losses) -> None:
            if trainer.step % LOG_EVERY == 0:
                log(f"colorlib {trainer.cfg.stage} step {trainer.step}: "
                    + ", ".join(f"{k}={v:.4f}" for k, v in losses.items()))

    out = args.out / "colorlib"
    paths = find_images(args.data / "train")
    stage = get_stage(args.stage)
    model_cfg = ModelConfig(arch=stage.arch, size=args.size, num_filters=args.filters)
    cfg = TrainConfig(stage=args.stage, epochs=1_000_000, seed=args.seed,
                      max_steps=args.steps or None)
    init = out / f"{stage.init_from}.pt" if stage.init_from else None
    torch.manual_seed(args.seed)
    trainer = Trainer.build(model_cfg, cfg, args.device, weights="none", init=init)
    trainer.policy.prepare_process()
    loader = make_loader(ColorizationDataset(paths, args.size, lab=False), args.batch_size,
                         train=True, seed=args.seed)
    log(f"colorlib {args.stage}: {len(paths)} photos, {args.size} px, batch {args.batch_size}, "
        f"{args.minutes} min, {torch.get_num_threads()} thread(s)")
    start = time.perf_counter()
    trainer.fit(loader, checkpoint=out / f"{args.stage}.pt", progress=False,
                callbacks=[Deadline(start + args.minutes * 60)])
    seconds = time.perf_counter() - start
    return {"pipeline": "colorlib", "stage": args.stage, "steps": trainer.step,
            "images_seen": trainer.step * args.batch_size, "seconds": round(seconds, 1),
            "epochs": round(trainer.step * args.batch_size / len(paths), 3),
            "last": trainer.history[-1] if trainer.history else {},
            "checkpoint": str(out / f"{args.stage}.pt")}


# ---------------------------------------------------------------------- seed
def _import_seed():
    sys.path.insert(0, str(SHARED / "reference"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import seed_tutorial
    return seed_tutorial


def seed_paths(folder: Path, seed: int = 123) -> list[str]:
    """The tutorial's way: list the photos, shuffle them once with NumPy seed 123."""
    paths = sorted(str(p) for p in folder.glob("*.jpg"))
    np.random.seed(seed)
    return list(np.random.permutation(paths))


def export_seed_generator(net_G, stage: str, size: int, info: dict, path: Path) -> Path:
    """Store the seed's generator as a colorlib checkpoint (same DynamicUnet layout)."""
    from colorlib import __version__
    from colorlib.models.networks import ModelConfig
    from colorlib.training.checkpoint import save_checkpoint

    payload = {"stage": stage, "model": ModelConfig(arch="resnet18_unet", size=size).to_dict(),
               "generator": {k: v.detach().cpu() for k, v in net_G.state_dict().items()},
               "weights": "none", "colorlib_version": __version__,
               "source": "seed_tutorial (exported by benchmarks/quality_run.py)",
               "step": info["steps"], "train_seconds": info["seconds"],
               "history": info.pop("history"), "val_history": info.pop("val_history", [])}
    return save_checkpoint(payload, path)


def train_seed(args) -> dict:
    """The seed tutorial's loops, run until the same deadline as colorlib's."""
    st = _import_seed()
    from torch import nn, optim

    out = args.out / "seed"
    paths = seed_paths(args.data / "train")
    torch.manual_seed(args.seed)  # the same random encoder/decoder init as colorlib's
    net_G = st.build_res_unet(n_input=1, n_output=2, size=args.size, device=args.device,
                              pretrained=False)
    # n_workers=0: in-process loading, as for colorlib (2 cores, shared).
    dl = st.make_dataloaders(batch_size=args.batch_size, n_workers=0, pin_memory=False,
                             paths=paths, split="train", size=args.size)
    if args.stage == "pretrain":
        opt, criterion = optim.Adam(net_G.parameters(), lr=1e-4), nn.L1Loss()
        step_fn = lambda data: {"loss_G_L1": st.pretrain_step(net_G, opt, criterion, data,  # noqa: E731
                                                              device=args.device)}
    else:
        from colorlib.training.checkpoint import load_checkpoint

        net_G.load_state_dict(load_checkpoint(out / "pretrain.pt")["generator"])
        model = st.MainModel(net_G=net_G, lambda_L1=100.0, device=args.device)

        def step_fn(data):
            model.setup_input(data)
            model.optimize()
            return {"loss_D": model.loss_D.item(), "loss_G_GAN": model.loss_G_GAN.item(),
                    "loss_G_L1": model.loss_G_L1.item()}
    log(f"seed {args.stage}: {len(paths)} photos, {args.size} px, batch {args.batch_size}, "
        f"{args.minutes} min, {torch.get_num_threads()} thread(s)")
    history, step = [], 0
    start = time.perf_counter()
    deadline = start + args.minutes * 60
    while time.perf_counter() < deadline:
        for data in dl:
            losses = step_fn(data)
            step += 1
            history.append({"step": step, **losses})
            if step % LOG_EVERY == 0:
                log(f"seed {args.stage} step {step}: "
                    + ", ".join(f"{k}={v:.4f}" for k, v in losses.items()))
            if time.perf_counter() >= deadline or step == args.steps:
                break
        if step == args.steps:
            break
    seconds = time.perf_counter() - start
    info = {"pipeline": "seed", "stage": args.stage, "steps": step,
            "images_seen": step * args.batch_size, "seconds": round(seconds, 1),
            "epochs": round(step * args.batch_size / len(paths), 3),
            "last": history[-1] if history else {}, "history": history,
            "checkpoint": str(out / f"{args.stage}.pt")}
    net_G.eval()
    export_seed_generator(net_G, args.stage, args.size, info, out / f"{args.stage}.pt")
    return info


def seed_own_inference(size: int):
    """The seed's picture-making path, for any photo: squash to size x size, predict,
    lab_to_rgb, then (our addition, to compare at the photo's size) bicubic upscale."""
    st = _import_seed()
    from PIL import Image
    from torchvision import transforms

    def make(net):
        @torch.no_grad()
        def colorize_fn(rgb: np.ndarray) -> np.ndarray:
            from skimage.color import rgb2lab

            if rgb.dtype != np.uint8:  # the greyscale input, as a photo file would hold it
                rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
            h, w = rgb.shape[:2]
            img = transforms.Resize((size, size), Image.Resampling.BICUBIC)(Image.fromarray(rgb))
            lab = transforms.ToTensor()(rgb2lab(np.array(img)).astype("float32"))
            L = lab[[0], ...][None] / 50.0 - 1.0
            out = st.lab_to_rgb(L, net(L))[0]
            up = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
            return np.asarray(up.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32) / 255
        return colorize_fn
    return make


# ------------------------------------------------------------------ evaluate
ROWS = [  # (key, label, checkpoint relative to --out)
    ("greyscale", "greyscale baseline (ab = 0)", None),
    ("colorlib_baseline", "colorlib pix2pix baseline (GAN + L1, from scratch)", "colorlib/baseline.pt"),
    ("colorlib_pretrain", "colorlib ResNet18 U-Net, L1 pretraining", "colorlib/pretrain.pt"),
    ("colorlib_gan", "colorlib ResNet18 U-Net, + GAN fine-tuning", "colorlib/gan.pt"),
    ("seed_pretrain", "seed ResNet18 U-Net, L1 pretraining", "seed/pretrain.pt"),
    ("seed_gan", "seed ResNet18 U-Net, + GAN fine-tuning", "seed/gan.pt"),
]


EVAL_PARTS = (("greyscale", "colorlib_baseline", "colorlib_pretrain", "colorlib_gan"),
              ("seed_pretrain", "seed_gan", "seed_gan_own_inference"))


def evaluate_part(args) -> None:
    """Evaluate the models named in ``--only`` on the val photos; one JSON report each."""
    from colorlib.inference.colorizer import load_generator
    from colorlib.inference.evaluate import evaluate_paths, find_eval_images, write_json
    from colorlib.inference.output_rule import is_colorlib_report

    paths = find_eval_images(args.data / "val")
    if args.limit:
        paths = paths[: args.limit]
    keys = [key for key in args.only.split(",") if key]
    ckpts = {key: rel for key, _, rel in ROWS}
    need_baseline = "greyscale" in keys
    todo = {}  # key -> checkpoint, each report decided before the first evaluation
    for key in keys:
        if key == "greyscale":
            continue  # scored alongside the first model evaluated in this part
        rel = ckpts.get(key, "seed/gan.pt" if key == "seed_gan_own_inference" else None)
        ckpt = args.out / rel
        if not ckpt.exists():
            log(f"skip {key}: {ckpt} missing")
            continue
        output_file(args.out / "eval" / f"{key}.json", "--out", what="a colorlib evaluate report",
                    is_ours=lambda p: is_colorlib_report(p, "evaluate"),
                    inputs=[("the checkpoint", [ckpt]), ("a photo of --data", paths)])
        todo[key] = ckpt
    for key, ckpt in todo.items():
        baseline, need_baseline = need_baseline, False  # once, with the first model found
        log(f"evaluating {key} ({ckpt}) on {len(paths)} photos")
        start = time.perf_counter()
        if key == "seed_gan_own_inference":
            net, cfg = load_generator(ckpt, device="cpu")
            report = evaluate_paths(paths, colorize_fn=seed_own_inference(cfg.size)(net),
                                    progress=False, baseline=baseline)
        else:
            report = evaluate_paths(paths, checkpoint=ckpt, progress=False, baseline=baseline)
        report["seconds"] = round(time.perf_counter() - start, 1)
        write_json(report, args.out / "eval" / f"{key}.json", replace=True)  # decided above
        log(f"{key}: {json.dumps({k: round(v, 3) for k, v in report['model'].items()})}")


def evaluate(args) -> dict:
    """All models, in two processes side by side, then the merged table."""
    check_report_outputs(args)
    cmds = [(f"evaluate_part{i}", _command("evaluate-part", args, only=",".join(part), threads=1,
                                           limit=args.limit))
            for i, part in enumerate(EVAL_PARTS)]
    _run_parallel(cmds, args)
    return report(args)


# What this script wrote earlier, by layout (run-folder files) or by its name (--publish).
IS_SUMMARY = json_shaped(("images", "data", "metrics", "training", "machine"))
IS_TABLE = text_starting("| model | steps (images seen) | train min |")
IS_TRAIN_LOG = json_shaped(("pipeline", "stage", "steps"),
                           lambda d: d["pipeline"] in ("colorlib", "seed"))


def report_inputs(args) -> list[tuple[str, list[Path]]]:
    """What ``report`` reads (and ``evaluate`` writes first): no summary may replace one."""
    return [("a score of --out", sorted((args.out / "eval").glob("*.json"))),
            ("a training log of --out", sorted((args.out / "logs").glob("*.json"))),
            ("a checkpoint of --out", [args.out / rel for _, _, rel in ROWS if rel])]


def check_report_outputs(args) -> None:
    """Decide results.json, results.md and ``--publish`` before any work."""
    inputs = report_inputs(args)
    different({"<out>/results.json": args.out / "results.json",
               "<out>/results.md": args.out / "results.md", "--publish": args.publish})
    output_file(args.out / "results.json", "--out", is_ours=IS_SUMMARY,
                what="a summary of benchmarks/quality_run.py", inputs=inputs)
    output_file(args.out / "results.md", "--out", is_ours=IS_TABLE,
                what="a table of benchmarks/quality_run.py", inputs=inputs)
    if args.publish is not None:
        output_file(args.publish, "--publish", is_ours=written_by("quality_run.py"),
                    what="a published summary of benchmarks/quality_run.py", inputs=inputs)


def report(args) -> dict:
    """Merge ``<out>/eval/*.json`` and the training logs into results.json and results.md."""
    check_report_outputs(args)
    results, images = {}, None
    for key in [k for part in EVAL_PARTS for k in part]:
        f = args.out / "eval" / f"{key}.json"
        if not f.exists():
            continue
        rep = json.loads(f.read_text())
        results[key] = rep["model"]
        if "greyscale" in rep["baselines"]:
            results["greyscale"] = rep["baselines"]["greyscale"]
        images = rep["images"]
    summary = {"images": images, "data": str(args.data / "val"), "metrics": results,
               "training": _read_train_info(args.out), "machine": machine_info()}
    write_text(args.out / "results.json", json.dumps(summary, indent=1))
    table = markdown_table(summary)
    write_text(args.out / "results.md", table)
    print(table)
    if args.publish is not None:
        write_text(args.publish, json.dumps(published(summary), indent=1) + "\n")
        print(f"published: {args.publish}")
    return summary


def published(summary: dict) -> dict:
    """What may be committed about a run: its numbers, never its weights or photos.

    Prose can quote such a file with ``<!--q:NAME:KEY-->`` markers once
    ``tests/test_quoted_numbers.py`` lists it in its SOURCES (none today: the
    committed figures come from the long run, ``colorlib/teaching/published_results.json``).
    """
    keep = ("steps", "images_seen", "epochs", "seconds", "minutes_budget", "threads", "size",
            "batch_size", "cpu_seconds")
    training = {key: {k: info[k] for k in keep if k in info}
                for key, info in summary["training"].items()}
    for info in training.values():
        info["minutes"] = round(info.get("seconds", 0.0) / 60, 1)
    metrics = {key: {k: round(v, 4) for k, v in m.items() if isinstance(v, (int, float))}
               for key, m in summary["metrics"].items()}
    machine = {k: v for k, v in summary["machine"].items() if k != "loadavg"}
    return {"schema": 1, "what": "benchmarks/quality_run.py: colorlib and the seed tutorial "
            "trained side by side with equal wall-clock deadlines, then evaluated",
            "val_photos": summary["images"], "machine": machine, "training": training,
            "scores": metrics}


def _read_train_info(out: Path) -> dict:
    info = {}
    for f in sorted((out / "logs").glob("*.json")) if (out / "logs").exists() else []:
        info[f.stem] = json.loads(f.read_text())
    return info


LABELS = dict((k, label) for k, label, _ in ROWS)
LABELS["seed_gan_own_inference"] = ("seed ResNet18 U-Net + GAN, the seed's own inference "
                                    "(squashed to size x size, upscaled)")


def markdown_table(summary: dict) -> str:
    cols = [("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("auc", "AuC %", "{:.2f}"),
            ("colorfulness", "CF", "{:.1f}"), ("delta_colorfulness", "ΔCF", "{:.1f}"),
            ("grey_fraction", "grey px %", "{:.1f}")]
    train = summary["training"]
    lines = ["| model | steps (images seen) | train min | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    order = ["greyscale", "colorlib_baseline", "colorlib_pretrain", "colorlib_gan",
             "seed_pretrain", "seed_gan", "seed_gan_own_inference"]
    for key in order:
        m = summary["metrics"].get(key)
        if m is None:
            continue
        tkey = {"seed_gan_own_inference": "seed_gan"}.get(key, key)
        steps = _steps_text(train, tkey)
        cells = [fmt.format(m[k]) if k != "grey_fraction" else fmt.format(100 * m[k])
                 for k, _, fmt in cols]
        lines.append(f"| {LABELS[key]} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _steps_text(train: dict, key: str) -> str:
    if key == "greyscale" or key not in train:
        return "– | –"
    t = train[key]
    text = f"{t['steps']} ({t['images_seen']})"
    if key.endswith("_gan"):  # the GAN stage continues from the pretrain stage
        pre = train.get(key.replace("_gan", "_pretrain"))
        if pre:
            return f"{pre['steps']} + {t['steps']} | {(pre['seconds'] + t['seconds']) / 60:.1f}"
    return f"{text} | {t['seconds'] / 60:.1f}"


def machine_info() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "loadavg": os.getloadavg()}


# ---------------------------------------------------------------- orchestrate
def _command(kind: str, args, **extra) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).relative_to(ROOT)), kind, "--out", str(args.out),
           "--data", str(args.data), "--size", str(args.size), "--batch-size", str(args.batch_size),
           "--device", args.device]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return cmd


def _run_parallel(cmds: list[tuple[str, list[str]]], args) -> None:
    logs = args.out / "logs"
    procs = []
    for name, cmd in cmds:
        append_line(args.out / "commands.txt", " ".join(cmd))
        log(f"start {name}: {' '.join(cmd)}")
        procs.append((name, subprocess.Popen(cmd, cwd=ROOT, stdout=open(logs / f"{name}.log", "w"),
                                             stderr=subprocess.STDOUT)))
    for name, p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{name} failed (exit {p.returncode}); see {logs / (name + '.log')}")
        log(f"done {name}")


def run_all(args) -> None:
    output_folder(args.out / "logs", "--out")
    check_report_outputs(args)
    t0 = time.perf_counter()
    log(f"machine: {machine_info()}")
    _run_parallel([("colorlib_pretrain", _command("colorlib", args, stage="pretrain", minutes=args.pretrain_min, threads=1)),
                   ("seed_pretrain", _command("seed", args, stage="pretrain", minutes=args.pretrain_min, threads=1))], args)
    _run_parallel([("colorlib_gan", _command("colorlib", args, stage="gan", minutes=args.gan_min, threads=1)),
                   ("seed_gan", _command("seed", args, stage="gan", minutes=args.gan_min, threads=1))], args)
    _run_parallel([("colorlib_baseline", _command("colorlib", args, stage="baseline",
                                                  minutes=args.baseline_min, threads=2))], args)
    log(f"training done in {(time.perf_counter() - t0) / 60:.1f} min")
    evaluate(args)
    log(f"all done in {(time.perf_counter() - t0) / 60:.1f} min")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("colorlib", "seed", "evaluate", "evaluate-part",
                                         "report", "all"))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "photos64")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--size", type=size, default=64)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--stage", choices=("baseline", "pretrain", "gan"))
    parser.add_argument("--minutes", type=positive_number, default=1.0)
    parser.add_argument("--steps", type=count, default=0,
                        help="also stop after this many steps (to replay a run's exact step count)")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--device", default="cpu", help="training device for both pipelines")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--filters", type=positive_int, default=64, help="pix2pix U-Net width")
    parser.add_argument("--limit", type=count, default=0,
                        help="evaluate on the first N photos only")
    parser.add_argument("--only", default="", help="evaluate-part: comma-separated model keys",
                        type=choices([key for part in EVAL_PARTS for key in part]))
    parser.add_argument("--pretrain-min", type=positive_number, default=14)
    parser.add_argument("--gan-min", type=positive_number, default=7)
    parser.add_argument("--baseline-min", type=positive_number, default=7)
    parser.add_argument("--publish", type=Path, default=None,
                        help="report/evaluate/all: also write the run's committable numbers "
                             "here (a JSON file of numbers only)")
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir():
        raise SystemExit(f"--data: {args.data}/train not found (the shared photos are needed)")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    with one_line_errors("quality_run.py"):
        return run_kind(args)


def run_kind(args) -> None:
    if args.kind == "all":
        return run_all(args)
    if args.kind in ("evaluate", "evaluate-part", "report"):
        input_folder(args.out, "--out")
        {"evaluate": evaluate, "evaluate-part": evaluate_part, "report": report}[args.kind](args)
        return
    if args.stage is None or (args.kind == "seed" and args.stage == "baseline"):
        raise SystemExit("--stage: colorlib takes baseline/pretrain/gan, seed takes pretrain/gan")
    output_folder(args.out / "logs", "--out")
    train_log = output_file(args.out / "logs" / f"{args.kind}_{args.stage}.json", "--out",
                            is_ours=IS_TRAIN_LOG, what="a training log of this script")
    info = (train_colorlib if args.kind == "colorlib" else train_seed)(args)
    info.update(threads=args.threads, size=args.size, batch_size=args.batch_size,
                minutes_budget=args.minutes, loadavg_end=os.getloadavg(),
                cpu_seconds=round(time.process_time(), 1))  # this process, imports included
    write_text(train_log, json.dumps(info, indent=1))
    log(f"finished: {json.dumps({k: v for k, v in info.items() if k != 'last'})}")


if __name__ == "__main__":
    main()
