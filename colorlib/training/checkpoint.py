"""Checkpoints: one file holding weights (state_dicts) and the config that built them.

No pickled classes: a checkpoint is a dict of tensors, numbers, strings and
lists, loaded with ``torch.load(..., weights_only=True)``, so opening a file
someone shared cannot run code. Saves are atomic (:mod:`colorlib.system.atomic_files`: a
temporary file in the same folder, flushed to disk, then renamed over the old
file), so a crash or a full disk mid-save leaves the previous checkpoint intact.

A training checkpoint (``colorlib.training.loop.Trainer.state_dict``) holds: ``stage``,
``model`` (the :class:`~colorlib.models.networks.ModelConfig`), ``train`` (the
``TrainConfig``), ``colorlib_version``, ``weights``, ``generator``,
``discriminator``, ``opt_G``, ``opt_D``, ``scaler``, ``epoch``,
``batch_in_epoch``, ``step``, ``history``, ``val_history``, ``train_seconds``,
``rng`` and (since 0.1, for the resume check of :mod:`colorlib.training.run_safety`) ``run``:
the data source, batch size and split seed. Inference needs only ``model``
and ``generator``.
Taught in notebook 03 (saving and resuming) and notebook 06 (loading).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from colorlib.models.networks import ModelConfig
from colorlib.system.atomic_files import WriteFailed, atomic_write, unreadable_reason

FORMAT = "colorlib-checkpoint"
FORMAT_VERSION = 1
EXPORT_KIND = "generator"  # the ``kind`` of a weights-only export (:mod:`colorlib.inference.export`)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or for another model."""


def checkpoint_path(directory: str | os.PathLike, stage: str) -> Path:
    """The one file a stage writes: ``<directory>/<stage>.pt``."""
    return Path(directory) / f"{stage}.pt"


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike,
                    replace: bool = True) -> Path:
    """Write ``payload`` to ``path`` atomically; raise a clear OSError on failure.

    ``replace=False``: never over a file that appeared at ``path`` meanwhile
    (FileExistsError)."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}

    def write(f) -> None:
        writer = _WriteErrorRecorder(f)
        try:
            torch.save(payload, writer)
        except RuntimeError as err:
            # torch replaces a failed write (disk full, file too large) by an
            # internal "unexpected pos" error; report the OS's reason instead.
            raise (writer.error or OSError(str(err).strip().splitlines()[0])) from None

    try:
        return atomic_write(path, write, replace=replace)
    except WriteFailed as err:
        if err.in_folder:
            raise OSError(f"cannot write checkpoint in {path.parent}: {err.strerror}") from None
        raise OSError(f"cannot write checkpoint {path}: {err.strerror}; "
                      "the previous checkpoint (if any) is unchanged") from None


class _WriteErrorRecorder:
    """A file wrapper that remembers the first OSError a write raised."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def __getattr__(self, name):  # flush, seek, tell, ...: the file's own
        return getattr(self.f, name)


def rng_state() -> dict[str, Any]:
    """The global random state a run continues from (dropout draws from it)."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng_state(rng: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved (CUDA's part only where there is a GPU).

    The CUDA states are one per GPU of the machine that saved them. Each GPU
    here gets its saved state; states of GPUs this machine does not have are
    left unused (a checkpoint from Kaggle's two GPUs resumes on Colab's one),
    and GPUs the saving machine did not have keep their own state.
    """
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        for index, state in enumerate(list(rng["cuda"])[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)


def load_checkpoint(path: str | os.PathLike, arch: str | None = None,
                    stage: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely and check it is the model the caller expects.

    ``arch``/``stage``, when given, must match what the file records;
    otherwise a :class:`CheckpointError` says what the file holds instead.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give the checkpoint file inside it "
                              f"(e.g. {checkpoint_path(path, 'pretrain')})")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, pickled classes, ...
        raise CheckpointError(f"{path}: not a readable colorlib checkpoint: "
                              f"{unreadable_reason(path, err)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a colorlib checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer colorlib "
                              f"(format {ckpt['format_version']}); please upgrade")
    _check_model_settings(path, ckpt)
    found_arch = ckpt["model"]["arch"]
    if arch is not None and found_arch != arch:
        raise CheckpointError(f"{path}: holds a {found_arch} generator, expected {arch}")
    if stage is not None and ckpt.get("stage") != stage:
        raise CheckpointError(f"{path}: is a '{ckpt.get('stage')}' checkpoint, expected '{stage}'")
    return ckpt


def _check_model_settings(path: Path, ckpt: dict) -> None:
    """The stored config must rebuild a model, and the weights must be there."""
    from colorlib.models.networks import ModelConfig

    if not isinstance(ckpt.get("model"), dict) or not isinstance(ckpt.get("generator"), dict):
        raise CheckpointError(f"{path}: incomplete checkpoint (no model settings or weights)")
    try:
        ModelConfig(**ckpt["model"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its model settings do not fit this colorlib "
                              f"version ({err})") from None


def checkpoint_kind(path: str | os.PathLike) -> tuple[str | None, str]:
    """What ``path`` holds, for the output rule: ``(kind, reason)``.

    ``kind`` is ``"training"`` (a checkpoint that resumes: optimiser state
    and all), ``"export"`` (a weights-only generator, ``colorlib export``),
    or None for a file colorlib did not write, with ``reason`` saying what
    it is instead. Memory-maps the file, so even a large checkpoint is
    recognised without reading its weights.
    """
    path = Path(path)
    if not path.is_file():
        return None, "not a file"
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # an older, non-zip torch file cannot be memory-mapped
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - anything unreadable is not ours to replace
        return None, unreadable_reason(path, err)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        return None, f"a file without the '{FORMAT}' marker"
    if is_export(ckpt):
        return "export", "a weights-only export"
    if "opt_G" in ckpt and "step" in ckpt:
        return "training", "a training checkpoint that resumes"
    return "export", "a colorlib checkpoint without optimiser state"


def is_export(ckpt: dict) -> bool:
    """Whether ``ckpt`` is a weights-only export (``colorlib export``), not a training checkpoint."""
    return ckpt.get("kind") == EXPORT_KIND


def training_amp(ckpt: dict) -> bool:
    """Whether the run that made ``ckpt`` trained with mixed precision (bf16 or fp16).

    Newer checkpoints say which dtype (``amp_dtype``); older ones only say
    whether mixed precision was asked for (``train.amp``, on by default and
    in effect on GPUs), which is the best guess there is.
    """
    if "amp_dtype" in ckpt:
        return ckpt["amp_dtype"] is not None
    return bool((ckpt.get("train") or {}).get("amp", True))


def refuse_resume(ckpt: dict, path: str | os.PathLike) -> None:
    """A resume needs the full checkpoint; an export says so instead of 'does not fit'."""
    if is_export(ckpt):
        source = ckpt.get("source") or "<stage>.pt"
        where = f" it was exported from: {ckpt['source_path']}" if ckpt.get("source_path") else ""
        raise CheckpointError(
            f"{path}: a weights-only export (colorlib export): it colorizes and evaluates, and "
            "can start the gan stage (--init), but training cannot continue from it; resume "
            f"from the full checkpoint ({source}){where}")


def describe_misfit(expected: dict, given: dict) -> str:
    """How weights differ from a model's own: counts of missing, unexpected and other-shaped
    tensors, with an example (torch's own message is many lines long)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shaped = [k for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = [f"{len(missing)} of its {len(expected)} tensors missing",
             f"{len(unexpected)} unexpected",
             f"{len(shaped)} of another shape"]
    if shaped:
        k = shaped[0]
        parts[-1] += (f", e.g. {k}: {tuple(given[k].shape)} where it needs "
                      f"{tuple(expected[k].shape)}")
    elif missing:
        parts[0] += f", e.g. {missing[0]}"
    return ", ".join(parts)


def init_checkpoint(init: str | Path, model_cfg: ModelConfig) -> dict:
    """The checkpoint ``--init`` names, if its generator is one this run can start from.

    Starting points are generators that predict ab with ``model_cfg``'s
    architecture: pretrain's (or gan's, or an export of either). A classify
    checkpoint holds the same U-Net with a head that scores colour classes, so
    its weights would fail to load with a page of tensor names; it, and any
    other generator, is refused in one line naming the file and its stage.
    """
    path = Path(init)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"--init: {err}") from None
    model, stage = ckpt["model"], ckpt.get("stage") or "unknown"
    if model["arch"] != model_cfg.arch:
        what = f"a {model['arch']} generator, not a {model_cfg.arch}"
    elif model.get("classes", 0) != model_cfg.classes:
        what = (f"its generator scores {model.get('classes')} a*b* colour classes instead of "
                "predicting ab")
    else:
        return ckpt
    raise CheckpointError(f"--init: {path} is a '{stage}' checkpoint ({what}); --init needs a "
                          "pretrain checkpoint (e.g. <checkpoint-dir>/pretrain.pt, or its "
                          "export)")


def load_init(net_G: torch.nn.Module, init: str | Path, model_cfg: ModelConfig) -> None:
    """Load ``--init``'s generator into ``net_G``, or say in one line why it does not fit."""
    ckpt = init_checkpoint(init, model_cfg)
    try:
        net_G.load_state_dict(ckpt["generator"])
    except RuntimeError:  # e.g. a checkpoint of another size: say how, in one line
        raise CheckpointError(
            f"--init: {init}: its generator ('{ckpt.get('stage')}' checkpoint, "
            f"{ckpt['model'].get('size')} px) does not fit this run's {model_cfg.arch} of "
            f"{model_cfg.size} px ({describe_misfit(net_G.state_dict(), ckpt['generator'])})"
        ) from None


def check_model_settings(ckpt: dict, model_cfg: ModelConfig,
                         source: str | Path | None = None) -> None:
    """Refuse, naming each setting, a checkpoint trained with another network shape."""
    ours = model_cfg.to_dict()
    if ckpt["model"] == ours:
        return
    where = f"{source}: " if source is not None else ""
    diff = ", ".join(f"{k}={ckpt['model'].get(k)!r} (this run: {v!r})"
                     for k, v in ours.items() if ckpt["model"].get(k) != v)
    raise CheckpointError(f"{where}checkpoint was trained with other model settings: {diff}; "
                          "use the same settings, or start afresh with another --checkpoint-dir")


def misfit_error(err: Exception, source: str | Path | None = None) -> CheckpointError:
    """A checkpoint whose tensors do not fit the model, in one line (the first of ``err``'s)."""
    reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else repr(err)
    where = f"{source}: " if source is not None else ""
    return CheckpointError(f"{where}checkpoint does not fit this model ({reason})")
