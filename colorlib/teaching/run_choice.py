"""The notebooks' ``RUN`` switch: quick, medium or full, and what each costs before it starts.

Every settings cell of the series has one visible line, ``RUN = "full"``,
and hands it to :func:`colorlib.teaching.notebook.settings`:

* ``"quick"``: the embedded tiny set at 64 px for a few optimisation steps
  (the tiny setting, also ``COLORLIB_TINY=1``): a check that every cell
  works, quick on a CPU; not a way to learn colour;
* ``"medium"``: the full run's photos and epochs at half the image size
  (128 px instead of 256): a quarter of its computation, so each training
  notebook fits a free Colab session with time to spare;
* ``"full"``: the tutorial's run, the COCO sample at 256 px.

``COLORLIB_RUN`` (e.g. for ``tools/run_notebook.py``) overrides the cell's
value. The settings cell prints, for the three choices, the photos, size
and epochs and the estimated minutes on a free Colab T4 and on a CPU. The
minutes come from :mod:`colorlib.training.cost` (counted FLOPs, an assumed T4
utilisation, measured CPU throughput), never typed by hand; notebook 03
explains how each is obtained. Shown in the settings cell of every notebook.
"""
from __future__ import annotations

from typing import Mapping

RUN_ENV = "COLORLIB_RUN"
RUNS = {
    "quick": "the embedded tiny set at 64 px, a few steps: checks that every cell works",
    "medium": "the full run's photos and epochs at half the size: a quarter of its work",
    "full": "the tutorial's run: the COCO sample at 256 px",
}
MEDIUM_SCALE = 2  # medium trains at the full run's size divided by this


def choose(run: str | None, env: Mapping[str, str]) -> str:
    """The run asked for: ``COLORLIB_RUN`` if set, else ``run`` (the cell's ``RUN``), else full.

    ``COLORLIB_TINY=1`` (how the tests run every notebook) makes any choice quick.
    """
    from colorlib.system.environment_variables import flag

    text = env.get(RUN_ENV, "").strip().lower() or (run or "full").strip().lower()
    if text not in RUNS:
        source = f"{RUN_ENV}={env[RUN_ENV]!r}" if env.get(RUN_ENV, "").strip() else f"RUN = {run!r}"
        raise ValueError(f"{source}: expected one of {', '.join(map(repr, RUNS))}")
    return "quick" if flag("COLORLIB_TINY", env) else text


def training_photos(s) -> int | None:
    """Photos in one epoch of settings ``s`` (None for a folder that cannot be listed)."""
    from colorlib.data.sources import COCO_TRAIN_SIZE, resolve_source

    if s.data == "coco":
        return COCO_TRAIN_SIZE
    if s.data == "tiny":
        from colorlib.photos.tiny_set import CROPS_PER_PHOTO, TINY_PHOTOS

        return CROPS_PER_PHOTO * sum(not p.held_out for p in TINY_PHOTOS)
    try:
        return len(resolve_source(s.data_config())[0])
    except (OSError, ValueError):
        return None


def images_seen(s, photos: int | None) -> int | None:
    """Training images the run of ``s`` processes: the step budget's, or photos x epochs."""
    if s.max_steps is not None:
        return s.max_steps * s.batch_size
    return None if photos is None else photos * s.epochs


def minutes(stage: str, s, images: int) -> tuple[float, float]:
    """(T4 minutes, CPU minutes) to train ``stage`` on ``images`` images with settings ``s``.

    Both are :func:`colorlib.training.cost.stage_cost`'s, derived as notebook 03 explains.
    """
    from colorlib.training.cost import stage_cost

    c = stage_cost(stage, images=images, size=s.size, epochs=1, num_filters=s.num_filters,
                   measure_checkpoint=False)
    return c.t4_minutes_per_epoch, c.cpu_minutes_per_epoch


def duration(minutes_: float) -> str:
    """A time for people: "< 1 min", "17 min", "3.4 h", "3.4 days"."""
    if minutes_ < 1:
        return "< 1 min"
    if minutes_ < 90:
        return f"{minutes_:.0f} min"
    if minutes_ < 48 * 60:
        return f"{minutes_ / 60:.1f} h"
    return f"{minutes_ / 60 / 24:.1f} days"


def _what(s, photos: int | None) -> str:
    if s.data == "coco":
        kind = "COCO photos"
    elif s.data == "tiny":
        kind = "tiny-set crops"
    else:
        kind = "of your photos"
    return f"{photos:,} {kind}" if photos is not None else f"photos in {s.data}"


def table(choices: Mapping[str, object], chosen: str, stage: str | None) -> tuple[str, dict]:
    """The printed comparison of the three runs, and {run: (T4, CPU minutes)} for ``stage``.

    ``choices`` maps each run to its :class:`colorlib.teaching.notebook.Settings`.
    """
    rows = [("RUN", "photos", "size") + (("trains here", "T4 (est.)", "CPU (est.)") if stage
                                         else ())]
    times: dict[str, tuple[float, float]] = {}
    for name, s in choices.items():
        photos = training_photos(s)
        mark = "<-" if name == chosen else ""
        if stage is None:
            rows.append((f"{name} {mark}".strip(), _what(s, photos), f"{s.size} px"))
        else:
            work = (f"{s.max_steps} steps of {s.batch_size}" if s.max_steps is not None
                    else f"{s.epochs} epochs")
            images = images_seen(s, photos)
            if images is None:
                t4 = cpu = "?"
            else:
                times[name] = minutes(stage, s, images)
                t4, cpu = (duration(m) for m in times[name])
            rows.append((f"{name} {mark}".strip(), _what(s, photos), f"{s.size} px", work, t4, cpu))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if stage is None:
        lines.append("(this notebook trains nothing)")
    else:
        lines.append(f"(stage {stage!r}; estimates from colorlib.training.cost, explained in notebook 03: "
                     "counted FLOPs at an assumed 25 % of a T4's fp16 peak, and the throughput "
                     "measured on a 2-core CPU; downloading and the first epoch's decoding "
                     "come on top)")
    return "\n".join(lines), times


def cpu_warning(s, stage: str | None, times: Mapping[str, tuple[float, float]]) -> str | None:
    """One line when a medium or full run is about to train on a CPU, with its estimated time."""
    if stage is None or s.run == "quick" or not str(s.device).startswith("cpu") \
            or s.run not in times:
        return None
    return (f"WARNING: no GPU. This {s.run} run would train for about "
            f"{duration(times[s.run][1])} on a 2-core CPU (estimated). In Colab choose Runtime > "
            "Change runtime type > T4 GPU; on Kaggle, Settings > Accelerator > GPU T4 x2; "
            'or set RUN = "quick" to check the cells in minutes.')
