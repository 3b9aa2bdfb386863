"""Interrupted training: SIGKILL mid-run and mid-save, then ``--resume``, without loss.

The resumed run must end with exactly the weights, optimiser moments, random
state and loss history of a run that was never interrupted (CPU, fixed
seed): checked with ``torch.equal`` on every tensor, no tolerance. That
holds because the checkpoint carries the global torch RNG state (dropout),
the epoch's sample order is rebuilt from (seed, epoch) and the batches
already seen are skipped, and the flip augmentation is seeded by the step.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
from robust_helpers import (CHILD_ENV, assert_same_state, error_lines, make_training_photos,
                            stage_run)

from colorlib.cli import main
from colorlib.data.sources import DataConfig
from colorlib.models import pix2pix as pix2pix_module
from colorlib.models.base_model import NonFiniteLossError
from colorlib.training.checkpoint import load_checkpoint
from colorlib.training.loop import Callback, Trainer
from colorlib.training.runner import train_stage

TRAIN_ARGS = ["--stage", "baseline", "--size", "32", "--batch-size", "4", "--filters", "8",
              "--epochs", "3", "--seed", "7", "--device", "cpu", "--weights", "none",
              "--save-every", "1", "--no-progress"]

# Runs `colorlib` with torch.save patched to write half a checkpoint and then
# SIGKILL its own process on save number KILL_AT: a kill while the checkpoint
# file is being written, at an exactly known point. Test-only code.
KILL_WHILE_SAVING = """
import io, os, signal, sys
import torch
real_save, kill_at, calls = torch.save, int(sys.argv[1]), [0]
def save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] == kill_at:
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from colorlib.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """10 pictures: the seeded split keeps 8 for training, so 2 steps per epoch at batch 4."""
    return make_training_photos(tmp_path_factory.mktemp("photos") / "all", n=10)


def colorlib_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "colorlib", *map(str, args)]


def train_cmd(photos, ck, *extra) -> list[str]:
    return colorlib_cmd("train", "--data", photos, "--checkpoint-dir", ck, *TRAIN_ARGS, *extra)


def run(cmd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=CHILD_ENV)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory):
    """The uninterrupted run every resumed run must reproduce."""
    ck = tmp_path_factory.mktemp("reference")
    proc = run(train_cmd(photos, ck))
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(ck / "baseline.pt")
    assert ckpt["step"] == 6 and ckpt["epoch"] == 3
    return ckpt


def resume_and_check(photos, ck, reference):
    """``--resume`` must say where it starts, finish, and match the reference exactly."""
    saved = load_checkpoint(ck / "baseline.pt")
    proc = run(train_cmd(photos, ck, "--resume"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (f"Resumed baseline from {ck / 'baseline.pt'}: epoch {saved['epoch'] + 1}, "
            f"batch {saved['batch_in_epoch']}, step {saved['step']}") in proc.stdout
    assert "3 epoch(s), 6 steps" in proc.stdout
    assert_same_state(load_checkpoint(ck / "baseline.pt"), reference)
    assert not list(ck.glob(".baseline.pt.*.tmp"))  # debris of the killed save is gone


posix_signals = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


@posix_signals
@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(photos, reference, tmp_path):
    ck = tmp_path / "ck"
    proc = subprocess.Popen(train_cmd(photos, ck), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=CHILD_ENV)
    deadline = time.monotonic() + 240
    while not (ck / "baseline.pt").exists():  # the first checkpoint is out: mid-run
        assert proc.poll() is None and time.monotonic() < deadline, "run ended too early"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # killed, not finished
    saved = load_checkpoint(ck / "baseline.pt")  # the last complete checkpoint loads
    assert 1 <= saved["step"] < 6
    resume_and_check(photos, ck, reference)


@posix_signals
@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_then_resume(photos, reference, tmp_path):
    ck = tmp_path / "ck"
    # Saves: step 1, step 2 (in the loop), epoch 1's end, step 3 <- killed halfway.
    proc = run([sys.executable, "-c", KILL_WHILE_SAVING, "4", "train", "--data", photos,
                "--checkpoint-dir", ck, *TRAIN_ARGS])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (debris,) = ck.glob(".baseline.pt.*.tmp")  # the half-written file is left behind ...
    assert debris.stat().st_size > 0
    saved = load_checkpoint(ck / "baseline.pt")  # ... and the previous checkpoint is intact
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (2, 1, 0)
    resume_and_check(photos, ck, reference)


@pytest.mark.slow
def test_pretrain_resumes_exactly(photos, tmp_path):
    """The ResNet18 U-Net stage (no dropout, Adam with default betas) resumes exactly too."""
    data = DataConfig(source=str(photos), size=32, batch_size=4)
    kwargs = dict(epochs=1, device="cpu", weights="none", seed=5, progress=False)
    ref = train_stage(stage_run("pretrain", data, tmp_path / "ref", **kwargs))
    assert ref.trainer.step == 2

    class Interrupted(Exception):
        pass

    class DieAfterStep1(Callback):  # the session dies before step 2 (step 1 is saved)
        def on_step_end(self, trainer, losses):
            if trainer.step == 1:
                raise Interrupted

    with pytest.raises(Interrupted):
        train_stage(stage_run("pretrain", data, tmp_path / "int", save_every=1, **kwargs),
                    callbacks=[DieAfterStep1()])
    res = train_stage(stage_run("pretrain", data, tmp_path / "int", resume=True, **kwargs))
    assert res.resumed_from == {"epoch": 0, "batch_in_epoch": 1, "step": 1}
    assert_same_state(load_checkpoint(res.checkpoint), load_checkpoint(ref.checkpoint))


def test_resume_without_a_checkpoint_says_so_and_ignores_debris(photos, tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    debris = ck / ".baseline.pt.k1ll3d.tmp"  # a first save that was killed halfway
    debris.write_bytes(b"PK\x03\x04 half a checkpoint")
    said = []
    run = stage_run("baseline", DataConfig(source=str(photos), size=32, batch_size=4), ck,
                    epochs=1, resume=True, device="cpu", max_steps=1, num_filters=8,
                    progress=False)
    res = train_stage(run, log=said.append)
    assert said == [f"No checkpoint at {ck / 'baseline.pt'} yet: starting baseline from the "
                    "beginning"]
    assert res.resumed_from is None and load_checkpoint(res.checkpoint)["step"] == 1
    assert not debris.exists()


# ------------------------------------------------------------ numerical faults
def test_non_finite_loss_stops_with_stage_and_step_and_keeps_the_checkpoint(
        photos, tmp_path, monkeypatch, capsys):
    real_l1, calls = pix2pix_module.l1_term, []

    def l1_nan_on_third_call(fake, real, weight):
        calls.append(1)
        loss = real_l1(fake, real, weight)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(pix2pix_module, "l1_term", l1_nan_on_third_call)
    ck = tmp_path / "ck"
    code = main(["train", "--data", str(photos), "--checkpoint-dir", str(ck), *TRAIN_ARGS])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2
    assert line == ("colorlib: error: stage 'baseline', step 3: generator loss is nan; "
                    "training stopped before this update, the last saved checkpoint is kept")
    kept = load_checkpoint(ck / "baseline.pt")
    assert kept["step"] == 2
    assert all(torch.isfinite(t).all() for t in kept["generator"].values() if t.is_floating_point())


def test_weights_spoiled_by_an_update_are_never_saved(photos, tmp_path, monkeypatch):
    real_step = Trainer.train_step

    def step_that_spoils_weights(self, L, ab):
        losses = real_step(self, L, ab)
        if self.step == 1:  # the 2nd update leaves a NaN weight behind a finite loss
            with torch.no_grad():
                next(self.net_G.parameters()).view(-1)[0] = float("nan")
        return losses

    monkeypatch.setattr(Trainer, "train_step", step_that_spoils_weights)
    with pytest.raises(NonFiniteLossError, match="stage 'baseline', step 2: the generator's "
                       "weights are no longer finite"):
        train_stage(stage_run("baseline", DataConfig(source=str(photos), size=32, batch_size=4),
                              tmp_path, epochs=1, device="cpu", save_every=1, num_filters=8,
                              progress=False), log=lambda _: None)
    assert load_checkpoint(tmp_path / "baseline.pt")["step"] == 1  # the last good one
