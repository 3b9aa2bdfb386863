"""Live feedback while a stage trains in a notebook (notebooks 03-05).

A progress bar shows the current epoch and disappears when it ends. What a
learner wants to keep is a record: :class:`LiveProgress` prints **one line
per epoch** (mean losses of the epoch, the validation L1, minutes so far)
that stays in the cell's output, and under it **the validation photos as
the generator colours them now**, so colour can be watched emerging epoch
by epoch. With ``every_steps`` it also reports within an epoch (useful for
short runs, such as the tiny setting, that never finish one).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from colorlib.training.loop import Callback

LOSS_KEYS = ("loss_G_L1", "loss_G_GAN", "loss_D", "loss_G_class")


class LiveProgress(Callback):
    """Print a line and show (and save) the validation colours at each report.

    ``val_paths``: photos to colour at each report (the first ``max_images``),
    at training ``size``; none: lines only. ``folder``: also save each grid
    there as ``<stage>_<label>.png``. ``every_steps``: report every that many
    steps too, besides every epoch end. ``image_every``: show the photos at
    every that many epochs only (a 100-epoch run need not show 100 grids);
    step reports always show them.
    """

    def __init__(self, val_paths: Sequence = (), size: int = 256, every_steps: int | None = None,
                 folder: str | Path | None = None, max_images: int = 6, image_every: int = 1):
        self.val_paths = list(val_paths)[:max_images]
        self.size, self.every_steps, self.max_images = size, every_steps, max_images
        self.image_every = max(1, image_every)
        self.folder = Path(folder) if folder is not None else None
        self._batch = None
        self._last_step: int | None = None
        self._clock: tuple[float, float] | None = None  # (perf_counter, trainer seconds) at start
        self.lines: list[str] = []  # every line printed, for reading back

    # ------------------------------------------------------------ callbacks
    def on_step_end(self, trainer, losses: dict[str, float]) -> None:
        if self._last_step is None:
            self._last_step = trainer.step - 1
        if self._clock is None:
            self._clock = (time.perf_counter(), trainer.train_seconds)
        if self.every_steps and trainer.step % self.every_steps == 0:
            records = [h for h in trainer.history if h["step"] > self._last_step]
            self.report(trainer, f"step {trainer.step}", records)

    def on_epoch_end(self, trainer) -> None:
        records = [h for h in trainer.history if h["epoch"] == trainer.epoch - 1]
        self.report(trainer, f"epoch {trainer.epoch}", records,
                    images=trainer.epoch % self.image_every == 0)

    # --------------------------------------------------------------- report
    def report(self, trainer, label: str, records: list[dict], images: bool = True) -> str:
        """Print one line for ``records`` (the steps since the last report) and show the photos."""
        self._last_step = trainer.step
        parts = []
        for key in LOSS_KEYS:
            values = [h[key] for h in records if key in h]
            if values:
                parts.append(f"{key} {np.mean(values):.3f}")
        val = trainer.val_history[-1] if trainer.val_history else None
        if val is not None and val["step"] == trainer.step:
            parts.append(f"val L1 {val['val_l1']:.4f}")
        start, before = self._clock or (time.perf_counter(), trainer.train_seconds)
        parts.append(f"{(before + time.perf_counter() - start) / 60:.1f} min so far")
        where = label if label.startswith("step") else f"{label} (step {trainer.step})"
        line = f"{where}: " + ", ".join(parts)
        print(line, flush=True)
        self.lines.append(line)
        if self.val_paths and images:
            self._show(trainer, label)
        return line

    def _val_batch(self):
        if self._batch is None:
            from colorlib.data.loading import ColorizationDataset, make_loader

            dataset = ColorizationDataset(self.val_paths, self.size, lab=False)
            self._batch = next(iter(make_loader(dataset, len(dataset), train=False)))
        return self._batch

    def _show(self, trainer, label: str) -> None:
        from colorlib.data.loading import prepare_batch
        from colorlib.teaching.figures import _plt, plot_colorization_grid, save_figure

        prepared = prepare_batch(self._val_batch(), trainer.device)
        if prepared is None:
            return
        L, ab = prepared
        fig = plot_colorization_grid(L, trainer.predict(L), ab, max_images=self.max_images)
        fig.suptitle(f"{trainer.cfg.stage}: {label}", y=1.02)
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(fig)
        except ImportError:
            pass
        if self.folder is not None:
            name = f"{trainer.cfg.stage}_{label.replace(' ', '')}.png"
            save_figure(fig, self.folder / name, legacy_ok=True)  # the run's val_images/
        else:
            _plt().close(fig)
