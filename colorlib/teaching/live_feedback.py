"""What a learner sees while a stage trains: a line per report, and the photos coloured.

Two callbacks of the training loop (:class:`colorlib.training.loop.Callback`), so the loop
itself draws nothing:

* :class:`ValidationImages` colours the validation photos at epoch ends and saves the
  input / prediction / truth grid (``colorlib train`` writes ``val_images/`` with it) or
  shows it in the notebook;
* :class:`LiveProgress` (notebooks 03-05) prints **one line per epoch** (mean losses of the
  epoch, the validation L1, minutes so far) that stays in the cell's output, and under it
  the validation photos as the generator colours them now, drawn by a
  :class:`ValidationImages`, so colour can be watched emerging epoch by epoch. With
  ``every_steps`` it also reports within an epoch (useful for short runs, such as the tiny
  setting, that never finish one).

A progress bar shows the current epoch too, but it disappears when the epoch ends.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from colorlib.data.loading import ColorizationDataset, make_loader, prepare_batch
from colorlib.teaching.figures import _plt, plot_colorization_grid, save_figure
from colorlib.training.loop import LOGGED_LOSSES, Callback


class ValidationImages(Callback):
    """Input / prediction / truth of the validation photos, every ``every`` epochs.

    ``folder``: save each grid there as ``<stage>_epoch0001.png`` (``_step0008.png`` for a
    report within an epoch); ``show``: display it in the notebook. ``photos``: the photos to
    colour, at training ``size`` (none: the trainer's fixed validation batch); at most
    ``max_images`` of them. Only rank 0 of a data-parallel run draws.
    """

    def __init__(self, folder: str | Path | None = None, every: int = 1, *,
                 photos: Sequence = (), size: int = 256, max_images: int = 6, show: bool = False):
        self.folder = Path(folder) if folder is not None else None
        self.every, self.show, self.max_images = max(1, every), show, max_images
        self.photos, self.size = list(photos)[:max_images], size
        self._batch: dict | None = None

    def on_epoch_end(self, trainer) -> None:
        if trainer.epoch % self.every == 0:
            self.draw(trainer, "epoch", trainer.epoch)

    def draw(self, trainer, kind: str, number: int) -> Path | None:
        """Colour the photos now; the file saved, if any. ``kind``: "epoch" or "step"."""
        if not trainer.dist.is_main:
            return None
        batch = self._photos(trainer)
        prepared = prepare_batch(batch, trainer.device) if batch is not None else None
        if prepared is None:  # none of the photos could be read (each is named already)
            return None
        L, ab = prepared
        fig = plot_colorization_grid(L, trainer.predict(L), ab, max_images=self.max_images)
        where = f"epoch {number} (step {trainer.step})" if kind == "epoch" else f"step {number}"
        fig.suptitle(f"{trainer.cfg.stage}: {where}", y=1.02)
        if self.show:
            _display(fig)
        if self.folder is None:
            _plt().close(fig)
            return None
        name = f"{trainer.cfg.stage}_{kind}{number:04d}.png"
        return save_figure(fig, self.folder / name, legacy_ok=True)  # the run's own folder

    def _photos(self, trainer) -> dict | None:
        if not self.photos:
            return trainer.val_batch
        if self._batch is None:
            dataset = ColorizationDataset(self.photos, self.size, lab=False)
            self._batch = next(iter(make_loader(dataset, len(dataset), train=False)))
        return self._batch


def _display(fig) -> None:
    """Show ``fig`` in the notebook running this (nothing outside one)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(fig)


class LiveProgress(Callback):
    """Print a line and show (and save) the validation colours at each report.

    ``val_paths``: photos to colour at each report (the first ``max_images``), at training
    ``size``; none: lines only. ``folder``: also save each grid there. ``every_steps``:
    report every that many steps too, besides every epoch end. ``image_every``: show the
    photos at every that many epochs only (a 100-epoch run need not show 100 grids); step
    reports always show them.
    """

    def __init__(self, val_paths: Sequence = (), size: int = 256, every_steps: int | None = None,
                 folder: str | Path | None = None, max_images: int = 6, image_every: int = 1):
        self.every_steps, self.image_every = every_steps, max(1, image_every)
        self.images = ValidationImages(folder, photos=val_paths, size=size,
                                       max_images=max_images, show=True) if val_paths else None
        self._last_step: int | None = None
        self._clock: tuple[float, float] | None = None  # (perf_counter, trainer seconds) at start
        self.lines: list[str] = []  # every line printed, for reading back

    def on_step_end(self, trainer, losses: dict[str, float]) -> None:
        if self._last_step is None:
            self._last_step = trainer.step - 1
        if self._clock is None:
            self._clock = (time.perf_counter(), trainer.train_seconds)
        if self.every_steps and trainer.step % self.every_steps == 0:
            records = [h for h in trainer.history if h["step"] > self._last_step]
            self.report(trainer, "step", trainer.step, records)

    def on_epoch_end(self, trainer) -> None:
        records = [h for h in trainer.history if h["epoch"] == trainer.epoch - 1]
        self.report(trainer, "epoch", trainer.epoch, records,
                    images=trainer.epoch % self.image_every == 0)

    def report(self, trainer, kind: str, number: int, records: list[dict],
               images: bool = True) -> str:
        """Print one line for ``records`` (the steps since the last report) and show the photos."""
        self._last_step = trainer.step
        parts = [f"{key} {np.mean(values):.3f}" for key in LOGGED_LOSSES
                 if (values := [h[key] for h in records if key in h])]
        val = trainer.val_history[-1] if trainer.val_history else None
        if val is not None and val["step"] == trainer.step:
            parts.append(f"val L1 {val['val_l1']:.4f}")
        start, before = self._clock or (time.perf_counter(), trainer.train_seconds)
        parts.append(f"{(before + time.perf_counter() - start) / 60:.1f} min so far")
        where = f"epoch {number} (step {trainer.step})" if kind == "epoch" else f"step {number}"
        line = f"{where}: " + ", ".join(parts)
        print(line, flush=True)
        self.lines.append(line)
        if self.images is not None and images:
            self.images.draw(trainer, kind, number)
        return line
