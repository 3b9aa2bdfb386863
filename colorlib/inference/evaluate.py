"""Evaluate a colorizer on a folder of colour photos: ``colorlib evaluate``.

Each photo is reduced to its lightness (what a black-and-white photo
holds), colorized at the photo's full resolution, and compared with the
original using :mod:`colorlib.photos.metrics`. The trivial "greyscale" answer
(ab = 0 everywhere, i.e. the input itself) is scored alongside: a model
that cannot beat it on PSNR is, on average, further from the true colours
than no colour at all, whatever its pictures look like.

Files that cannot be read, and photos that cannot be scored (greyscale
photos have no colour ground truth; a photo under 3 px on a side is too
small for SSIM), are reported by name and left out of every average; the
rest are still evaluated.

Taught in notebook 07.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from colorlib.photos.image_files import ImageReadError, is_image_file, load_rgb
from colorlib.photos.lab import lab_to_rgb, rgb_to_lab
from colorlib.photos.metrics import (AB_HISTOGRAM_BINS, GREY_CHROMA, MIN_COLOUR_SHARE,
                                     ab_histogram, grey_fraction, image_metrics, mean_metrics)

MIN_SIDE = 3  # SSIM's smallest window


class UnusablePhoto(ValueError):
    """A readable photo that cannot be scored; ``path``, ``reason`` and ``kind`` are fields.

    ``kind``: ``"greyscale"``, ``"too_small"`` or ``"memory"``.
    """

    def __init__(self, path, reason: str, kind: str = "other"):
        self.path, self.reason, self.kind = str(path), reason, kind
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.kind)

ColorizeFn = Callable[[np.ndarray], np.ndarray]  # greyscale RGB (float, HxWx3) -> RGB

TABLE_COLUMNS = (("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"),
                 ("auc", "AuC %", "{:.2f}"), ("colorfulness", "CF", "{:.1f}"),
                 ("delta_colorfulness", "ΔCF", "{:+.1f}"), ("grey_fraction", "grey px", "{:.1%}"))


def find_eval_images(source: str | os.PathLike) -> list[Path]:
    """The photos to evaluate: an image file, a folder (recursive), or ``"tiny"``.

    ``tiny`` means the embedded tiny set's held-out crops (``val/``): scenes
    no tiny-set model was trained on.
    """
    from colorlib.data.sources import find_images

    if str(source) == "tiny":
        from colorlib.photos.tiny_set import build_tiny_set

        return find_images(build_tiny_set() / "val")
    path = Path(source)
    if path.is_file():
        if not is_image_file(path):
            raise ValueError(f"{path}: not an image file")
        return [path]
    return find_images(path)


def limit_side(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (area-averaging) so the longer side is at most ``max_side``; never enlarge."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX), dtype=np.uint8)


def _without_colour(lab: np.ndarray) -> np.ndarray:
    return np.concatenate([lab[..., :1], np.zeros_like(lab[..., 1:])], axis=2)


def greyscale_version(true_lab: np.ndarray) -> np.ndarray:
    """The photo's lightness alone, as float RGB: the input, and the ab = 0 baseline."""
    return lab_to_rgb(_without_colour(true_lab))


def checkpoint_colorizer(checkpoint: str | os.PathLike, device: str | None = None,
                         arch: str | None = None, size: int = 256,
                         temperature: float | None = None) -> ColorizeFn:
    """A :data:`ColorizeFn` from a colorlib checkpoint (full-resolution inference).

    ``arch``/``size``: for plain generator weights, see :func:`colorlib.inference.colorizer.load_generator`;
    ``temperature``: a classify checkpoint's decoding temperature instead of its stored one.
    """
    from colorlib.inference.colorizer import Colorizer

    return Colorizer.load(checkpoint, device=device, arch=arch, size=size,
                          temperature=temperature)


def check_scorable(path, true_lab: np.ndarray) -> None:
    """Raise :class:`UnusablePhoto` if a photo cannot be scored: too small, or greyscale."""
    h, w = true_lab.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UnusablePhoto(path, f"too small to score ({w}x{h} px; SSIM needs at least "
                            f"{MIN_SIDE} px on each side)", kind="too_small")
    if 1.0 - grey_fraction(true_lab[..., 1:]) < MIN_COLOUR_SHARE:  # as metrics.is_greyscale
        raise UnusablePhoto(path, "greyscale photo: there is no colour ground truth to "
                            "compare a colorization with", kind="greyscale")


def evaluate_image(path: Path, colorize_fn: ColorizeFn, max_side: int | None = None,
                   histograms: dict | None = None, baseline: bool = True,
                   max_pixels: int | None = None) -> dict:
    """Metrics of one photo for the model and (with ``baseline``) the greyscale answer.

    Raises :class:`~colorlib.photos.image_files.ImageReadError` (unreadable) or
    :class:`UnusablePhoto` (too small, greyscale) naming the photo.
    """
    truth = limit_side(load_rgb(path, max_pixels=max_pixels), max_side)
    true_lab = rgb_to_lab(truth)
    check_scorable(path, true_lab)
    grey_lab = _without_colour(true_lab)
    grey = lab_to_rgb(grey_lab)
    output = np.asarray(colorize_fn(grey), dtype=np.float32)
    if output.shape != truth.shape:
        raise ValueError(f"{path}: colorizer returned shape {output.shape}, expected {truth.shape}")
    out_lab = rgb_to_lab(output)
    if histograms is not None:
        histograms["model"] += ab_histogram(out_lab[..., 1:])
        histograms["truth"] += ab_histogram(true_lab[..., 1:])
    h, w = truth.shape[:2]
    record = {"file": str(path), "width": w, "height": h,
              "model": image_metrics(output, truth, out_lab, true_lab)}
    if baseline:
        record["greyscale"] = image_metrics(grey, truth, grey_lab, true_lab)
    return record


@dataclass(frozen=True)
class EvalSettings:
    """How :func:`evaluate_paths` reads the photos and, for a checkpoint, loads its generator.

    The defaults score every photo at its full size with the checkpoint's own
    settings; ``colorlib evaluate`` sets these from its flags.
    """

    max_side: int | None = None  # shrink photos so the longer side is at most this (--size)
    max_pixels: int | None = None  # refuse larger photos (None: colorlib's own limit)
    arch: str | None = None  # plain generator weights only: the generator they hold
    model_size: int = 256  # with ``arch``: the size it was trained at
    temperature: float | None = None  # a classify checkpoint: decode at this temperature


def evaluate_paths(paths: Sequence[str | os.PathLike], checkpoint: str | os.PathLike | None = None,
                   colorize_fn: ColorizeFn | None = None, device: str | None = None,
                   progress: bool = True, histograms: bool = False, baseline: bool = True,
                   settings: EvalSettings = EvalSettings()) -> dict:
    """Evaluate a checkpoint (or any ``colorize_fn``) on ``paths``; return the report.

    The report: ``images`` (how many were evaluated), ``model`` and
    ``baselines.greyscale`` (mean metrics; left out with ``baseline=False``,
    which saves a third of the time when several models share the photos),
    ``per_image``, ``failed`` (``{"file", "error"}`` for each unreadable
    file) and ``unusable`` (the same for photos that cannot be scored:
    greyscale, too small). One bad photo never stops the others. With
    ``histograms``, ``ab_histograms`` holds 2-D ab histograms
    (:func:`colorlib.photos.metrics.ab_histogram`) of all outputs and all truths.
    ``settings`` (:class:`EvalSettings`): photo size limits and how a plain
    weights file or a classify checkpoint is read.

    Shown in notebook 07.
    """
    from tqdm.auto import tqdm

    if (checkpoint is None) == (colorize_fn is None):
        raise ValueError("evaluate_paths: pass exactly one of checkpoint= or colorize_fn=")
    if colorize_fn is None:
        colorize_fn = checkpoint_colorizer(checkpoint, device, settings.arch, settings.model_size,
                                           settings.temperature)
    bins = (AB_HISTOGRAM_BINS, AB_HISTOGRAM_BINS)
    hist = {"model": np.zeros(bins), "truth": np.zeros(bins)} if histograms else None
    per_image, failed, unusable = [], [], []
    for path in tqdm(list(paths), desc="evaluating", disable=not progress or len(paths) < 2):
        try:
            per_image.append(evaluate_image(Path(path), colorize_fn, settings.max_side, hist,
                                            baseline, settings.max_pixels))
        except ImageReadError as err:
            failed.append({"file": err.path, "error": err.reason})
        except UnusablePhoto as err:
            unusable.append({"file": err.path, "error": err.reason, "kind": err.kind})
        except MemoryError:
            unusable.append({"file": str(path), "error": "not enough memory to score it "
                             "(try --size to shrink the photos)", "kind": "memory"})
    report = {
        "images": len(per_image),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "settings": {"max_side": settings.max_side, "grey_chroma": GREY_CHROMA,
                     "auc_thresholds": "0-150",
                     # a classify checkpoint: the temperature its colour classes were decoded at
                     **({"temperature": colorize_fn.config.temperature}
                        if getattr(getattr(colorize_fn, "config", None), "classes", 0) else {})},
        "model": mean_metrics([r["model"] for r in per_image]),
        "baselines": {"greyscale": mean_metrics([r["greyscale"] for r in per_image])}
        if baseline else {},
        "per_image": per_image,
        "failed": failed,
        "unusable": unusable,
    }
    if hist is not None:
        report["ab_histograms"] = {k: v.tolist() for k, v in hist.items()}
    return report


def format_table(report: dict) -> str:
    """A plain-text table: the model, the greyscale baseline, and the photos themselves."""
    truth = {"colorfulness": report["model"]["colorfulness_truth"],
             "grey_fraction": report["model"]["grey_fraction_truth"]}
    rows = [("model", report["model"])]
    rows += [(f"{name} baseline", m) for name, m in report["baselines"].items()]
    rows.append(("ground truth", truth))
    width = max(len(name) for name, _ in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{label:>9}" for _, label, _ in TABLE_COLUMNS)]
    for name, m in rows:
        cells = [fmt.format(m[k]) if k in m else "" for k, _, fmt in TABLE_COLUMNS]
        lines.append(f"{name:{width}}  " + "  ".join(f"{c:>9}" for c in cells))
    lines.append(f"{report['images']} image(s). ΔCF = colorfulness of the photos minus that of "
                 "the outputs (> 0: outputs are duller).")
    return "\n".join(lines)


def comparison_table(reports: dict[str, dict], baseline: str = "greyscale") -> str:
    """A Markdown table of several models' mean metrics, plus the ``baseline`` and the photos.

    ``reports`` maps a row name to a report of :func:`evaluate_paths` on the
    same photos; the baseline row is taken from the first report that has it.
    """
    rows = {name: r["model"] for name, r in reports.items()}
    base = next((r["baselines"][baseline] for r in reports.values()
                 if baseline in r.get("baselines", {})), None)
    if base is not None:
        rows[f"{baseline} baseline (ab = 0)"] = base
    first = next(iter(reports.values()))["model"] if reports else {}
    head = "| | " + " | ".join(label for _, label, _ in TABLE_COLUMNS) + " |"
    lines = [head, "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(m[k]) for k, _, fmt in TABLE_COLUMNS)
                     + " |")
    if first:
        truth = {"colorfulness": first["colorfulness_truth"],
                 "grey_fraction": first["grey_fraction_truth"]}
        lines.append("| ground truth | " + " | ".join(
            fmt.format(truth[k]) if k in truth else "" for k, _, fmt in TABLE_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


WRITTEN_BY = "colorlib evaluate"  # the report's marker: an earlier output, not a user's file


def write_json(report: dict, path: str | os.PathLike, replace: bool = False) -> Path:
    """Write ``report`` as JSON, atomically (creating the folder), marked ``written_by``.

    ``replace``: an earlier report may be replaced (decided beforehand by
    :func:`colorlib.inference.output_rule.check_output`); otherwise a file that appeared
    at ``path`` meanwhile is kept (FileExistsError).
    """
    from colorlib.system.atomic_files import atomic_write

    text = json.dumps({"written_by": WRITTEN_BY, **report}, indent=1) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()), replace=replace)
