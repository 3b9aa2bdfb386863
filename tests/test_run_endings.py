"""Runs survive how runs really end, and a resume is exact or refused (issue 20, principles 3-5).

The lock is taken over only from a process that is gone; an unreadable lock
says what it is; SIGTERM (a scheduler, Kaggle, ``kill``) saves like Ctrl-C;
every setting a resume would ignore is refused; the notebooks never replace
a real checkpoint with a tiny one, nor use a checkpoint of another size
without a word; Kaggle never prefers a damaged checkpoint.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robust_helpers import CHILD_ENV, cli_in_process, error_lines, make_training_photos

from colorlib.teaching import notebook as nb
from colorlib.training import run_safety
from colorlib.training.checkpoint import CheckpointError, load_checkpoint
from colorlib.training.run_safety import RunLock, RunLockedError, StepGuard

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
BASE = ["--stage", "baseline", "--size", "32", "--batch-size", "4", "--filters", "8",
        "--seed", "7", "--device", "cpu", "--weights", "none", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_training_photos(tmp_path_factory.mktemp("photos") / "all", n=10)


def cli(*args) -> tuple[int, list[str]]:
    return cli_in_process(*args)[:2]


def resnet_checkpoint(path: Path, stage: str = "pretrain", size: int = 32,
                      run: dict | None = None) -> Path:
    from colorlib.models.networks import ModelConfig
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    trainer = Trainer.build(ModelConfig(arch="resnet18_unet", size=size), TrainConfig(stage=stage),
                            "cpu", weights=None)
    trainer.run_info = run or {}
    return trainer.save(path)


# ------------------------------------------------------------------ the lock
@POSIX
def test_a_suspended_live_run_keeps_its_lock_however_old(tmp_path):
    """Issue 20: a run stopped for over 5 minutes (laptop sleep, SIGSTOP) lost its lock."""
    ckpt, lock = tmp_path / "baseline.pt", tmp_path / "baseline.pt.lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        os.kill(sleeper.pid, signal.SIGSTOP)
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        old = time.time() - run_safety.STALE_AFTER_S - 3600
        os.utime(lock, (old, old))
        with pytest.raises(RunLockedError, match=f"process {sleeper.pid}"):
            RunLock(ckpt, log=lambda _: None).acquire()
        assert json.loads(lock.read_text())["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    notes = []
    with RunLock(ckpt, log=notes.append):  # gone now: taken over, with a note
        pass
    assert "no longer exists" in notes[0]


@pytest.mark.parametrize("content", [b"", b"\x00\x00garbage"])
def test_an_unreadable_lock_says_what_it_is_and_how_to_clear_it(tmp_path, content):
    """Issue 20: a full disk leaves an empty lock, which blocked runs with 'process None'."""
    ckpt, lock = tmp_path / "baseline.pt", tmp_path / "baseline.pt.lock"
    lock.write_bytes(content)
    ten_s_ago = time.time() - 10
    os.utime(lock, (ten_s_ago, ten_s_ago))
    start = time.monotonic()
    with pytest.raises(RunLockedError) as info:
        RunLock(ckpt).acquire()
    message = str(info.value)
    assert time.monotonic() - start < 2 and "None" not in message and "\n" not in message
    assert str(lock) in message and "cannot be read" in message and "delete it" in message
    old = time.time() - run_safety.STALE_AFTER_S - 60  # untouched for the heartbeat window: stale
    os.utime(lock, (old, old))
    notes = []
    with RunLock(ckpt, log=notes.append):
        pass
    assert "cannot be read" in notes[0]


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    def no_space(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_safety.json, "dump", no_space)
    with pytest.raises(OSError) as info:
        RunLock(tmp_path / "baseline.pt").acquire()
    assert str(tmp_path / "baseline.pt.lock") in str(info.value)
    assert not (tmp_path / "baseline.pt.lock").exists()


def test_another_hosts_lock_names_the_heartbeat_window(tmp_path):
    lock = tmp_path / "baseline.pt.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "colab-vm"}))
    with pytest.raises(RunLockedError) as info:
        RunLock(tmp_path / "baseline.pt").acquire()
    assert "colab-vm" in str(info.value) and "every 30 s" in str(info.value)


# ------------------------------------------------------------------ SIGTERM
@POSIX
def test_the_step_guard_treats_sigterm_as_a_stop_at_the_step_end():
    with StepGuard() as guard:
        with pytest.raises(KeyboardInterrupt):
            with guard.shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                finished = True
        assert finished and guard.pending and guard.signal == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def ignore_sigint() -> None:
    """A background job: the shell started it with SIGINT ignored (so Ctrl-C cannot reach it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@POSIX
def test_sigterm_saves_a_checkpoint_that_resumes_also_in_a_background_job(photos, tmp_path):
    ck = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "colorlib", "train", "--data", str(photos),
                             "--checkpoint-dir", str(ck), "--epochs", "500", "--save-every", "3",
                             *BASE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=CHILD_ENV, preexec_fn=ignore_sigint)
    deadline = time.monotonic() + 240
    while not (ck / "baseline.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # a scheduler, Kaggle's stop, `kill PID`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    saved = load_checkpoint(ck / "baseline.pt")
    (line,) = error_lines(err)
    assert line == (f"colorlib: training stopped by SIGTERM at step {saved['step']} (epoch "
                    f"{saved['epoch'] + 1}, batch {saved['batch_in_epoch']}); saved a checkpoint "
                    f"there that resumes exactly: {ck / 'baseline.pt'} (continue with --resume)")
    assert not (ck / "baseline.pt.lock").exists()


# ------------------------------------------------------------------ exact resumes
@pytest.mark.slow
def test_resume_with_another_learning_rate_is_refused(photos, tmp_path):
    """Issue 20: --resume --lr-g 0.5 recorded the new lr but trained at the old one."""
    ck = tmp_path / "ck"
    assert cli("train", "--data", photos, "--checkpoint-dir", ck, "--max-steps", "1", *BASE)[0] == 0
    before = (ck / "baseline.pt").read_bytes()
    code, lines = cli("train", "--data", photos, "--checkpoint-dir", ck, "--max-steps", "2",
                      "--resume", "--lr-g", "0.5", *BASE)
    assert code == 2 and len(lines) == 1 and "--lr-g 0.5 (checkpoint: 0.0002)" in lines[0]
    assert (ck / "baseline.pt").read_bytes() == before
    # The same lr, said explicitly, is the same run.
    assert cli("train", "--data", photos, "--checkpoint-dir", ck, "--max-steps", "2", "--resume",
               "--lr-g", "0.0002", *BASE)[0] == 0


@pytest.mark.slow
def test_init_with_resume_is_refused_unless_it_is_the_runs_own(photos, tmp_path):
    """Issue 20: --init was ignored without a word when --resume found a checkpoint.
    benchmarks/long_run.py passes the same --init at every resume: that stays accepted."""
    a = resnet_checkpoint(tmp_path / "a" / "pretrain.pt")
    b = resnet_checkpoint(tmp_path / "b" / "pretrain.pt")
    ck = tmp_path / "ck"
    gan = ["--stage", "gan", "--data", photos, "--size", "32", "--batch-size", "2", "--device",
           "cpu", "--no-progress", "--checkpoint-dir", ck]
    assert cli("train", *gan, "--init", a, "--max-steps", "1")[0] == 0
    assert load_checkpoint(ck / "gan.pt")["run"]["init"] == str(a.resolve())
    code, lines = cli("train", *gan, "--init", b, "--max-steps", "2", "--resume")
    assert code == 2 and len(lines) == 1
    assert f"--init {b.resolve()} (checkpoint: {a.resolve()})" in lines[0]
    assert cli("train", *gan, "--init", a, "--max-steps", "2", "--resume")[0] == 0
    assert cli("train", *gan, "--max-steps", "3", "--resume")[0] == 0  # no --init: fine too


def test_init_is_compared_in_the_resume_check():
    from colorlib.data.sources import DataConfig
    from colorlib.training.config import RunConfig, TrainConfig
    from colorlib.training.run_safety import resume_mismatches

    run = RunConfig(TrainConfig(stage="gan"), DataConfig(source="tiny", size=32), "ck",
                    init="/x/other.pt", resume=True)
    ckpt = {"stage": "gan", "model": {"size": 32}, "train": {"seed": 0, "gan_mode": "vanilla", "lr_g": None},
            "run": {"data": "tiny", "batch_size": 16, "data_seed": 0, "init": "/x/pretrain.pt"}}
    assert resume_mismatches(ckpt, run) == [
        f"--init {Path('/x/other.pt').resolve()} (checkpoint: /x/pretrain.pt)"]
    ckpt["run"]["init"] = None  # a run started without --init
    assert resume_mismatches(ckpt, run)[0].endswith("(checkpoint: none)")
    run.train.lr_g = 1e-3
    assert "--lr-g 0.001 (checkpoint: 0.0002)" in resume_mismatches(ckpt, run)


# ------------------------------------------------------------------ notebooks
@pytest.mark.slow
def test_tiny_mode_never_replaces_a_real_checkpoint(tmp_path, monkeypatch):
    """Issue 20: with COLORLIB_TINY=1 and COLORLIB_CHECKPOINTS at real checkpoints,
    ensure_stage printed 'loaded' and then replaced the user's checkpoint with a tiny one."""
    real = resnet_checkpoint(tmp_path / "real" / "pretrain.pt", size=64,
                             run={"data": "/home/me/photos", "batch_size": 16, "data_seed": 0})
    before = real.read_bytes()
    s = nb.Settings.from_env({"COLORLIB_TINY": "1", "COLORLIB_CHECKPOINTS": str(real.parent)})
    with pytest.raises(CheckpointError) as info:
        nb.ensure_stage("pretrain", s)
    assert real.read_bytes() == before
    message = str(info.value)
    assert str(real) in message and "COLORLIB_CHECKPOINTS" in message and "\n" not in message


def test_a_full_run_says_when_a_checkpoint_has_another_size(tmp_path):
    """Issue 20: a tiny 64-px pretrain.pt on Drive was used for a 256-px run without a word."""
    small = resnet_checkpoint(tmp_path / "ck" / "pretrain.pt", size=64,
                              run={"data": "tiny", "batch_size": 8, "data_seed": 0})
    s = nb.Settings(size=256, checkpoints=small.parent)
    with pytest.raises(CheckpointError) as info:
        nb.ensure_stage("pretrain", s)
    message = str(info.value)
    assert "64 px" in message and "256 px" in message and "tiny" in message
    assert "COLORLIB_SIZE=64" in message and str(small) in message


def test_kaggle_never_prefers_a_damaged_checkpoint(tmp_path, monkeypatch, capsys):
    """Issue 20: of two attached checkpoints, the newer but truncated one was copied."""
    from robust_helpers import tiny_checkpoint

    monkeypatch.chdir(tmp_path)
    good = tiny_checkpoint(tmp_path / "input" / "v1" / "runs" / "checkpoints" / "gan.pt")
    bad = tmp_path / "input" / "v2" / "runs" / "checkpoints" / "gan.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    os.utime(good, (1_000_000, 1_000_000))  # the intact one is older
    nb.persist({"KAGGLE_KERNEL_RUN_TYPE": "Interactive",
                nb.KAGGLE_INPUT_ENV: str(tmp_path / "input")})
    assert (tmp_path / "runs" / "checkpoints" / "gan.pt").read_bytes() == good.read_bytes()
    out = capsys.readouterr().out
    assert f"{bad}" in out and "damaged" in out


# ------------------------------------------------------------------ more endings
@POSIX
def test_sigterm_outside_a_step_ends_the_command_in_one_line(tmp_path, monkeypatch):
    """Before training starts (loading data, say), SIGTERM ends the command like Ctrl-C: one
    line, exit 128 + 15, and the signal's default handling is back afterwards."""
    import colorlib.cli as cli_module

    def busy(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        pytest.fail("not reached")

    monkeypatch.setitem(cli_module.COMMANDS, "export", busy)
    code, lines = cli("export", tmp_path / "x.pt")
    assert code == 128 + signal.SIGTERM
    assert lines == ["colorlib: stopped by SIGTERM; nothing was written"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.skipif(not Path("/proc/sys/kernel/random/boot_id").exists(), reason="Linux boot id")
def test_a_lock_from_before_a_restart_is_taken_over(tmp_path):
    """The pid of a lock written before the machine restarted may belong to anyone now."""
    lock = tmp_path / "baseline.pt.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "boot": "an-earlier-boot"}))
    notes = []
    with RunLock(tmp_path / "baseline.pt", log=notes.append):
        assert json.loads(lock.read_text())["boot"] != "an-earlier-boot"
    assert "before this machine restarted" in notes[0]


def test_resume_keeps_the_runs_own_init_when_none_is_given(tmp_path):
    """A resume without --init must not erase the run's start from the checkpoint, or the
    next resume with the run's own --init would be refused."""
    from colorlib.data.sources import DataConfig
    from colorlib.training.config import RunConfig, TrainConfig
    from colorlib.training.run_safety import run_record

    run = RunConfig(TrainConfig(stage="gan"), DataConfig(source="tiny", size=32), "ck",
                    resume=True)
    assert run_record(run, resumed={"init": "/x/pretrain.pt"})["init"] == "/x/pretrain.pt"
    assert run_record(run)["init"] is None
    baseline = RunConfig(TrainConfig(stage="baseline"), DataConfig(source="tiny", size=32), "ck")
    assert "init" not in run_record(baseline)  # a stage that never starts from another


def test_resume_with_other_encoder_weights_is_refused(photos, tmp_path):
    """--weights matters only at a run's start; a resume that would ignore another is refused."""
    ck = tmp_path / "ck"
    resnet_checkpoint(ck / "pretrain.pt", run={"data": str(photos.resolve()), "batch_size": 4,
                                               "data_seed": 0})
    before = (ck / "pretrain.pt").read_bytes()
    code, lines = cli("train", "--stage", "pretrain", "--data", photos, "--size", "32",
                      "--checkpoint-dir", ck, "--resume", "--weights", "imagenet", "--device",
                      "cpu", "--no-progress")
    assert code == 2 and len(lines) == 1 and "--weights imagenet (checkpoint: none)" in lines[0]
    assert (ck / "pretrain.pt").read_bytes() == before


# ------------------------------------------------------------------ principle 4, as a table
def _recorded(stage: str) -> dict:
    """What a checkpoint of ``stage`` records when started with the defaults below."""
    from colorlib.models.stages import get_stage

    ckpt = {"stage": stage, "model": {"size": 32, "num_filters": 8},
            "train": {"seed": 0, "gan_mode": "vanilla", "lr_g": None, "rebalance": True},
            "run": {"data": "tiny", "batch_size": 4, "data_seed": 0}}
    if get_stage(stage).init_from is not None:
        ckpt["run"]["init"] = str(Path("/x/pretrain.pt").resolve())
    return ckpt


RESUME_CHANGES = {  # a setting a resume could silently ignore -> (stage, change, named as)
    "size": ("baseline", {"size": 64}, "--size 64 (checkpoint: 32)"),
    "filters": ("baseline", {"num_filters": 16}, "--filters 16 (checkpoint: 8)"),
    "seed": ("baseline", {"seed": 3}, "--seed 3 (checkpoint: 0)"),
    "gan mode": ("baseline", {"gan_mode": "hinge"}, "--gan-mode hinge (checkpoint: vanilla)"),
    "data": ("baseline", {"source": "coco"}, "--data coco (checkpoint: tiny)"),
    "batch": ("baseline", {"batch_size": 8}, "--batch-size 8 (checkpoint: 4)"),
    "lr": ("pretrain", {"lr_g": 5e-4}, "--lr-g 0.0005 (checkpoint: 0.0001)"),
    "init": ("gan", {"init": "/x/other.pt"},
             f"--init {Path('/x/other.pt').resolve()} (checkpoint: "
             f"{Path('/x/pretrain.pt').resolve()})"),
    "rebalance": ("classify", {"rebalance": False}, "--no-rebalance True (checkpoint: False)"),
}


def _run_with(stage: str, **change):
    from colorlib.data.sources import DataConfig
    from colorlib.training.config import RunConfig, TrainConfig

    train = {k: change.pop(k) for k in ("seed", "gan_mode", "lr_g", "rebalance") if k in change}
    data = {k: change.pop(k) for k in ("size", "source", "batch_size") if k in change}
    seed = train.setdefault("seed", 0)  # the CLI's --seed sets both, as here
    data = {"source": "tiny", "size": 32, "batch_size": 4, "seed": seed, **data}
    return RunConfig(TrainConfig(stage=stage, **train), DataConfig(**data), "ck", resume=True,
                     num_filters=change.pop("num_filters", 8), init=change.pop("init", None))


@pytest.mark.parametrize("name", list(RESUME_CHANGES))
def test_every_setting_a_resume_would_ignore_is_named(name):
    """Principle 4 for each setting, not only the issue's lr and --init: the unchanged run
    resumes; the changed one is named in words, as the flag a user typed."""
    from colorlib.training.run_safety import resume_mismatches

    stage, change, named = RESUME_CHANGES[name]
    assert resume_mismatches(_recorded(stage), _run_with(stage)) == []
    assert resume_mismatches(_recorded(stage), _run_with(stage, **change)) == [named]
