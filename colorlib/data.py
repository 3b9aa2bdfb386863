"""Data sources, the seeded split, the Dataset and the fast batch path.

Where the Lab conversion happens matters for speed. The seed tutorial calls
skimage's ``rgb2lab`` on every image inside ``Dataset.__getitem__``, so the
loader's worker processes do floating-point colour maths one image at a
time. Here the Dataset decodes each file once (JPEG draft decoding when the
photo is much larger than the training size), keeps the resized uint8 pixels
in memory (:class:`CachedLoader`: worker processes decode in the first
epoch, later epochs are memory copies), and the training loop converts a
whole batch to Lab in one vectorised call on the training device
(:func:`prepare_batch`). That delivers batches faster than the tutorial's
loader (measured in ``benchmarks/RESULTS.md``). The Dataset
can still yield normalised L and ab itself (``lab=True``), for teaching and
for code that wants the classic interface; both paths use the same
conversion function.

Taught in notebook 02.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from .images import (ColorlibWarning, ImageReadError, SkippedImageWarning, check_image, load_rgb,
                     resize_rgb, scan_folder)
from .lab import rgb_to_lab_tensor

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

    The listing is :func:`colorlib.images.scan_folder`: every format Pillow
    can read, hidden files and folders skipped quietly. Files it leaves out
    for a reason (a format that needs a plugin, outputs colorlib wrote) are
    named in one :class:`~colorlib.images.SkippedImageWarning` per kind.
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
    :func:`colorlib.notebook.persist`):

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
        from .tiny import build_tiny_set

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

    from .metrics import is_greyscale

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


# ------------------------------------------------------------------ dataset
class ColorizationDataset(Dataset):
    """Photos resized to ``size`` x ``size``.

    Yields ``{"L": 1xHxW, "ab": 2xHxW}`` normalised tensors when ``lab`` is
    true, else ``{"rgb": 3xHxW uint8}`` for :func:`prepare_batch` to convert
    on the training device. A file that cannot be read yields
    ``{"error": ImageReadError}`` instead of raising inside a worker
    process, so the error (path and reason as fields; it pickles) reaches
    the main process intact; :func:`collate` gathers them into
    ``batch["errors"]``.

    Shown in notebook 02.
    """

    def __init__(self, paths: Sequence[str | Path], size: int = 256, lab: bool = True,
                 cache: bool = True):
        self.paths = [Path(p) for p in paths]
        self.size = size
        self.lab = lab
        self.cache = cache
        self._cache: dict[int, torch.Tensor] = {}  # idx -> 3xHxW uint8, ready to stack
        self._errors: dict[int, ImageReadError] = {}  # idx -> why the file cannot be read

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, idx: int) -> torch.Tensor:
        """Read photo ``idx`` from disk and resize it: 3xHxW uint8 (no caching)."""
        return _chw(resize_rgb(load_rgb(self.paths[idx], max_side=self.size), self.size))

    def pixels(self, idx: int) -> torch.Tensor:
        """Photo ``idx`` as 3xHxW uint8, decoded once; later epochs reuse the pixels."""
        if idx in self._cache:
            return self._cache[idx]
        if idx in self._errors:
            raise self._errors[idx]
        # Worker processes never keep pixels: a per-worker copy of the cache
        # would multiply memory, and tensors they send are in shared memory.
        keep = self.cache and get_worker_info() is None
        try:
            pixels = self.decode(idx)
        except ImageReadError as err:
            if keep:
                self._errors[idx] = err
            raise
        if keep:
            self._cache[idx] = pixels
        return pixels

    def load(self, idx: int) -> np.ndarray:
        """Photo ``idx`` as an HxWx3 uint8 array (decoded once, then cached)."""
        return self.pixels(idx).permute(1, 2, 0).numpy()

    def nbytes(self) -> int:
        """Memory the whole set takes once cached."""
        return len(self) * 3 * self.size * self.size

    def preload(self, num_workers: int = 0, progress: bool = False) -> None:
        """Decode every photo not yet cached, with ``num_workers`` processes.

        After this, serving a batch is a memory copy: no file is read again.
        Workers only decode; the pixels come back to this process, so there
        is one cache, not one per worker.
        """
        todo = [i for i in range(len(self)) if i not in self._cache and i not in self._errors]
        if not todo or not self.cache:
            return
        decoder = _Decoder(self.paths, self.size)
        if num_workers > 0:
            batches = DataLoader(decoder, batch_size=16, sampler=todo, num_workers=num_workers,
                                 collate_fn=list)
        else:
            batches = ([decoder[i]] for i in todo)
        from tqdm.auto import tqdm

        with tqdm(total=len(todo), desc="decoding photos once (later epochs read memory)",
                  disable=None if progress else True, leave=False) as bar:
            for items in batches:
                for idx, rgb, error in items:
                    if error is None:
                        self._cache[idx] = _chw(rgb)
                    else:
                        self._errors[idx] = error
                bar.update(len(items))

    def __getitem__(self, idx: int) -> dict:
        try:
            pixels = self.pixels(idx)
        except ImageReadError as err:
            return {"error": err}
        if not self.lab:
            return {"rgb": pixels}
        L, ab = rgb_to_lab_tensor(pixels[None])
        return {"L": L[0], "ab": ab[0]}


def _chw(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW tensor, transposed by numpy (one thread; see :func:`_stack`)."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


class _Decoder(Dataset):
    """Worker-side view of a dataset for :meth:`ColorizationDataset.preload`.

    Returns plain numpy pixels (pickled back to the main process) rather
    than tensors, so thousands of cached images do not each hold a shared
    memory segment open.
    """

    def __init__(self, paths: list[Path], size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx: int) -> tuple[int, np.ndarray | None, ImageReadError | None]:
        try:
            return idx, resize_rgb(load_rgb(self.paths[idx], max_side=self.size), self.size), None
        except ImageReadError as err:
            return idx, None, err


def collate(items: list[dict]) -> dict:
    """Stack the good items; gather the errors (:class:`ImageReadError`) of the bad ones."""
    good = [it for it in items if "error" not in it]
    batch = default_collate(good) if good else {}
    batch["errors"] = [it["error"] for it in items if "error" in it]
    return batch


class EpochSampler(Sampler[int]):
    """Shuffles with a generator seeded by (seed, epoch), optionally sharded.

    Deterministic order per epoch makes resume exact: after a restart the
    same permutation is rebuilt and the batches already seen are skipped.
    With ``world > 1`` each rank takes every world-th index (padded so all
    ranks get the same count), as ``DistributedSampler`` does.
    """

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world: int = 1):
        self.n, self.shuffle, self.seed, self.rank, self.world = n, shuffle, seed, rank, world
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's permutation and drop its first ``skip`` indices."""
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        per_rank = math.ceil(self.n / self.world)
        order += order[: per_rank * self.world - self.n]
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.skip:])

    def __len__(self) -> int:
        return max(0, math.ceil(self.n / self.world) - self.skip)


class CachedLoader:
    """Serves batches of a :class:`ColorizationDataset` from memory.

    On the first iteration every photo is decoded once (by ``num_workers``
    processes); from then on a batch is a dictionary lookup and one stack
    (``benchmarks/RESULTS.md`` times it), so even a fast GPU never waits for
    the loader. Batches are exactly those a ``DataLoader`` with the
    same sampler would give (same order, same ``collate``), so training is
    bitwise the same whether the cache is warm or not. Quacks like the
    ``DataLoader`` it replaces: ``sampler``, ``batch_size``, ``drop_last``,
    ``dataset``, ``len()``.
    """

    def __init__(self, dataset: ColorizationDataset, batch_size: int, sampler: EpochSampler,
                 drop_last: bool, num_workers: int = 0, pin_memory: bool = False):
        self.dataset, self.batch_size, self.sampler = dataset, batch_size, sampler
        self.drop_last, self.num_workers, self.pin_memory = drop_last, num_workers, pin_memory

    def __len__(self) -> int:
        return batch_count(len(self.sampler), self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[dict]:
        # A progress bar only where the wait is noticeable (thousands of photos).
        self.dataset.preload(self.num_workers, progress=len(self.dataset) >= 1000)
        order = list(self.sampler)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            if self.drop_last and len(chunk) < self.batch_size:
                break
            batch = _stack([self.dataset[i] for i in chunk])
            if self.pin_memory and "rgb" in batch:
                batch["rgb"] = batch["rgb"].pin_memory()
            yield batch


def _stack(items: list[dict]) -> dict:
    """:func:`collate`, with the uint8 pixels stacked by numpy.

    Same result; numpy copies a batch on one thread, where a multi-threaded
    torch copy can stall when other programs keep the CPU cores busy
    (``benchmarks/RESULTS.md``, "Other measurements").
    """
    if not all(set(it) <= {"rgb", "error"} for it in items):
        return collate(items)
    good = [it["rgb"].numpy() for it in items if "rgb" in it]
    batch = {"rgb": torch.from_numpy(np.stack(good))} if good else {}
    batch["errors"] = [it["error"] for it in items if "error" in it]
    return batch


def cache_budget_bytes() -> int:
    """Most memory a loader may use to keep decoded photos (``$COLORLIB_CACHE_GB``).

    Default: a third of this machine's RAM, at most 16 GB. COCO's 8,000
    training photos take 1.6 GB at 256 px.
    """
    from .environment import number

    gb = number("COLORLIB_CACHE_GB")
    if gb is not None:
        return int(gb * 2**30)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 * 2**30
    return min(ram // 3, 16 * 2**30)


def batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    """How many batches ``n`` photos make (whole batches only with ``drop_last``)."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def steps_per_epoch(loader) -> int:
    """Optimisation steps in one whole epoch of a :func:`make_loader` training loader.

    Counts this rank's share of the photos, also when a resumed epoch skips
    its first batches (``len(loader)`` is what is left of the epoch then).
    """
    return batch_count(len(loader.sampler.indices()), loader.batch_size, loader.drop_last)


def make_loader(dataset: Dataset, batch_size: int, train: bool, seed: int = 0,
                num_workers: int = 0, rank: int = 0, world: int = 1,
                pin_memory: bool = False) -> DataLoader | CachedLoader:
    """A loader with an :class:`EpochSampler` (training) or fixed order (val).

    A :class:`ColorizationDataset` that fits in :func:`cache_budget_bytes`
    gets a :class:`CachedLoader` (decode once, then serve from memory);
    anything else a ``DataLoader`` that decodes every epoch. The loader gets
    its own ``torch.Generator`` so that creating an iterator does not consume
    the global random state (which dropout uses), keeping a resumed run
    bitwise identical to an uninterrupted one on the CPU.

    Shown in notebook 02.
    """
    sampler = EpochSampler(len(dataset), shuffle=train, seed=seed, rank=rank, world=world)
    drop_last = train and len(dataset) // world >= batch_size
    if isinstance(dataset, ColorizationDataset) and dataset.cache:
        if dataset.nbytes() <= cache_budget_bytes():
            return CachedLoader(dataset, batch_size, sampler, drop_last, num_workers, pin_memory)
        warnings.warn(f"{len(dataset)} photos at {dataset.size} px need "
                      f"{dataset.nbytes() / 2**30:.1f} GB, more than the cache budget "
                      f"({cache_budget_bytes() / 2**30:.1f} GB, set COLORLIB_CACHE_GB); "
                      "decoding them every epoch instead", stacklevel=2)
        dataset.cache = False
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        collate_fn=collate, drop_last=drop_last,
        pin_memory=pin_memory, persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def random_hflip(tensors: Sequence[torch.Tensor], generator: torch.Generator,
                 rank: int = 0, world: int = 1) -> list[torch.Tensor]:
    """Flip each image of a batch left-right with probability 1/2.

    The same coin decides for every tensor in ``tensors`` (e.g. L and ab), and
    ``generator`` is seeded per step by the caller, so augmentation is
    reproducible and independent of worker processes. Under data-parallel
    training each of ``world`` ranks holds every world-th image of the global
    batch; coins are drawn for the global batch and each rank takes its
    share, so the flips match a single-process run over the same batch.
    The flip is a ``torch.where``, not boolean indexing, so a GPU batch
    never makes the CPU wait.

    Shown in notebook 02.
    """
    n = tensors[0].shape[0]
    flip = (torch.rand(n * world, generator=generator) < 0.5)[rank::world]
    out = []
    for t in tensors:
        if t.device.type == "cpu":  # numpy: one thread, no stalls on a busy CPU (see _stack)
            arr = t.detach().numpy()
            flipped = arr.copy()
            rows = np.flatnonzero(flip.numpy())
            flipped[rows] = arr[rows][..., ::-1]
            out.append(torch.from_numpy(flipped))
            continue
        mask = flip.to(t.device, non_blocking=True).view(-1, *([1] * (t.dim() - 1)))
        out.append(torch.where(mask, t.flip(-1), t))
    return out


def prepare_batch(batch: dict, device: torch.device | str, augment: bool = False,
                  generator: torch.Generator | None = None, on_error: str = "skip",
                  rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Batch from the loader -> normalised (L, ab) on ``device``.

    Bad files named in ``batch["errors"]`` are warned about (``on_error="skip"``)
    or raised as :class:`ImageReadError` (``"raise"``). Returns None if no
    good image is left in the batch.

    Shown in notebook 02.
    """
    for error in batch.get("errors", []):
        if on_error == "raise":
            raise error
        warnings.warn(SkippedImageWarning.from_error(error), stacklevel=2)
    if "rgb" in batch:
        rgb = batch["rgb"].to(device, non_blocking=True)
        if augment:
            (rgb,) = random_hflip([rgb], generator, rank, world)
        return rgb_to_lab_tensor(rgb)
    if "L" in batch:
        L = batch["L"].to(device, non_blocking=True)
        ab = batch["ab"].to(device, non_blocking=True)
        if augment:
            L, ab = random_hflip([L, ab], generator, rank, world)
        return L, ab
    return None
