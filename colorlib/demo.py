"""``colorlib demo``: every stage of the tutorial, briefly, on the embedded tiny set.

It is a smoke run of the whole method, offline on a laptop CPU, not a
way to get good colours: the tiny set holds eight training photos.

Everything it writes is listed in ``<out>/.colorlib-manifest.json`` as it is
written; ``--overwrite`` removes exactly those files (if unchanged since)
and never anything else in the folder.

Not taught in a notebook; ``make demo`` in the README runs it.
"""
from __future__ import annotations

import platform
import time
import warnings
from pathlib import Path

import torch

from colorlib import __version__
from colorlib.data.sources import DataConfig
from colorlib.inference.colorizer import Colorizer
from colorlib.inference.output_rule import Manifest
from colorlib.models.networks import available_encoder_weights
from colorlib.models.stages import STAGES
from colorlib.photos.image_files import load_rgb, save_rgb
from colorlib.photos.tiny_set import build_tiny_set
from colorlib.system.device import resolve_device
from colorlib.teaching.figures import plot_losses, plot_side_by_side, save_figure
from colorlib.training.checkpoint import checkpoint_path
from colorlib.training.config import RunConfig, TrainConfig
from colorlib.training.run_safety import TrainingInterrupted
from colorlib.training.runner import train_stage

DEFAULT_STEPS = {"baseline": 60, "pretrain": 60, "gan": 40}
# The series' main road; the classify stage is notebook 04's side road, trained there.
DEMO_STAGES = tuple(STAGES[name] for name in DEFAULT_STEPS)


def run_demo(out: str | Path, size: int = 64, steps: int | None = None,
             device: str | None = None, weights: str = "imagenet", overwrite: bool = False,
             batch_size: int = 16, log=print) -> Path:
    """Run the demo into ``out`` and return the path of its ``report.md``."""
    out = Path(out)
    ckpt_dir = _checkpoint_dir(out)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    tiny = build_tiny_set()
    photos = sorted((tiny / "photos").glob("*.png"))
    manifest = _make_room(out, demo_files(out, photos), overwrite)
    data = DataConfig(source="tiny", size=size, batch_size=batch_size)
    enc = available_encoder_weights(weights, log)
    rows, results = [], {}
    for stage in DEMO_STAGES:
        n = steps or DEFAULT_STEPS[stage.name]
        log(f"[{stage.name}] {stage.title}: {n} steps at {size} px on {dev}")
        start = time.perf_counter()
        init = checkpoint_path(ckpt_dir, stage.init_from) if stage.init_from else None
        run = RunConfig(TrainConfig(stage=stage.name, epochs=10_000, max_steps=n), data,
                        checkpoint_dir=ckpt_dir, init=init, device=str(dev),
                        weights=enc if stage.arch == "resnet18_unet" and init is None else None,
                        num_filters=32, overwrite=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                res = train_stage(run, log=log)
            except TrainingInterrupted as err:
                if err.saved:  # the manifest lists it, so a later --overwrite may replace it
                    manifest.record(err.checkpoint)
                raise
        results[stage.name] = res
        manifest.record(res.checkpoint)
        t = res.trainer
        fig = plot_losses(t.history, val_history=t.val_history, smooth=5,
                          title=f"{stage.title} (tiny set, {size} px, {t.step} steps)")
        manifest.record(save_figure(fig, _loss_figure(out, stage.name)))
        rows.append((stage.name, t.step, t.epoch, time.perf_counter() - start, t.history[-1],
                     t.val_history[-1]["val_l1"] if t.val_history else float("nan"), t.started_from))
    colorizers = {s: Colorizer.load(r.checkpoint, device=str(dev)) for s, r in results.items()}
    for photo in photos:
        truth = load_rgb(photo)
        panels, titles = [truth.mean(axis=2).astype("uint8")], ["input (greyscale)"]
        for stage, colorizer in colorizers.items():
            rgb = colorizer(photo)
            manifest.record(save_rgb(rgb, _colorized(out, stage, photo),
                                     note=colorizer.provenance))
            panels.append(rgb)
            titles.append(stage)
        panels.append(truth)
        titles.append("ground truth")
        manifest.record(save_figure(plot_side_by_side(panels, titles, figsize_per=3.2),
                                    _comparison(out, photo)))
    report = _write_report(out, rows, photos, size, batch_size, dev, time.perf_counter() - t0)
    return manifest.record(report)


# Where each of the demo's files goes, written once (the demo writes them, demo_files lists them).
def _checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def _loss_figure(out: Path, stage: str) -> Path:
    return out / "figures" / f"losses_{stage}.png"


def _colorized(out: Path, stage: str, photo: Path) -> Path:
    return out / "colorized" / stage / f"{photo.stem}.png"


def _comparison(out: Path, photo: Path) -> Path:
    return out / "figures" / f"compare_{photo.stem}.png"


def _report(out: Path) -> Path:
    return out / "report.md"


def demo_files(out: Path, photos: list[Path]) -> list[Path]:
    """Every file the demo writes into ``out``."""
    files = [_report(out)]
    for stage in DEFAULT_STEPS:
        files += [checkpoint_path(_checkpoint_dir(out), stage), _loss_figure(out, stage)]
        files += [_colorized(out, stage, p) for p in photos]
    return files + [_comparison(out, p) for p in photos]


def _make_room(out: Path, files: list[Path], overwrite: bool) -> Manifest:
    """Clear an earlier demo's own files (``overwrite``), or refuse; a new, empty manifest.

    Only files listed in the earlier demo's manifest, and unchanged since, are
    removed. Anything else at a path the demo writes stops the demo before it
    starts: it is someone's file, and it is kept.
    """
    earlier = Manifest.read(out, "demo")
    if earlier is None:
        _refuse_files_in_the_way(files, "not written by colorlib (there is no demo manifest "
                                 f"{Manifest.NAME} in {out})")
    if earlier is not None or any(f.exists() for f in files):
        if not overwrite:
            raise FileExistsError(
                f"{out}: holds an earlier demo; choose another --out, or pass --overwrite to "
                "replace that demo's own files (nothing else in the folder is touched)")
        if earlier is not None:
            earlier.remove_files()
    _refuse_files_in_the_way(files, "not written by an earlier colorlib demo (or changed "
                             "since)")
    manifest = Manifest(out, "demo")
    manifest.save()
    return manifest


def _refuse_files_in_the_way(files: list[Path], why: str) -> None:
    in_the_way = [f for f in files if f.exists() or f.is_symlink()]
    if in_the_way:
        more = f" and {len(in_the_way) - 1} more" if len(in_the_way) > 1 else ""
        raise FileExistsError(f"{in_the_way[0]}{more}: {why}, so it is kept; choose another "
                              "--out")


def _write_report(out: Path, rows, photos, size, batch_size, dev, seconds) -> Path:
    lines = [
        "# colorlib demo report", "",
        f"colorlib {__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"device `{dev}` ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads).", "",
        "Data: the embedded tiny set (crops of colour photos shipped inside scikit-image, "
        f"scikit-learn and matplotlib), {size} px, batch {batch_size}. Held-out photos: "
        + ", ".join(p.stem for p in photos) + ".", "",
        "| stage | what | steps | epochs | seconds | last losses | val mean abs ab error | encoder |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage, steps, epochs, secs, last, val, weights in rows:
        losses = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.startswith("loss"))
        lines.append(f"| {stage} | {STAGES[stage].title} | {steps} | {epochs} | {secs:.1f} | "
                     f"{losses} | {val:.4f} | {weights} |")
    lines += ["", f"Total wall time: {seconds:.1f} s.", "",
              "Outputs: `checkpoints/` (one file per stage), `colorized/<stage>/` (full-resolution "
              "colorizations of the held-out photos), `figures/` (loss curves, comparisons).", "",
              "This is a smoke run of the method on eight training photos: expect faint, mostly "
              "brownish colours. Real results need the COCO sample or your own photo folder "
              "(`colorlib train --data ...`) and a GPU."]
    for p in photos:
        lines += ["", f"![{p.stem}]({_comparison(out, p).relative_to(out).as_posix()})"]
    from colorlib.system.atomic_files import atomic_write

    text = "\n".join(lines) + "\n"
    return atomic_write(_report(out), lambda f: f.write(text.encode()), replace=False)
