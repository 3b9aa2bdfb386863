"""Where the training photos come from, and the seeded split.

Three sources, one :class:`DataConfig`: a folder of your own photos, fastai's COCO sample
(the tutorial's 8,000 / 2,000 photos, downloaded once and cached), or the embedded tiny set.
:func:`resolve_source` turns a config into (train, val) lists of paths; unreadable files
and a mostly grey folder are reported before any training starts.

Taught in notebook 02.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from colorlib.photos.image_files import (ColorlibWarning, ImageReadError, SkippedImageWarning,
                                         check_image, load_rgb, scan_folder)

COCO_SAMPLE_SIZE = 10_000
COCO_TRAIN_SIZE = 8_000
TUTORIAL_SEED = 123  # the split seed of the tutorial (its np.random.seed(123))


@dataclass
class DataConfig:
    """Where the photos come from and how they are served."""

    source: str = "tiny"  # "tiny", "coco", or a folder of images
    size: int = 256
    batch_size: int = 16
    val_fraction: float = 0.2  # folders only; coco and tiny have fixed splits
    seed: int = TUTORIAL_SEED
    num_workers: int = 0
    max_images: int | None = None  # cap the training set (quick runs)
    on_error: str = "skip"  # "skip" (warn and drop a bad file) or "raise"
    # coco only: folders for the prepared copy of the sample (first: written; all: looked in).
    # None: $COLORLIB_DATA_CACHE; (): no prepared copy, fastai's own download cache only.
    cache: tuple[str, ...] | None = None


# ------------------------------------------------------------------ sources
def find_images(folder: str | Path, exclude: Sequence[str | Path] = ()) -> list[Path]:
    """All image files below ``folder`` (recursive), sorted for reproducibility.

    The listing is :func:`colorlib.photos.image_files.scan_folder`: every format Pillow
    can read, hidden files and folders skipped quietly. Files it leaves out
    for a reason (a format that needs a plugin, outputs colorlib wrote) are
    named in one :class:`~colorlib.photos.image_files.SkippedImageWarning` per kind.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    scan = scan_folder(folder, exclude=tuple(exclude))
    notices = scan.notices()
    if not scan.images:
        found = "; ".join(f"{len(w.paths)} file(s) such as {w.paths[0]}: {w.reason}"
                          for w in notices)
        raise ValueError(f"{folder}: no images found" + (f" ({found})" if found else
                         " (no file of a format Pillow can read)"))
    for notice in notices:
        warnings.warn(notice, stacklevel=2)
    return scan.images


def split_paths(paths: Sequence[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Seeded, reproducible train/val split: the same seed gives the same split.

    Shown in notebook 02.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(paths))
    n_val = int(round(len(paths) * val_fraction))
    if len(paths) > 1:
        n_val = min(max(n_val, 1 if val_fraction > 0 else 0), len(paths) - 1)
    val = [paths[i] for i in sorted(order[:n_val])]
    train = [paths[i] for i in sorted(order[n_val:])]
    return train, val


# The prepared copy of the COCO sample: the 10,000 photos the series uses (of
# the sample's ~22,000), unchanged JPEG bytes in one uncompressed tar, with a
# manifest of the split. It lives in a folder that outlives the machine (a
# Google Drive folder in Colab), so a new machine copies one file instead of
# downloading and unpacking the 3 GB sample again.
_MANIFEST = "colorlib-coco-manifest.json"
DATA_CACHE_ENV = "COLORLIB_DATA_CACHE"


class DataCacheError(RuntimeError):
    """A prepared data file exists but cannot be used (damaged, incomplete, wrong content)."""


def coco_cache_name(seed: int) -> str:
    """The prepared copy's file name for the split of ``seed``."""
    return f"coco_sample_seed{seed}.tar"


COCO_CACHE_NAME = coco_cache_name(TUTORIAL_SEED)  # the tutorial's seed; others add their own


def data_cache_dirs(cache: Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """The data-cache folders: ``cache`` if given, else ``$COLORLIB_DATA_CACHE`` (``:``-separated)."""
    if cache is None:
        cache = [p for p in os.environ.get(DATA_CACHE_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(p).expanduser() for p in cache]


class DataUnavailableError(RuntimeError):
    """A data set that has to be downloaded could not be (offline, server down, disk full)."""


def _fetch_coco_sample() -> Path:
    """fastai's COCO sample folder: downloaded (about 3 GB) and unpacked on first use."""
    import warnings

    with warnings.catch_warnings():  # fastai's import-time torch.jit deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        from fastai.data.external import URLs, untar_data
    try:
        return Path(untar_data(URLs.COCO_SAMPLE)) / "train_sample"
    except (OSError, EOFError) as err:  # URLError, socket errors, a full disk, a cut download
        raise DataUnavailableError(
            f"--data coco (COLORLIB_DATA=coco): the COCO sample (about 3 GB) could not be "
            f"downloaded ({_download_failure(err)}); connect this machine to the internet, "
            "point COLORLIB_DATA_CACHE at a folder holding a prepared copy, or train on "
            "--data tiny or a folder of your own photos") from None


def _download_failure(err: BaseException) -> str:
    """A short reason for a failed download, without the library's own wording."""
    import socket
    import urllib.error

    reason = getattr(err, "reason", None)  # URLError wraps the socket error
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered HTTP {err.code}"
    if isinstance(reason, socket.gaierror) or isinstance(err, socket.gaierror):
        return "no network: the server's name cannot be looked up"
    if isinstance(reason, (socket.timeout, TimeoutError)) or isinstance(err, TimeoutError):
        return "the server did not answer in time"
    if isinstance(reason, ConnectionError) or isinstance(err, ConnectionError):
        return "the connection was refused or cut"
    if isinstance(err, EOFError):
        return "the download was cut short"
    strerror = getattr(err, "strerror", None)
    return strerror or type(err).__name__


def _coco_split(folder: Path, seed: int) -> tuple[list[Path], list[Path]]:
    """The tutorial's draw, 10,000 photos with ``np.random.seed(seed)`` then 8,000/2,000, made
    from the *sorted* file list.

    The tutorial drew from ``glob``'s list, whose order depends on the file
    system, so its own 10,000 photos differ from machine to machine and cannot
    be reproduced; sorting first makes the same seed pick the same photos
    everywhere. Shown in notebook 02.
    """
    paths = np.array(sorted(str(p) for p in folder.glob("*.jpg")))
    if len(paths) < COCO_SAMPLE_SIZE:
        raise ValueError(f"{folder}: {len(paths)} photos, the COCO sample has over "
                         f"{COCO_SAMPLE_SIZE}; the download is incomplete (delete the folder "
                         "and run again)")
    rng = np.random.RandomState(seed)  # with TUTORIAL_SEED, the tutorial's own draws
    subset = rng.choice(paths, COCO_SAMPLE_SIZE, replace=False)
    order = rng.permutation(COCO_SAMPLE_SIZE)
    train = [Path(p) for p in subset[order[:COCO_TRAIN_SIZE]]]
    val = [Path(p) for p in subset[order[COCO_TRAIN_SIZE:]]]
    return train, val


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _write_prepared(archive: Path, train: list[Path], val: list[Path], seed: int) -> int:
    """Write the prepared tar atomically (``.partial``, then rename); return its size."""
    import io
    import tarfile

    files = list(train) + list(val)
    manifest = {"seed": seed, "train": [p.name for p in train], "val": [p.name for p in val],
                "sizes": {p.name: p.stat().st_size for p in files}}
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.parent / f".{archive.name}.partial"
    try:
        with tarfile.open(partial, "w") as tar:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo(_MANIFEST)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for path in files:
                tar.add(path, arcname=path.name)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive.stat().st_size


def _read_prepared(archive: Path, local: Path) -> tuple[list[Path], list[Path]]:
    """Unpack a prepared tar into ``local`` (skipped when already there); return the split."""
    import tarfile

    def damaged(reason: str) -> DataCacheError:
        return DataCacheError(f"{archive}: not a usable prepared COCO sample ({reason}); "
                              "delete it and run again to download the sample anew")

    done = local / _MANIFEST
    try:
        with tarfile.open(archive, "r:") as tar:
            first = tar.next()
            if first is None or first.name != _MANIFEST:
                raise damaged("no manifest at its start")
            manifest = json.loads(tar.extractfile(first).read())
            sizes = manifest["sizes"]
            names = manifest["train"] + manifest["val"]
            if done.is_file() and done.read_text() == json.dumps(manifest) and all(
                    (local / n).is_file() and (local / n).stat().st_size == sizes[n]
                    for n in names):
                return [local / n for n in manifest["train"]], [local / n for n in manifest["val"]]
            local.mkdir(parents=True, exist_ok=True)
            done.unlink(missing_ok=True)
            seen = set()
            for member in tar:
                name = member.name
                if name == _MANIFEST:
                    continue
                if not member.isfile() or name != Path(name).name or name.startswith("."):
                    raise damaged(f"unexpected member {name!r}")
                with tar.extractfile(member) as src, open(local / name, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                seen.add(name)
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError, KeyError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise damaged(reason) from None
    missing = [n for n in names if n not in seen or (local / n).stat().st_size != sizes[n]]
    if missing:
        raise damaged(f"{len(missing)} of its {len(names)} photos missing or cut short, "
                      f"e.g. {missing[0]}")
    done.write_text(json.dumps(manifest))  # written last: marks a complete unpack
    return [local / n for n in manifest["train"]], [local / n for n in manifest["val"]]


def coco_sample_paths(seed: int = TUTORIAL_SEED, cache: Sequence[str | os.PathLike] | None = None,
                      local: str | os.PathLike | None = None,
                      log=print) -> tuple[list[Path], list[Path]]:
    """The tutorial's split of fastai's COCO sample: 10,000 photos, 8,000/2,000.

    Without a data cache this downloads the sample (about 3 GB, through
    fastai, which keeps it in ``~/.fastai``) on first use. With cache
    folders (``cache``, else ``$COLORLIB_DATA_CACHE``; set up by
    :func:`colorlib.teaching.notebook.persist`):

    * if one of them holds the prepared copy (``coco_sample_seed<seed>.tar``:
      the 10,000 photos, about half the sample, and the split), it is
      unpacked into ``local`` (a folder on this machine's own disk; skipped
      if already there) and no download happens;
    * otherwise the sample is downloaded as above and the prepared copy is
      written into the first folder, for the next machine.

    A damaged prepared copy raises :class:`DataCacheError` naming the file;
    it is never deleted or overwritten.
    """
    dirs = data_cache_dirs(cache)
    name = coco_cache_name(seed)
    local = Path(local) if local is not None else \
        Path(tempfile.gettempdir()) / "colorlib-data" / name.removesuffix(".tar")
    for folder in dirs:
        archive = folder / name
        if archive.is_file():
            start = time.perf_counter()
            train, val = _read_prepared(archive, local)
            log(f"COCO sample: prepared copy {archive} ({_gb(archive.stat().st_size)}) -> "
                f"{len(train) + len(val):,} photos in {local}, "
                f"{time.perf_counter() - start:.0f} s, no download")
            return train, val
    start = time.perf_counter()
    train, val = _coco_split(_fetch_coco_sample(), seed)
    if not dirs:
        return train, val
    log(f"COCO sample: downloaded or found by fastai in {time.perf_counter() - start:.0f} s")
    archive = dirs[0] / name
    start = time.perf_counter()
    try:
        size = _write_prepared(archive, train, val, seed)
    except OSError as err:
        warnings.warn(f"could not keep a prepared copy of the COCO sample in {dirs[0]} "
                      f"({err.strerror or err}); the next machine will download it again",
                      stacklevel=2)
        return train, val
    log(f"COCO sample: kept the {len(train) + len(val):,} photos this series uses in {archive} "
        f"({_gb(size)}, {time.perf_counter() - start:.0f} s); later runs copy that file "
        "instead of downloading the sample")
    return train, val


def resolve_source(cfg: DataConfig, exclude: Sequence[str | Path] = ()) -> tuple[list[Path], list[Path]]:
    """Turn ``cfg.source`` into (train paths, val paths).

    ``exclude``: folders inside a photo folder that are not scanned (a run's
    own checkpoint folder: its validation figures are not photos).
    Shown in notebook 02.
    """
    if cfg.source == "tiny":
        from colorlib.photos.tiny_set import build_tiny_set

        root = build_tiny_set()
        train, val = find_images(root / "train"), find_images(root / "val")
    elif cfg.source == "coco":
        train, val = coco_sample_paths(cfg.seed, cache=cfg.cache)
    else:
        folder = Path(cfg.source)
        if (folder / "train").is_dir() and (folder / "val").is_dir():
            train = find_images(folder / "train", exclude)
            val = find_images(folder / "val", exclude)
        else:
            train, val = split_paths(find_images(folder, exclude), cfg.val_fraction, cfg.seed)
    if cfg.max_images is not None:
        train = train[: cfg.max_images]
    return train, val


def drop_unreadable(paths: Sequence[Path], on_error: str = "skip") -> list[Path]:
    """``paths`` without the files that are plainly not readable images.

    A header check per file (no decoding), so every empty file, non-image or
    decompression bomb is named once, before training, rather than only
    when (and if) an epoch happens to draw it. ``on_error="raise"`` stops at
    the first one instead of warning.
    """
    good = []
    for path in paths:
        try:
            check_image(path)
            good.append(path)
        except ImageReadError as err:
            if on_error == "raise":
                raise
            warnings.warn(SkippedImageWarning.from_error(err), stacklevel=2)
    return good


class GreyDataWarning(ColorlibWarning):
    """(Nearly) all training photos are greyscale: there is no colour to learn from."""


GREY_SAMPLE = 32  # photos looked at, spread evenly over the training set
GREY_WARNING_SHARE = 0.9


def grey_share(paths: Sequence[Path], sample: int = GREY_SAMPLE) -> tuple[int, int]:
    """(greyscale photos, photos looked at) among ``sample`` photos spread over ``paths``.

    Each is decoded small (JPEG draft mode) and shrunk to 64 px first, so
    the look costs well under a second for most folders.
    """
    from PIL import Image

    from colorlib.photos.metrics import is_greyscale

    n = len(paths)
    picked = list(paths) if n <= sample else [paths[i * n // sample] for i in range(sample)]
    grey = looked = 0
    for path in picked:
        try:
            rgb = load_rgb(path, max_side=64)
        except ImageReadError:
            continue  # named elsewhere
        img = Image.fromarray(rgb)
        img.thumbnail((64, 64))
        looked += 1
        grey += is_greyscale(np.asarray(img))
    return grey, looked


def warn_if_mostly_grey(paths: Sequence[Path], source: str) -> float | None:
    """Warn (:class:`GreyDataWarning`, naming the share) when the training photos are
    (nearly) all greyscale; return the share of grey photos seen (None: none readable)."""
    grey, looked = grey_share(paths)
    if not looked:
        return None
    share = grey / looked
    if share >= GREY_WARNING_SHARE:
        which = "training photos" if looked == len(paths) else "training photos looked at"
        warnings.warn(GreyDataWarning(
            f"{source}: {grey} of {looked} {which} ({share:.0%}) are greyscale; a colorizer "
            "learns colour only from colour photos, so this run can only learn to paint grey. "
            "Train on colour photos (and colorize your black-and-white ones afterwards)"),
            stacklevel=2)
    return share
