"""The Dataset, its in-memory cache, the sampler and loader, and the fast batch path.

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

import math
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from colorlib.photos.image_files import ImageReadError, SkippedImageWarning, load_rgb, resize_rgb
from colorlib.photos.lab import rgb_to_lab_tensor


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
    from colorlib.system.environment_variables import number

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
