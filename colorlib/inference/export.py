"""Weights-only exports: the generator and its settings, small enough to keep or share.

A training checkpoint holds everything a resume needs: both networks, both
optimisers' moments, the loss scale, the random state and the history.
Colorizing needs only the generator and the settings that built it.
:func:`export_generator` writes just those, in half precision by default:

* no discriminator, no optimiser moments and two bytes a weight instead of
  four, so an export is a small fraction of its checkpoint (``colorlib
  export`` prints both sizes);
* the file is a colorlib checkpoint with ``kind: "generator"`` (same format
  marker, loaded with ``weights_only=True``), so everything that loads a
  generator reads it (``colorlib colorize``, ``colorlib evaluate``,
  :class:`colorlib.inference.colorizer.Colorizer`, ``--init`` of the gan stage, the
  notebooks' :func:`colorlib.teaching.notebook.ensure_stage`), while a resume
  refuses it with a clear message (:func:`colorlib.training.checkpoint.refuse_resume`).

Half-precision weights change colorized pixels by well under one 8-bit
level (tests/test_export.py measures it). The export also records whether
training used mixed precision, so inference on a GPU uses it by default too.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from colorlib import __version__
from colorlib.training.checkpoint import (EXPORT_KIND, load_checkpoint, save_checkpoint,
                                          training_amp)

SUFFIX = "-generator.pt"  # <stage>-generator.pt beside <stage>.pt


def export_path(checkpoint: str | os.PathLike) -> Path:
    """Where :func:`export_generator` writes by default: ``gan.pt`` -> ``gan-generator.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + SUFFIX)


def export_generator(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None,
                     dtype: torch.dtype = torch.float16, overwrite: bool = False) -> Path:
    """Write ``checkpoint``'s generator and settings to ``out`` (default ``<stage>-generator.pt``).

    ``dtype``: the floating-point weights' type (float16 halves float32's
    size; integer buffers such as BatchNorm's counter, and a classify
    generator's class buffers, stay as they are).
    An existing ``out`` is replaced only with ``overwrite=True``, and only if
    it is an earlier export: never the checkpoint itself, another run's
    resumable checkpoint, or a file colorlib did not write
    (:func:`colorlib.inference.output_rule.check_output`).
    """
    from colorlib.inference.output_rule import check_output
    from colorlib.training.checkpoint import checkpoint_kind

    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else export_path(checkpoint)
    replace = check_output(out, "--out", overwrite=overwrite, what="an export",
                           is_ours=lambda p: checkpoint_kind(p)[0] == "export",
                           inputs=[("the checkpoint", [checkpoint])])
    ckpt = load_checkpoint(checkpoint)
    keep = _full_precision(ckpt)
    weights = {k: (v.to(dtype) if v.is_floating_point() and k not in keep else v)
               for k, v in ckpt["generator"].items()}
    payload = {"kind": EXPORT_KIND, "model": ckpt["model"], "generator": weights,
               "stage": ckpt.get("stage"), "weights_dtype": str(dtype).removeprefix("torch."),
               "amp_dtype": ckpt.get("amp_dtype"), "train": {"amp": training_amp(ckpt)},
               "step": ckpt.get("step"), "epoch": ckpt.get("epoch"),
               "source": checkpoint.name, "source_path": str(checkpoint.resolve()),
               "colorlib_version": __version__, "trained_with": ckpt.get("colorlib_version")}
    return save_checkpoint(payload, out, replace=replace)


def _full_precision(ckpt: dict) -> set[str]:
    """The generator's tensors an export keeps exactly as the checkpoint has them.

    A classify generator's class buffers (:data:`colorlib.models.classify.CLASS_BUFFERS`:
    the a*b* bin centres its colours are decoded from, the rebalancing weights
    and the class shares) describe the classes rather than being weights; in
    float16 the rarest classes' shares would lose their digits (under 6e-5) or
    become 0 (under 3e-8), and the weights would change in their fourth digit.
    They are a few kB.
    """
    if not ckpt["model"].get("classes"):
        return set()
    from colorlib.models.classify import CLASS_BUFFERS

    return set(CLASS_BUFFERS)
