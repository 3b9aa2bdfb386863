"""The embedded tiny data set: colour photos that ship inside installed packages.

scikit-image, scikit-learn and matplotlib each carry a handful of colour
photographs in their package data, so a set made from them exists on every
machine that has the tutorial's dependencies: no download, no internet.
It is far too small to learn colour in general, but it is real photography,
and it lets every notebook cell and every test run end to end quickly.

Whole photos are held out for validation (not just crops of training
photos), so "held-out" really means unseen scenes.

Introduced in notebooks 01 and 02.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colorlib.photos.image_files import load_rgb, save_rgb

TINY_VERSION = 1
CROPS_PER_PHOTO = 24
CROP_SIDE = 128


@dataclass(frozen=True)
class TinyPhoto:
    name: str
    package: str  # "skimage", "sklearn" or "matplotlib"
    filename: str
    held_out: bool = False


TINY_PHOTOS = (
    TinyPhoto("astronaut", "skimage", "astronaut.png"),
    TinyPhoto("chelsea", "skimage", "chelsea.png"),
    TinyPhoto("coffee", "skimage", "coffee.png", held_out=True),
    TinyPhoto("rocket", "skimage", "rocket.jpg"),
    TinyPhoto("motorcycle", "skimage", "motorcycle_left.png"),
    TinyPhoto("hubble", "skimage", "hubble_deep_field.jpg"),
    TinyPhoto("china", "sklearn", "china.jpg", held_out=True),
    TinyPhoto("flower", "sklearn", "flower.jpg"),
    TinyPhoto("grace_hopper", "matplotlib", "grace_hopper.jpg"),
    TinyPhoto("present", "matplotlib", "Minduka_Present_Blue_Pack.png"),
)


def package_photo_path(photo: TinyPhoto) -> Path:
    """Where ``photo`` lies inside its installed package."""
    if photo.package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent / photo.filename
    if photo.package == "sklearn":
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images" / photo.filename
    if photo.package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / photo.filename
    raise ValueError(f"unknown package {photo.package!r}")


def cache_root() -> Path:
    """Folder for derived data (``$COLORLIB_CACHE``, else ``~/.cache/colorlib``)."""
    return Path(os.environ.get("COLORLIB_CACHE", Path.home() / ".cache" / "colorlib"))


def _random_crops(rgb: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Square crops of varied scale (a third to all of the short side)."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    crops = []
    for _ in range(n):
        side = int(rng.integers(short // 3, short + 1))
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        crops.append(rgb[y:y + side, x:x + side])
    return crops


def build_tiny_set(root: str | os.PathLike | None = None) -> Path:
    """Build (once) and return the tiny set's folder.

    Layout: ``train/`` and ``val/`` hold square crops (PNG, ``CROP_SIDE`` px);
    ``photos/`` holds the held-out photos at full resolution, for colorizing.
    """
    from colorlib.photos.image_files import resize_rgb

    root = Path(root) if root is not None else cache_root() / f"tiny-v{TINY_VERSION}"
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(TINY_VERSION)
    for sub in ("train", "val", "photos"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for photo in TINY_PHOTOS:
        rgb = load_rgb(package_photo_path(photo))
        split = "val" if photo.held_out else "train"
        for i, crop in enumerate(_random_crops(rgb, CROPS_PER_PHOTO, rng)):
            save_rgb(resize_rgb(crop, CROP_SIDE), root / split / f"{photo.name}_{i:02d}.png",
                     overwrite=True)
        if photo.held_out:
            save_rgb(rgb, root / "photos" / f"{photo.name}.png", overwrite=True)
    done.write_text(f"colorlib tiny set v{TINY_VERSION}\n")
    return root
