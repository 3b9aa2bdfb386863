"""Checkpoint files that are broken, foreign or cannot be written.

Loading refuses anything that is not a colorlib checkpoint for the model asked
for, with one clear line naming the file, and never runs code from a file
(``weights_only=True``). Saving fails with a clear message on a full disk or
a read-only folder and leaves the previous checkpoint exactly as it was.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import tempfile

import pytest
import torch
from robust_helpers import (error_lines, make_training_photos, stage_run, tiny_checkpoint,
                            torch_threads)

from colorlib.cli import main
from colorlib.data.sources import DataConfig
from colorlib.inference.colorizer import load_generator
from colorlib.training import checkpoint as checkpoint_module
from colorlib.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from colorlib.training.runner import train_stage

PAYLOAD = {"stage": "baseline", "model": {"arch": "pix2pix_unet", "size": 32},
           "generator": {"w": torch.arange(50_000, dtype=torch.float32)}}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "baseline.pt")


class Evil:
    """Unpickling this creates a file: proof that code from a checkpoint ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _variant(name: str, folder, good):
    """Write one broken/foreign checkpoint -> (path, phrase its error must contain)."""
    path = folder / f"{name}.pt"
    data = good.read_bytes()
    if name == "truncated":
        path.write_bytes(data[: len(data) // 2])
        return path, "truncated or damaged"
    if name == "random":
        path.write_bytes(b"RND" + os.urandom(4096))
        return path, "not a PyTorch checkpoint"
    if name == "text":
        path.write_text("model weights: see attached\n")
        return path, "not a PyTorch checkpoint"
    if name == "empty":
        path.write_bytes(b"")
        return path, "empty (0 bytes)"
    if name == "pickled-module":
        torch.save(torch.nn.Linear(2, 2), path)
        return path, "pickled Python objects"
    if name == "malicious":
        torch.save({"format": "colorlib-checkpoint", "x": Evil(folder / "pwned")}, path)
        return path, "pickled Python objects"
    if name == "foreign-weights":
        torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
        return path, "not a colorlib checkpoint"
    if name == "future-settings":
        torch.save({**PAYLOAD, "format": "colorlib-checkpoint", "format_version": 1,
                    "model": {"arch": "pix2pix_unet", "size": 32, "colour_space": "oklab"}}, path)
        return path, "model settings do not fit"
    if name == "newer-format":
        torch.save({**PAYLOAD, "format": "colorlib-checkpoint", "format_version": 99}, path)
        return path, "newer colorlib"
    if name == "folder":
        path.mkdir()
        return path, "is a folder"
    if name == "missing":
        return path, "checkpoint file not found"
    raise ValueError(name)


VARIANTS = ["truncated", "random", "text", "empty", "pickled-module", "malicious",
            "foreign-weights", "future-settings", "newer-format", "folder", "missing"]


@pytest.mark.parametrize("name", VARIANTS)
def test_unusable_checkpoints_give_one_clear_error(name, tmp_path, good):
    path, phrase = _variant(name, tmp_path, good)
    for load in (load_checkpoint, load_generator):
        with pytest.raises(CheckpointError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and phrase in message and "\n" not in message
    assert not (tmp_path / "pwned").exists()  # nothing in the file was executed


def test_loading_uses_weights_only(good, monkeypatch):
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_generator(good)
    assert seen == [True]


def test_a_checkpoint_of_another_model_is_refused(good):
    with pytest.raises(CheckpointError, match="holds a pix2pix_unet generator, expected "
                       "resnet18_unet"):
        load_checkpoint(good, arch="resnet18_unet")
    with pytest.raises(CheckpointError, match="is a 'baseline' checkpoint, expected 'gan'"):
        load_checkpoint(good, stage="gan")


def test_resume_checks_the_model_settings_against_the_run(good, tmp_path, capsys):
    photos = make_training_photos(tmp_path / "photos", n=4)
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "baseline.pt").write_bytes(good.read_bytes())  # trained with 8 filters at 32 px
    with pytest.raises(CheckpointError) as info:
        train_stage(stage_run("baseline", DataConfig(source=str(photos), size=32, batch_size=4),
                              ck, epochs=1, resume=True, num_filters=16, device="cpu",
                              progress=False))
    assert str(info.value) == (f"{ck / 'baseline.pt'}: --resume continues a run exactly only "
                               "with its own settings; this run differs: --filters 16 "
                               "(checkpoint: 8). Rerun with the checkpoint's settings, or start "
                               "afresh with another --checkpoint-dir")
    code = main(["train", "--stage", "baseline", "--data", str(photos), "--size", "64",
                 "--filters", "8", "--checkpoint-dir", str(ck), "--resume", "--device", "cpu"])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and "baseline.pt: --resume continues a run exactly only with its own " \
        "settings; this run differs: --size 64 (checkpoint: 32)" in line
    code = main(["colorize", str(photos / "img00.png"), "--checkpoint",
                 str(_variant("truncated", tmp_path, good)[0]), "--out", str(tmp_path / "out")])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and "truncated.pt: not a readable colorlib checkpoint: the file is " \
        "truncated or damaged" in line


# ------------------------------------------------------------------ saving
def _previous(path):
    """Write a first, good checkpoint and return its bytes."""
    save_checkpoint({**PAYLOAD, "step": 1}, path)
    return path.read_bytes()


def _assert_untouched(path, before):
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp debris


def test_full_disk_fails_clearly_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "baseline.pt"
    before = _previous(path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module.os, "fsync", no_space)
    with pytest.raises(OSError) as info:
        save_checkpoint({**PAYLOAD, "step": 2}, path)
    assert str(info.value) == (f"cannot write checkpoint {path}: No space left on device; "
                               "the previous checkpoint (if any) is unchanged")
    _assert_untouched(path, before)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_a_real_failed_write_is_reported_with_the_os_reason(tmp_path):
    """A real short write (file-size limit, as a full disk gives): torch.save itself only
    says 'unexpected pos ...'; the message must carry the operating system's reason."""
    import resource

    path = tmp_path / "baseline.pt"
    before = _previous(path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(OSError) as info:
            save_checkpoint({**PAYLOAD, "step": 2, "more": torch.zeros(100_000)}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert str(info.value) == (f"cannot write checkpoint {path}: File too large; "
                               "the previous checkpoint (if any) is unchanged")
    _assert_untouched(path, before)


def test_an_internal_torch_save_error_is_still_a_clear_oserror(tmp_path, monkeypatch):
    path = tmp_path / "baseline.pt"
    before = _previous(path)

    def broken_save(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 704 vs 598")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match=r"cannot write checkpoint .*baseline\.pt: \[enforce fail"):
        save_checkpoint({**PAYLOAD, "step": 2}, path)
    _assert_untouched(path, before)


def test_a_read_only_checkpoint_folder_fails_clearly(tmp_path, monkeypatch):
    """Simulated with EACCES where the temp file is created: chmod does not stop root."""
    path = tmp_path / "baseline.pt"
    before = _previous(path)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OSError) as info:
        save_checkpoint({**PAYLOAD, "step": 2}, path)
    assert str(info.value) == f"cannot write checkpoint in {tmp_path}: Permission denied"
    _assert_untouched(path, before)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="runs as root, and chmod 0o555 does not stop root writing; "
                    "test_a_read_only_checkpoint_folder_fails_clearly simulates it instead")
def test_a_chmod_read_only_checkpoint_folder_fails_clearly(tmp_path):
    path = tmp_path / "ck" / "baseline.pt"
    path.parent.mkdir()
    before = _previous(path)
    path.parent.chmod(0o555)
    try:
        with pytest.raises(OSError, match="cannot write checkpoint in .*: Permission denied"):
            save_checkpoint({**PAYLOAD, "step": 2}, path)
    finally:
        path.parent.chmod(0o755)
    _assert_untouched(path, before)


def test_a_checkpoint_folder_that_cannot_exist_fails_clearly(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OSError, match="cannot write checkpoint in .*a-file/ck: Not a directory"):
        save_checkpoint(PAYLOAD, tmp_path / "a-file" / "ck" / "baseline.pt")


def test_a_good_save_clears_debris_of_killed_saves(tmp_path):
    path = tmp_path / "baseline.pt"
    (tmp_path / ".baseline.pt.abc123.tmp").write_bytes(b"PK half")
    (tmp_path / ".other.pt.abc123.tmp").write_bytes(b"not ours")
    save_checkpoint(PAYLOAD, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc123.tmp", "baseline.pt"]


def test_cli_train_on_a_full_disk_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    photos = make_training_photos(tmp_path / "photos", n=10)
    ck = tmp_path / "ck"
    args = ["train", "--stage", "baseline", "--data", str(photos), "--size", "32",
            "--batch-size", "4", "--filters", "8", "--device", "cpu", "--checkpoint-dir", str(ck),
            "--no-progress"]
    with torch_threads(1):
        assert main([*args, "--max-steps", "1"]) == 0
        before = (ck / "baseline.pt").read_bytes()

        def no_space(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(checkpoint_module.os, "fsync", no_space)
        capsys.readouterr()
        code = main([*args, "--max-steps", "2", "--resume"])
    captured = capsys.readouterr()
    (line,) = error_lines(captured.err)
    assert code == 2 and "Resumed baseline" in captured.out
    assert line == (f"colorlib: error: cannot write checkpoint {ck / 'baseline.pt'}: No space "
                    "left on device; the previous checkpoint (if any) is unchanged")
    assert (ck / "baseline.pt").read_bytes() == before
    assert not list(ck.glob(".baseline.pt.*.tmp"))
