"""Plots the series needs: Lab channels, input/prediction/truth grids, loss curves.

Each helper returns a matplotlib Figure, so a notebook displays it and a
script saves it with :func:`save_figure`; nothing here calls ``plt.show``.

Used by every notebook (01-07) to draw what it shows.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    # Imported lazily: the CLI selects the non-interactive Agg backend first,
    # while notebooks keep their inline backend.
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110, legacy_ok: bool = False) -> Path:
    """Save ``fig`` atomically (creating the folder), marked as colorlib's, and close it.

    The file's Software field says ``colorlib (figure)`` (PNG text chunk, or
    EXIF for JPEG/WebP/TIFF), so an existing file at ``path`` is replaced
    only if colorlib drew it: anything else there is kept, with a
    :class:`~colorlib.inference.output_rule.OutputRefused` naming it. ``legacy_ok``: in a
    folder only colorlib writes (the repository's ``figures/``, a run's
    ``val_images/``), figures of older versions, made by matplotlib before
    the marker existed, count as colorlib's too. A scan of photos leaves
    marked figures out (:func:`colorlib.photos.image_files.is_colorlib_output`).
    """
    from colorlib.inference.output_rule import OutputRefused
    from colorlib.photos.image_files import FIGURE_MARKER
    from colorlib.system.atomic_files import atomic_write

    path = Path(path)
    try:
        if os.path.lexists(path):
            if path.is_dir() or not is_colorlib_figure(path, legacy_ok):
                raise OutputRefused(f"{path} exists and was not written by colorlib; kept it "
                                    "(choose another name or folder, or move that file away)")
        fmt = (path.suffix[1:] or "png").lower()
        options: dict = {}
        if fmt == "png":
            options["metadata"] = {"Software": FIGURE_MARKER}
        elif fmt in ("jpg", "jpeg", "webp", "tif", "tiff"):
            from PIL import Image

            exif = Image.Exif()
            exif[0x0131] = FIGURE_MARKER
            options["pil_kwargs"] = {"exif": exif.tobytes()}
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight",
                                                 **options))
    finally:
        _plt().close(fig)
    return path


def is_colorlib_figure(path: str | Path, legacy_ok: bool = False) -> bool:
    """True if ``path`` is a figure :func:`save_figure` may replace: one colorlib drew (its
    Software field), or with ``legacy_ok`` one matplotlib made before the marker existed
    (a PNG marked by matplotlib, or an unmarked image such as its JPEGs)."""
    from colorlib.photos.image_files import FIGURE_MARKER, software_of

    software = software_of(path)
    if software == FIGURE_MARKER:
        return True
    # matplotlib marks its PNGs; its JPEGs (through Pillow) carry no Software field at all
    return legacy_ok and (software.startswith("Matplotlib") if software else _is_image(path))


def _is_image(path: str | Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path):
            return True
    except Exception:  # noqa: BLE001 - not an image: nobody's figure
        return False


def lab_axis_cmap(channel: int, lightness: float = 70.0):
    """A colour map showing the real colours along the a* (1) or b* (2) axis.

    Each entry is the Lab colour (``lightness``, a, 0) or (``lightness``, 0, b)
    for a or b from -110 to 110, so 0 is neutral grey, as it is in Lab.
    """
    from matplotlib.colors import ListedColormap

    from colorlib.photos.lab import lab_to_rgb

    ramp = np.zeros((1, 256, 3))
    ramp[..., 0] = lightness
    ramp[..., channel] = np.linspace(-110, 110, 256)
    return ListedColormap(lab_to_rgb(ramp)[0], name=f"lab_{'ab'[channel - 1]}")


def plot_lab_channels(rgb: np.ndarray, title: str | None = None):
    """A photo next to its L, a* and b* channels, each on a meaningful colour map."""
    from colorlib.photos.lab import rgb_to_lab

    plt = _plt()
    lab = rgb_to_lab(rgb)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    axes[0].imshow(rgb)
    axes[0].set_title("RGB photo")
    panels = [(lab[..., 0], "gray", (0, 100), "L* (lightness, 0-100)"),
              (lab[..., 1], lab_axis_cmap(1), (-110, 110), "a* (green - red)"),
              (lab[..., 2], lab_axis_cmap(2), (-110, 110), "b* (blue - yellow)")]
    for ax, (chan, cmap, (lo, hi), name) in zip(axes[1:], panels):
        im = ax.imshow(chan, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(name)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_rgb_channels(rgb: np.ndarray):
    """A photo next to its R, G and B channels (all look like greyscale photos)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    axes[0].imshow(rgb)
    axes[0].set_title("RGB photo")
    for i, (ax, name) in enumerate(zip(axes[1:], ("red", "green", "blue"))):
        ax.imshow(rgb[..., i], cmap="gray", vmin=0, vmax=255 if rgb.dtype == np.uint8 else 1)
        ax.set_title(f"{name} channel")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_colorization_grid(L, pred_ab, true_ab=None, titles: Sequence[str] | None = None,
                           max_images: int = 6, names: Sequence[str] | None = None):
    """Rows of input (greyscale), prediction and, if given, ground truth.

    ``L`` is Bx1xHxW and ``pred_ab``/``true_ab`` Bx2xHxW, normalised, as
    tensors or arrays (the training loop's own batches plot directly).
    ``names`` labels the rows (default: input, colorized, ground truth), e.g.
    when the middle row is not a model's colours (notebook 02 shows ab = 0).
    """
    from colorlib.photos.lab import merge_lab

    plt = _plt()
    L, pred_ab = _np(L), _np(pred_ab)
    true_ab = None if true_ab is None else _np(true_ab)
    n = min(len(L), max_images)
    rows = 3 if true_ab is not None else 2
    fig, axes = plt.subplots(rows, n, figsize=(2.6 * n, 2.6 * rows), squeeze=False)
    names = list(names or ["input (L)", "colorized", "ground truth"])
    for i in range(n):
        panels = [np.clip((L[i, 0] + 1) / 2, 0, 1), merge_lab(L[i], pred_ab[i])]
        if true_ab is not None:
            panels.append(merge_lab(L[i], true_ab[i]))
        for r, img in enumerate(panels):
            ax = axes[r, i]
            ax.imshow(img, cmap="gray" if r == 0 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(names[r])
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def plot_side_by_side(images: Sequence[np.ndarray], titles: Sequence[str], figsize_per=4.0):
    """A row of full-resolution RGB images with titles (e.g. input / L1 / GAN)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(images), figsize=(figsize_per * len(images), figsize_per),
                             squeeze=False)
    for ax, img, title in zip(axes[0], images, titles):
        ax.imshow(img, cmap="gray" if np.ndim(img) == 2 else None)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_losses(history: Sequence[dict], keys: Sequence[str] | None = None,
                val_history: Sequence[dict] | None = None, smooth: int = 0, title: str = ""):
    """Loss curves from a trainer's per-step history (optionally smoothed)."""
    plt = _plt()
    if keys is None:
        keys = [k for k in (history[0] if history else {}) if k.startswith("loss")]
    gan_keys = [k for k in keys if k != "loss_G_L1" and k != "loss_G"]
    l1_keys = [k for k in keys if k in ("loss_G_L1", "loss_G")]
    panels = [ks for ks in (l1_keys, gan_keys) if ks]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6.5 * max(1, len(panels)), 4),
                             squeeze=False)
    steps = np.array([h["step"] for h in history])
    for ax, ks in zip(axes[0], panels):
        for k in ks:
            y = np.array([h[k] for h in history], dtype=float)
            smoothed = smooth > 1 and len(y) >= smooth
            ax.plot(steps, y, alpha=0.3 if smoothed else 1.0, label=None if smoothed else k)
            if smoothed:
                ys = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
                ax.plot(steps[smooth - 1:], ys, color=ax.lines[-1].get_color(), label=k)
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    if val_history:
        ax = axes[0, 0].twinx()
        ax.plot([v["step"] for v in val_history], [v["val_l1"] for v in val_history], "k--o",
                label="val mean |ab error|")
        ax.set_ylabel("validation L1 (normalised ab)")
        ax.legend(loc="upper center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_image_grid(rows: Sequence[Sequence[np.ndarray]], col_titles: Sequence[str],
                    row_titles: Sequence[str] | None = None, size_per: float = 2.8):
    """Photos as rows, versions of each photo (input / L1 / GAN / truth) as columns.

    Images are RGB (HxWx3) or greyscale (HxW) arrays, any size; each row
    may have its own aspect ratio.
    """
    plt = _plt()
    n_rows, n_cols = len(rows), len(col_titles)
    if n_rows == 0 or any(len(r) != n_cols for r in rows):
        raise ValueError(f"plot_image_grid: every row needs {n_cols} images (one per column title)")
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size_per * n_cols, size_per * n_rows),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray" if np.ndim(img) == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_titles[j])
            if j == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[i])
    fig.tight_layout()
    return fig


def version_stats(ab) -> dict[str, float]:
    """Mean chroma (Lab units) and near-grey share (0-1) of normalised ab (Bx2xHxW or 2xHxW).

    The two numbers that show hedging at a glance (notebooks 04 and 07 explain
    them); near-grey is chroma below :data:`colorlib.photos.metrics.GREY_CHROMA`.
    """
    from colorlib.photos.lab import pixel_chroma
    from colorlib.photos.metrics import GREY_CHROMA

    chroma = pixel_chroma(ab)
    return {"mean_chroma": float(chroma.mean()),
            "grey_fraction": float((chroma < GREY_CHROMA).mean())}


def plot_ab_versions(L, versions: dict, true_ab=None, row_titles: Sequence[str] | None = None,
                     max_images: int = 6, size_per: float = 2.2):
    """The same photos coloured several ways: photos as rows, the grey input and each version
    of ``versions`` (``{column title: normalised ab, Bx2xHxW}``) as columns, then the truth.

    Each column title ends with that version's mean chroma and near-grey share
    over the photos shown (:func:`version_stats`), so the picture and the
    numbers that describe it cannot disagree. Notebook 04 uses it to put L1
    regression beside the classifier decoded by mode, mean and annealed mean.
    """
    from colorlib.photos.lab import merge_lab

    L = _np(L)
    n = min(len(L), max_images)
    columns = dict(versions)
    if true_ab is not None:
        columns["true colours"] = true_ab
    titles, arrays = ["input (L)"], {}
    for name, ab in columns.items():
        arrays[name] = _np(ab)[:n]
        stats = version_stats(arrays[name])
        titles.append(f"{name}\nchroma {stats['mean_chroma']:.1f}, "
                      f"grey {stats['grey_fraction']:.0%}")
    # the input as RGB, so imshow shows its true lightness instead of stretching it
    grey = [np.repeat(np.clip((L[i, 0] + 1) / 2, 0, 1)[..., None], 3, -1) for i in range(n)]
    rows = [[grey[i]] + [merge_lab(L[i], ab[i]) for ab in arrays.values()] for i in range(n)]
    return plot_image_grid(rows, titles, None if row_titles is None else list(row_titles)[:n],
                           size_per=size_per)


def _to_uint8_rgb(img) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {arr.shape}")
    return arr


def save_comparison_gif(images: Sequence[np.ndarray], labels: Sequence[str], path: str | Path,
                        duration_ms: int = 1000, max_side: int | None = 512,
                        legacy_ok: bool = False) -> Path:
    """An animated GIF that flips between versions of one photo, each captioned.

    Side by side, two colourings of the same photo are compared across the
    page; flicking between them in place makes every change of hue jump out.
    All images must have the same size; they are shrunk to ``max_side``.
    Written like :func:`save_figure`: marked as colorlib's (the GIF comment),
    atomically, and only over a file colorlib drew (``legacy_ok`` as there).

    Shown in notebook 05.
    """
    from PIL import Image, ImageDraw, ImageFont

    from colorlib.inference.output_rule import OutputRefused
    from colorlib.photos.image_files import FIGURE_MARKER
    from colorlib.system.atomic_files import atomic_write

    path = Path(path)
    if os.path.lexists(path) and (path.is_dir() or not is_colorlib_figure(path, legacy_ok)):
        raise OutputRefused(f"{path} exists and was not written by colorlib; kept it "
                            "(choose another name or folder, or move that file away)")
    if not images or len(images) != len(labels):
        raise ValueError("save_comparison_gif: give one label per image (and at least one image)")
    arrays = [_to_uint8_rgb(im) for im in images]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"save_comparison_gif: images differ in size {[a.shape for a in arrays]}")
    frames = [Image.fromarray(a) for a in arrays]
    if max_side is not None and max(frames[0].size) > max_side:
        scale = max_side / max(frames[0].size)
        new = (max(1, round(frames[0].width * scale)), max(1, round(frames[0].height * scale)))
        frames = [f.resize(new, Image.Resampling.LANCZOS) for f in frames]
    w, h = frames[0].size
    strip = max(14, h // 12)
    try:
        font = ImageFont.load_default(size=int(strip * 0.7))
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    out = []
    for frame, label in zip(frames, labels):
        canvas = Image.new("RGB", (w, h + strip), "white")
        canvas.paste(frame, (0, 0))
        ImageDraw.Draw(canvas).text((4, h + strip * 0.1), label, fill="black", font=font)
        out.append(canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT))
    atomic_write(path, lambda f: out[0].save(f, format="GIF", save_all=True, append_images=out[1:],
                                             duration=duration_ms, loop=0,
                                             comment=FIGURE_MARKER.encode()))
    return path


def plot_ab_histograms(histograms: dict, limit: float = 110.0, means: dict | None = None):
    """2-D histograms of a*b* values side by side (log colour scale), e.g. outputs vs truth.

    ``histograms`` maps a title to a square count array over [-limit, limit]²
    (a along rows, b along columns), as :func:`colorlib.photos.metrics.ab_histogram`
    makes; ``means`` may map the same titles to an (a, b) point to mark.
    Grey is the centre; a dense blob just off it, towards +a +b, is brown.
    """
    plt = _plt()
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(1, len(histograms), figsize=(4.2 * len(histograms), 4), squeeze=False)
    for ax, (title, hist) in zip(axes[0], histograms.items()):
        hist = np.asarray(hist, dtype=float)
        density = hist / max(hist.sum(), 1.0)
        floor = max(density[density > 0].min(), 1e-6) if (density > 0).any() else 1e-6
        im = ax.imshow(density.T + 0.0, origin="lower", extent=[-limit, limit, -limit, limit],
                       cmap="magma", norm=LogNorm(vmin=floor, vmax=max(density.max(), floor * 10)))
        ax.axhline(0, color="w", lw=0.5, alpha=0.5)
        ax.axvline(0, color="w", lw=0.5, alpha=0.5)
        if means and title in means:
            ax.plot(*means[title], "c+", ms=14, mew=2, label="mean (a, b)")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xlabel("a* (green - red)")
        ax.set_ylabel("b* (blue - yellow)")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of pixels")
    fig.tight_layout()
    return fig


def _np(x) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().float().cpu().numpy()
    except ImportError:
        pass
    return np.asarray(x, dtype=np.float32)


# ------------------------------------------------------------ GAN teaching
def patch_verdicts(net_D, L, ab, gan_mode: str = "vanilla") -> dict:
    """The discriminator's verdict on every patch of (L, ab) pairs, ready to draw.

    ``L`` is Bx1xHxW and ``ab`` Bx2xHxW, normalised (tensors). Returns
    ``{"score": BxNxN array, "stride": px between neighbouring verdicts,
    "label": what the score means}``. For ``vanilla`` the score is D's
    probability that the patch is real, sigmoid(logit); for ``lsgan`` the
    raw output (trained towards 1 for real, 0 for fake); for ``hinge`` the
    raw output (positive: real). Run in eval mode, without gradients.
    """
    import math

    import torch
    from torch import nn

    stride = math.prod(m.stride[0] for m in net_D.modules() if isinstance(m, nn.Conv2d))
    was_training = net_D.training
    net_D.eval()
    try:
        with torch.no_grad():
            logits = net_D(torch.cat([L, ab], 1).to(next(net_D.parameters()).device)).float()
    finally:
        net_D.train(was_training)
    logits = logits[:, 0].cpu().numpy()
    if gan_mode == "vanilla":
        return {"score": 1 / (1 + np.exp(-logits)), "stride": stride, "label": "D's P(real)",
                "range": (0.0, 1.0), "threshold": 0.5}
    label = "D's score (1 real, 0 fake)" if gan_mode == "lsgan" else "D's score (> 0: real)"
    threshold = 0.5 if gan_mode == "lsgan" else 0.0
    spread = max(float(np.abs(logits - threshold).max()), 1e-3)
    return {"score": logits, "stride": stride, "label": label,
            "range": (threshold - spread, threshold + spread), "threshold": threshold}


def plot_patch_verdicts(L, abs_: Sequence, titles: Sequence[str], verdicts: Sequence[dict],
                        field: int | None = None):
    """Each (L, ab) pair as D sees it (top) and D's verdict on each patch over its L (bottom).

    ``L`` is one normalised 1xHxW (or HxW) lightness; ``abs_`` its candidate
    colourings (normalised 2xHxW), e.g. the true ab and the generator's;
    ``verdicts`` their :func:`patch_verdicts` (one image each: ``score``
    NxN). Verdict (i, j) is drawn as a square of ``stride`` px centred where
    its receptive field is centred; ``field`` (e.g. 70) outlines the pixels
    the middle verdict depends on.
    """
    from matplotlib.patches import Rectangle

    from colorlib.photos.lab import merge_lab

    plt = _plt()
    L = _np(L).reshape(-1, *np.shape(L)[-2:])[0]
    size = L.shape[-1]
    n_cols = len(abs_)
    fig, axes = plt.subplots(2, n_cols, figsize=(4.2 * n_cols, 8.6), squeeze=False)
    im = None
    for col, (ab, title, v) in enumerate(zip(abs_, titles, verdicts)):
        score = np.asarray(v["score"])
        score = score.reshape(score.shape[-2:])
        n, stride = score.shape[-1], v["stride"]
        first = (size - 1) / 2 - stride * (n - 1) / 2  # verdicts are centred on the image
        extent = (first - stride / 2, first + stride * (n - 1) + stride / 2)
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(merge_lab(L[None], _np(ab)), vmin=0, vmax=1)
        top.set_title(title)
        bottom.imshow(np.clip((L + 1) / 2, 0, 1), cmap="gray", vmin=0, vmax=1)
        lo, hi = v["range"]
        im = bottom.imshow(score, cmap="RdYlGn", vmin=lo, vmax=hi, alpha=0.6,
                           extent=(extent[0], extent[1], extent[1], extent[0]))
        bottom.set_xlim(-0.5, size - 0.5)
        bottom.set_ylim(size - 0.5, -0.5)
        real = float((score > v["threshold"]).mean())
        bottom.set_title(f"{n} x {n} verdicts: {real:.0%} say 'real'")
        if field is not None:
            c = first + stride * (n // 2)
            bottom.add_patch(Rectangle((c - field / 2, c - field / 2), field, field, fill=False,
                                       edgecolor="cyan", linewidth=1.5))
            bottom.add_patch(Rectangle((c - stride / 2, c - stride / 2), stride, stride,
                                       fill=False, edgecolor="cyan", linewidth=1.0))
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=list(axes[1]), fraction=0.03, pad=0.02, label=verdicts[0]["label"])
    return fig


def simulate_colour_spill(rgb: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """The photo with its colours (a*b*) blurred across object boundaries; lightness kept.

    What a colorizer does when it gets the colours right but not where they
    stop: red from a roof bleeds into the sky next to it. ``sigma`` (px)
    defaults to 1/25 of the photo's longer side.
    """
    from scipy.ndimage import gaussian_filter

    from colorlib.photos.lab import lab_to_rgb, rgb_to_lab

    lab = rgb_to_lab(rgb)
    sigma = max(lab.shape[:2]) / 25 if sigma is None else sigma
    for c in (1, 2):
        lab[..., c] = gaussian_filter(lab[..., c], sigma)
    return lab_to_rgb(lab)


def flattest_spot(rgb: np.ndarray, radius: int) -> tuple[int, int]:
    """(row, col) of the centre of the most uniform disc of ``radius`` px (least L variation)."""
    from scipy.ndimage import uniform_filter

    from colorlib.photos.lab import rgb_to_lab

    L = rgb_to_lab(rgb)[..., 0].astype(np.float64)
    win = 2 * radius + 1
    var = uniform_filter(L ** 2, win) - uniform_filter(L, win) ** 2
    h, w = L.shape
    inner = var[radius:h - radius, radius:w - radius] if h > win and w > win else var
    r, c = np.unravel_index(np.argmin(inner), inner.shape)
    return (int(r) + radius, int(c) + radius) if h > win and w > win else (int(r), int(c))


def simulate_colour_blob(rgb: np.ndarray, ab: tuple[float, float] = (35.0, 45.0),
                         radius: int | None = None, centre: tuple[int, int] | None = None) -> np.ndarray:
    """The photo with a round, soft-edged patch of one colour (a*, b*) where none belongs.

    The seed tutorial's baseline showed such "circle-shaped masses of
    colour". The patch goes into the photo's most uniform region unless
    ``centre`` (row, col) is given; ``radius`` defaults to 1/10 of the
    shorter side. Lightness is kept.
    """
    from colorlib.photos.lab import lab_to_rgb, rgb_to_lab

    lab = rgb_to_lab(rgb)
    h, w = lab.shape[:2]
    radius = max(2, min(h, w) // 10) if radius is None else radius
    cy, cx = flattest_spot(rgb, radius) if centre is None else centre
    yy, xx = np.mgrid[:h, :w]
    dist = np.hypot(yy - cy, xx - cx) / radius
    weight = np.clip(1.5 - dist, 0.0, 1.0)[..., None]  # solid core, soft rim
    lab[..., 1:] = (1 - weight) * lab[..., 1:] + weight * np.asarray(ab, np.float32)
    return lab_to_rgb(lab)


def ab_error_map(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> np.ndarray:
    """Per-pixel colour error sqrt(da*^2 + db*^2) in Lab units (lightness ignored)."""
    from colorlib.photos.lab import rgb_to_lab

    d = rgb_to_lab(pred_rgb)[..., 1:] - rgb_to_lab(true_rgb)[..., 1:]
    return np.hypot(d[..., 0], d[..., 1])


def plot_failure_modes(rgb: np.ndarray, predictions: Sequence[tuple[str, np.ndarray]] = (),
                       spill_sigma: float | None = None, blob_ab: tuple[float, float] = (35.0, 45.0)):
    """What colour spill and colour blobs look like, and where a model's colours go wrong.

    Top row: the photo, a simulated colour spill and a simulated blob (each
    with its colour error map below, so the pattern is easy to recognise).
    Each ``(title, rgb)`` of ``predictions`` (a model's colouring of the same
    photo, same size) adds a column: the colouring above, its error map below.
    Edges of the lightness are drawn over every error map: spill shows as
    error hugging an edge on one side, a blob as an island of error away
    from any edge.
    """
    from skimage.feature import canny

    from colorlib.photos.lab import rgb_to_lab

    plt = _plt()
    truth = _to_uint8_rgb(rgb).astype(np.float32) / 255.0
    columns = [("true colours", truth),
               ("colour spill (simulated)", simulate_colour_spill(truth, spill_sigma)),
               ("colour blob (simulated)", simulate_colour_blob(truth, blob_ab))]
    columns += [(t, _to_uint8_rgb(p).astype(np.float32) / 255.0) for t, p in predictions]
    edges = canny(rgb_to_lab(truth)[..., 0] / 100.0, sigma=3.0)
    fig, axes = plt.subplots(2, len(columns), figsize=(3.6 * len(columns), 7.0), squeeze=False)
    im = None
    for col, (title, img) in enumerate(columns):
        axes[0, col].imshow(img)
        axes[0, col].set_title(title, fontsize=10)
        err = ab_error_map(img, truth)
        im = axes[1, col].imshow(err, cmap="magma", vmin=0, vmax=60)
        overlay = np.zeros((*edges.shape, 4))
        overlay[edges] = (0.3, 0.9, 1.0, 0.8)
        axes[1, col].imshow(overlay)
        axes[1, col].set_title(f"colour error: mean {err.mean():.1f}", fontsize=10)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel("|a*b* error|, edges of L in cyan")
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=list(axes[1]), fraction=0.02, pad=0.01, label="Lab units")
    return fig


def plot_ab_classes(centres: np.ndarray, maps: dict, grid: float = 10.0, log: bool = True,
                    label: str = ""):
    """Values per a*b* class (e.g. share of pixels, class weight) drawn on the a*b* plane.

    ``centres`` is (Q, 2); each entry of ``maps`` a length-Q array, drawn as
    squares of side ``grid``; squares that are not classes stay blank.
    """
    from matplotlib.colors import LogNorm

    plt = _plt()
    lo = float(centres.min()) - grid / 2
    n = int(round((float(centres.max()) + grid / 2 - lo) / grid))
    idx = np.round((centres - lo - grid / 2) / grid).astype(int)
    fig, axes = plt.subplots(1, len(maps), figsize=(4.4 * len(maps), 4), squeeze=False)
    for ax, (title, values) in zip(axes[0], maps.items()):
        img = np.full((n, n), np.nan)
        img[idx[:, 1], idx[:, 0]] = values  # rows: b, columns: a
        positive = img[np.isfinite(img) & (img > 0)]
        norm = (LogNorm(vmin=max(positive.min(), 1e-6), vmax=positive.max())
                if log and positive.size else None)
        im = ax.imshow(np.where(img > 0, img, np.nan) if log else img, origin="lower",
                       extent=(lo, lo + n * grid, lo, lo + n * grid), cmap="viridis", norm=norm)
        ax.axhline(0, color="k", lw=0.4, alpha=0.5)
        ax.axvline(0, color="k", lw=0.4, alpha=0.5)
        ax.set_xlabel("a* (green - red)")
        ax.set_ylabel("b* (blue - yellow)")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    fig.tight_layout()
    return fig
