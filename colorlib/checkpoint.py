"""Checkpoints: one file holding weights (state_dicts) and the config that built them.

No pickled classes: a checkpoint is a dict of tensors, numbers, strings and
lists, loaded with ``torch.load(..., weights_only=True)``, so opening a file
someone shared cannot run code. Saves are atomic (write a temporary file in
the same folder, flush it to disk, then rename over the old file), so a
crash or a full disk mid-save leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "colorlib-checkpoint"
FORMAT_VERSION = 1
STAGES = ("baseline", "pretrain", "gan")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or for another model."""


def checkpoint_path(directory: str | os.PathLike, stage: str) -> Path:
    """The one file a stage writes: ``<directory>/<stage>.pt``."""
    return Path(directory) / f"{stage}.pt"


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically; raise a clear OSError on failure."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(f"cannot write checkpoint in {path.parent}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise OSError(f"cannot write checkpoint {path}: {err.strerror or err}; "
                      "the previous checkpoint (if any) is unchanged") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, arch: str | None = None,
                    stage: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely and check it is the model the caller expects.

    ``arch``/``stage``, when given, must match what the file records;
    otherwise a :class:`CheckpointError` says what the file holds instead.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, pickled classes, ...
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable colorlib checkpoint ({reason})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a colorlib checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer colorlib "
                              f"(format {ckpt['format_version']}); please upgrade")
    found_arch = ckpt.get("model", {}).get("arch")
    if arch is not None and found_arch != arch:
        raise CheckpointError(f"{path}: holds a {found_arch} generator, expected {arch}")
    if stage is not None and ckpt.get("stage") != stage:
        raise CheckpointError(f"{path}: is a '{ckpt.get('stage')}' checkpoint, expected '{stage}'")
    return ckpt
