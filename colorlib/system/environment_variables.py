"""colorlib's environment variables: one table, and readers that fail in words.

A setting given as ``COLORLIB_CACHE_GB=abc`` or ``COLORLIB_TINY=maybe`` stops
with one line naming the variable and what it accepts, instead of a Python
error or a silent default; a misspelt name (``COLORLIB_EPOCH``) is pointed
out, since it would otherwise do nothing at all.
"""
from __future__ import annotations

import difflib
import os
from typing import Mapping

# Each name is written once. These are checked here or read by the notebooks' module, which
# imports them; a variable that a module of photos or data reads keeps its constant beside
# that reader (data.sources.DATA_CACHE_ENV, photos.image_files.MAX_PIXELS_ENV) and only its
# line in the table below.
TINY_ENV = "COLORLIB_TINY"
STORE_ENV = "COLORLIB_STORE"
DRIVE_MOUNT_ENV = "COLORLIB_DRIVE_MOUNT"
KAGGLE_INPUT_ENV = "COLORLIB_KAGGLE_INPUT"

# name -> what it sets (the notebooks' settings are read by colorlib.teaching.notebook.settings).
VARIABLES = {
    TINY_ENV: "1: the notebooks' tiny setting (a flag)",
    "COLORLIB_RUN": "notebooks: quick, medium or full (overrides the settings cell's RUN)",
    "COLORLIB_DATA": "notebooks: tiny, coco or a folder of photos",
    "COLORLIB_SIZE": "notebooks: training size in px",
    "COLORLIB_EPOCHS": "notebooks: epochs",
    "COLORLIB_MAX_STEPS": "notebooks: step budget",
    "COLORLIB_BATCH_SIZE": "notebooks: batch size",
    "COLORLIB_DEVICE": "notebooks: cpu, cuda, ...",
    "COLORLIB_CHECKPOINTS": "notebooks: checkpoint folder",
    "COLORLIB_FIGURES": "notebooks: figure folder",
    STORE_ENV: "notebooks: a folder that outlives the machine",
    DRIVE_MOUNT_ENV: "notebooks: where Google Drive is mounted",
    KAGGLE_INPUT_ENV: "notebooks: Kaggle's input folder",
    "COLORLIB_DATA_CACHE": "folders for the prepared COCO sample",
    "COLORLIB_CACHE": "folder for derived data (the tiny set)",
    "COLORLIB_CACHE_GB": "memory for decoded training photos, in GB",
    "COLORLIB_KEEP_FREED_MEMORY": "0: leave glibc's malloc settings alone (a flag)",
    "COLORLIB_MAX_MEGAPIXELS": "largest photo to decode, in megapixels",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# What each command line run reads itself; checked before any work.
CLI_VARIABLES = ("COLORLIB_CACHE_GB", "COLORLIB_KEEP_FREED_MEMORY", "COLORLIB_MAX_MEGAPIXELS")


def flag(name: str, env: Mapping[str, str] | None = None, default: bool = False) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (any case); unset or empty: ``default``."""
    text = (os.environ if env is None else env).get(name, "").strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}: expected 1 or 0 (or true/false, yes/no, on/off), got {text!r}")


def number(name: str, env: Mapping[str, str] | None = None, default: float | None = None,
           minimum: float = 0.0, strict: bool = False) -> float | None:
    """A number variable, at least ``minimum`` (above it with ``strict``); unset: ``default``."""
    text = (os.environ if env is None else env).get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < minimum \
            or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        finite = "finite " if value != value or abs(value) == float("inf") else ""
        raise ValueError(f"{name}: expected a {finite}number {bound}, got {text!r}")
    return value


_CHECKS = {
    TINY_ENV: lambda env: flag(TINY_ENV, env),
    "COLORLIB_KEEP_FREED_MEMORY": lambda env: flag("COLORLIB_KEEP_FREED_MEMORY", env, True),
    "COLORLIB_CACHE_GB": lambda env: number("COLORLIB_CACHE_GB", env),
    "COLORLIB_MAX_MEGAPIXELS": lambda env: number("COLORLIB_MAX_MEGAPIXELS", env, strict=True),
}


def check_environment(names=CLI_VARIABLES, env: Mapping[str, str] | None = None) -> list[str]:
    """Check the values of ``names`` (raise ValueError naming the first bad one); return notes
    on ``COLORLIB_*`` variables that colorlib does not know (likely misspelt)."""
    env = os.environ if env is None else env
    for name in names:
        if name in _CHECKS:
            _CHECKS[name](env)
    notes = []
    for name in sorted(k for k in env if k.startswith("COLORLIB_") and k not in VARIABLES):
        close = difflib.get_close_matches(name, VARIABLES, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        notes.append(f"{name} is not a colorlib setting{hint}; it has no effect")
    return notes
