"""A run is what it says it is: one writer per checkpoint, exact resumes only, a clean Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from robust_helpers import CHILD_ENV, assert_same_state, error_lines, make_training_photos

from colorlib.cli import main
from colorlib.training import run_safety
from colorlib.training.checkpoint import load_checkpoint
from colorlib.training.run_safety import RunLock, RunLockedError, StepGuard, TrainingInterrupted

BASE = ["--stage", "baseline", "--size", "32", "--batch-size", "4", "--filters", "8",
        "--seed", "7", "--device", "cpu", "--weights", "none", "--no-progress"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """10 pictures: the seeded split keeps 8 for training, so 2 steps per epoch at batch 4."""
    return make_training_photos(tmp_path_factory.mktemp("photos") / "all", n=10)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def colorlib_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "colorlib", *map(str, args)]


# ------------------------------------------------------------ the lock
def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    ckpt = tmp_path / "baseline.pt"
    with RunLock(ckpt) as first:
        holder = json.loads(first.path.read_text())
        assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(RunLockedError) as info:
            RunLock(ckpt).acquire()
        message = str(info.value)
        assert f"process {os.getpid()} on {socket.gethostname()}" in message
        assert "another --checkpoint-dir" in message and "\n" not in message
    assert not first.path.exists()  # released
    with RunLock(ckpt):
        pass


def test_stale_locks_are_detected(tmp_path, monkeypatch):
    ckpt = tmp_path / "baseline.pt"
    lock = tmp_path / "baseline.pt.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer exists on this host
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    notes = []
    with RunLock(ckpt, log=notes.append):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "no longer exists" in notes[0] and str(dead.pid) in notes[0]
    # Another machine's lock (a lost Colab session on Drive): alive while it is touched ...
    lock.write_text(json.dumps({"pid": 1, "host": "colab-vm-that-died"}))
    with pytest.raises(RunLockedError, match="colab-vm-that-died"):
        RunLock(ckpt).acquire()
    # ... stale once untouched for STALE_AFTER_S.
    old = time.time() - run_safety.STALE_AFTER_S - 60
    os.utime(lock, (old, old))
    notes.clear()
    with RunLock(ckpt, log=notes.append):
        pass
    assert "last touched" in notes[0] and not lock.exists()


def test_two_runs_taking_over_one_stale_lock_leave_one_writer(tmp_path):
    """Both judge a dead run's lock stale; the first takes it over; the second, acting on its
    now outdated judgement, must not delete the first one's fresh lock."""
    ckpt = tmp_path / "baseline.pt"
    lock = tmp_path / "baseline.pt.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "colab-vm-that-died"}))
    old = time.time() - run_safety.STALE_AFTER_S - 60
    os.utime(lock, (old, old))
    first, second = RunLock(ckpt, log=lambda _: None), RunLock(ckpt, log=lambda _: None)
    judged = second._holder()  # the second run reads the dead lock ...
    first.acquire()  # ... the first takes it over in the meantime ...
    try:
        assert second._stale(judged) is not None
        second._remove_stale(judged)  # ... and the second acts on what it read
        assert json.loads(lock.read_text())["token"] == first.token
        assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.pt.lock"]
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            second.acquire()
    finally:
        first.release()
    assert not lock.exists()


def test_the_lock_is_kept_fresh_while_a_run_lives(tmp_path, monkeypatch):
    monkeypatch.setattr(run_safety, "HEARTBEAT_S", 0.05)
    with RunLock(tmp_path / "baseline.pt") as lock:
        old = time.time() - 1000
        os.utime(lock.path, (old, old))
        time.sleep(0.3)
        assert time.time() - lock.path.stat().st_mtime < 5


# ------------------------------------------------------------ resume settings
@pytest.mark.slow
def test_resume_with_other_settings_is_refused_naming_each(photos, tmp_path, capsys):
    ck = tmp_path / "ck"
    assert main(["train", "--data", str(photos), "--checkpoint-dir", str(ck), "--max-steps", "1",
                 *BASE]) == 0
    ckpt = load_checkpoint(ck / "baseline.pt")
    assert ckpt["run"] == {"data": str(photos.resolve()), "batch_size": 4, "data_seed": 7}
    capsys.readouterr()
    changed = [a for a in BASE]
    changed[changed.index("--batch-size") + 1] = "2"
    changed[changed.index("--seed") + 1] = "8"
    code = main(["train", "--data", "tiny", "--checkpoint-dir", str(ck), "--resume",
                 "--gan-mode", "lsgan", "--max-steps", "2", *changed])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2
    assert line == (f"colorlib: error: {ck / 'baseline.pt'}: --resume continues a run exactly "
                    "only with its own settings; this run differs: --seed 8 (checkpoint: 7), "
                    "--gan-mode lsgan (checkpoint: vanilla), --data tiny (checkpoint: "
                    f"{photos.resolve()}), --batch-size 2 (checkpoint: 4). Rerun with the "
                    "checkpoint's settings, or start afresh with another --checkpoint-dir")
    assert "--overwrite" not in line
    assert load_checkpoint(ck / "baseline.pt")["step"] == 1  # untouched


@pytest.mark.slow
def test_a_finished_checkpoint_is_shown_on_other_photos_without_training(photos, tmp_path,
                                                                          capsys):
    """Nothing left to train (a notebook showing a finished run on the tiny set's photos):
    the checkpoint loads as it is; with a step left, the same settings are refused."""
    ck = tmp_path / "ck"
    assert main(["train", "--data", str(photos), "--checkpoint-dir", str(ck), "--max-steps", "1",
                 *BASE]) == 0
    before = (ck / "baseline.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--data", "tiny", "--checkpoint-dir", str(ck), "--resume",
                 "--max-steps", "1", *BASE]) == 0
    assert "already trained to step 1; nothing more is trained" in capsys.readouterr().out
    assert (ck / "baseline.pt").read_bytes() == before
    assert main(["train", "--data", "tiny", "--checkpoint-dir", str(ck), "--resume",
                 "--max-steps", "2", *BASE]) == 2
    assert "--data tiny (checkpoint:" in capsys.readouterr().err


# ------------------------------------------------------------ Ctrl-C
@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler, even where the shell started us with SIGINT ignored
    (a background job: then StepGuard rightly stands aside and nothing could be tested)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_the_step_guard_defers_ctrl_c_to_the_end_of_a_step(python_sigint):
    with StepGuard() as guard:
        with pytest.raises(KeyboardInterrupt):
            with guard.shielded():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the signal arrives here ...
                finished = True  # ... and the step still finishes
        assert finished and guard.pending and not guard.forced
    with StepGuard() as guard:  # a second Ctrl-C stops at once, and says so
        with pytest.raises(KeyboardInterrupt):
            with guard.shielded():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                pytest.fail("not reached")
        assert guard.forced
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def interruptible() -> None:
    """In the child before it starts: Ctrl-C as a terminal delivers it (a shell's background
    job inherits SIGINT ignored, and Python then never installs its handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(photos, tmp_path, capsys):
    ck = tmp_path / "ck"
    first = subprocess.Popen(colorlib_cmd("train", "--data", photos, "--checkpoint-dir", ck,
                                          "--epochs", "500", "--save-every", "3", *BASE),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=CHILD_ENV, preexec_fn=interruptible)
    deadline = time.monotonic() + 240
    while not (ck / "baseline.pt").exists():  # step 3 is saved: training is under way
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.02)
    # A second run on the same checkpoint is refused while the first one lives.
    code = main(["train", "--data", str(photos), "--checkpoint-dir", str(ck), "--resume", *BASE])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and f"another run is writing this checkpoint (process {first.pid}" in line
    time.sleep(0.5)
    first.send_signal(signal.SIGINT)  # Ctrl-C, or Colab's stop button
    out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    (line,) = error_lines(err)
    saved = load_checkpoint(ck / "baseline.pt")
    step, epoch, batch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
    assert line == (f"colorlib: training interrupted at step {step} (epoch {epoch + 1}, batch "
                    f"{batch}); saved a checkpoint there that resumes exactly: "
                    f"{ck / 'baseline.pt'} (continue with --resume)")
    assert step >= 3 and "Traceback" not in err and not (ck / "baseline.pt.lock").exists()
    # Resumed to a fixed step budget, it ends exactly where an uninterrupted run does.
    budget = ["--epochs", "500", "--save-every", "3", "--max-steps", str(step + 3)]
    for folder, extra in ((ck, ["--resume"]), (tmp_path / "reference", [])):
        proc = subprocess.run(colorlib_cmd("train", "--data", photos, "--checkpoint-dir", folder,
                                           *budget, *BASE, *extra),
                              capture_output=True, text=True, timeout=300, env=CHILD_ENV)
        assert proc.returncode == 0, proc.stderr
    resumed = load_checkpoint(ck / "baseline.pt")
    reference = load_checkpoint(tmp_path / "reference" / "baseline.pt")
    assert resumed["step"] == step + 3
    assert_same_state(resumed, reference)


def test_interrupt_messages_say_what_was_kept(tmp_path):
    ckpt = tmp_path / "baseline.pt"
    assert "saved a checkpoint there that resumes exactly" in str(
        TrainingInterrupted(ckpt, 12, 3, 4, saved=True))
    assert str(TrainingInterrupted(ckpt, 12, 3, 4, saved=False, last_saved=9, forced=True)) == (
        "training stopped at once by a second Ctrl-C at step 12 (epoch 4, batch 4), unsaved; "
        "the checkpoint saved at step 9 is kept")
    assert str(TrainingInterrupted(ckpt, 0, 0, 0, saved=False)).endswith(
        "before any new step; no checkpoint was written")
