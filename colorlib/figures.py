"""Plots the series needs: Lab channels, input/prediction/truth grids, loss curves.

Each helper returns a matplotlib Figure, so a notebook displays it and a
script saves it with :func:`save_figure`; nothing here calls ``plt.show``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    # Imported lazily: the CLI selects the non-interactive Agg backend first,
    # while notebooks keep their inline backend.
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` (creating the folder) and close it to free memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return path


def lab_axis_cmap(channel: int, lightness: float = 70.0):
    """A colour map showing the real colours along the a* (1) or b* (2) axis.

    Each entry is the Lab colour (``lightness``, a, 0) or (``lightness``, 0, b)
    for a or b from -110 to 110, so 0 is neutral grey, as it is in Lab.
    """
    from matplotlib.colors import ListedColormap

    from .lab import lab_to_rgb

    ramp = np.zeros((1, 256, 3))
    ramp[..., 0] = lightness
    ramp[..., channel] = np.linspace(-110, 110, 256)
    return ListedColormap(lab_to_rgb(ramp)[0], name=f"lab_{'ab'[channel - 1]}")


def plot_lab_channels(rgb: np.ndarray, title: str | None = None):
    """A photo next to its L, a* and b* channels, each on a meaningful colour map."""
    from .lab import rgb_to_lab

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
                           max_images: int = 6):
    """Rows of input (greyscale), prediction and, if given, ground truth.

    ``L`` is Bx1xHxW and ``pred_ab``/``true_ab`` Bx2xHxW, normalised, as
    tensors or arrays (the training loop's own batches plot directly).
    """
    from .lab import merge_lab

    plt = _plt()
    L, pred_ab = _np(L), _np(pred_ab)
    true_ab = None if true_ab is None else _np(true_ab)
    n = min(len(L), max_images)
    rows = 3 if true_ab is not None else 2
    fig, axes = plt.subplots(rows, n, figsize=(2.6 * n, 2.6 * rows), squeeze=False)
    names = ["input (L)", "colorized", "ground truth"]
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
                        duration_ms: int = 1000, max_side: int | None = 512) -> Path:
    """An animated GIF that flips between versions of one photo, each captioned.

    Side by side, two colourings of the same photo are compared across the
    page; flicking between them in place makes every change of hue jump out.
    All images must have the same size; they are shrunk to ``max_side``.
    """
    from PIL import Image, ImageDraw, ImageFont

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out[0].save(path, save_all=True, append_images=out[1:], duration=duration_ms, loop=0)
    return path


def plot_ab_histograms(histograms: dict, limit: float = 110.0, means: dict | None = None):
    """2-D histograms of a*b* values side by side (log colour scale), e.g. outputs vs truth.

    ``histograms`` maps a title to a square count array over [-limit, limit]²
    (a along rows, b along columns), as :func:`colorlib.metrics.ab_histogram`
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
