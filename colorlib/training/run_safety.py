"""What keeps a training run honest: one writer per checkpoint, exact resumes, a clean Ctrl-C.

* :class:`RunLock`: ``<checkpoint>.lock`` holds the writer's pid, host, boot
  and start time, and is touched every :data:`HEARTBEAT_S` seconds. A second
  run on the same checkpoint is refused while the first lives. A lock is
  taken over only from a run that is gone, with a note. On the same machine
  that is decided by the pid alone, however old the lock: a run suspended for
  an hour (laptop sleep, SIGSTOP) keeps it while its process exists (a lock
  from before a reboot is gone with it). A lock of another machine (a Colab
  session's lock on Google Drive) cannot be checked that way; it counts as
  gone once it has not been touched for :data:`STALE_AFTER_S` (ten missed
  heartbeats). A lock that cannot be read (empty or damaged, as a full disk
  leaves one) is refused with what it is and how to clear it, and counts as
  gone after the same window.
* :func:`resume_mismatches`: ``--resume`` is exact only with the settings
  the run started with (data, batch size, seed, GAN loss, stage, model,
  generator learning rate, ``--init``); each difference is named, in one
  line, and the resume is refused rather than silently ignoring it.
* :class:`StepGuard`: Ctrl-C (SIGINT: a terminal, Colab's stop button) and
  SIGTERM (a scheduler such as Slurm, Kaggle stopping a session, ``kill PID``)
  let the step in progress finish, so :meth:`Trainer.fit
  <colorlib.training.loop.Trainer.fit>` can save a checkpoint at a step boundary
  that resumes exactly; :class:`TrainingInterrupted` says what was kept and
  which signal stopped it. A second signal stops at once, without saving.
  A background job started by a shell ignores SIGINT (so Ctrl-C cannot reach
  it); SIGTERM (``kill PID``) stops it the same way. SIGKILL cannot be
  caught: it costs the steps since the last save (every epoch end, and every
  ``--save-every`` steps), never the checkpoint itself, which is written
  atomically. Data-parallel, the ranks agree at each step's end whether any
  of them had a signal, and all stop there together.

Not taught in a notebook; the README's command-line section describes it.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

from colorlib.system.atomic_files import process_exists

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0  # another machine's lock: gone once untouched this long
_BEING_WRITTEN_S = 2.0  # an unreadable lock younger than this is still being written


class RunLockedError(RuntimeError):
    """Another run is writing this checkpoint."""


class RunLock:
    """An exclusive, self-describing lock file for one checkpoint (see the module notes)."""

    def __init__(self, checkpoint: str | os.PathLike, log=print):
        self.checkpoint = Path(checkpoint)
        self.path = self.checkpoint.with_name(self.checkpoint.name + ".lock")
        self.log = log
        self.token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # being written this very moment
                    time.sleep(0.2)
                    continue
                why = self._stale(holder)
                if why is None:
                    raise RunLockedError(self._refusal(holder)) from None
                if not holder.get("gone"):
                    self.log(f"note: {self.checkpoint}: taking over the lock of an earlier run "
                             f"that is gone ({why})")
                    self._remove_stale(holder)
                continue
            self._write(fd)
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name="colorlib-lock-heartbeat")
            self._beat.start()
            return self
        raise RunLockedError(f"{self.checkpoint}: cannot take its lock {self.path} (another "
                             "run keeps taking it); try again in a moment")

    def _write(self, fd: int) -> None:
        """Fill the new lock file; if that fails (a full disk), remove it and say which file."""
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "boot": _boot_id(),
                           "started": datetime.now().isoformat(timespec="seconds"),
                           "token": self.token}, f)
        except OSError as err:
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise OSError(err.errno, f"cannot write the lock {self.path}: "
                          f"{err.strerror or err}") from None

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------ internals
    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def _remove_stale(self, holder: dict) -> None:
        """Remove the lock file judged stale, and only that one.

        Two runs may judge the same dead lock stale at once; the first takes it
        over with a fresh file at the same path, which the second must not
        delete. So the file is first moved aside (an atomic rename, also on
        Google Drive) and compared with what was judged; a rival's fresh lock
        is put back.
        """
        aside = self.path.with_name(f"{self.path.name}.{self.token.replace(':', '-')}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if holder.get("raw") is not None and aside.read_bytes() != holder["raw"]:
                try:
                    os.link(aside, self.path)  # fails if a third run has a lock there by now
                except FileExistsError:
                    pass
                except OSError:  # a file system without hard links
                    if not self.path.exists():
                        os.replace(aside, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                aside.unlink()

    def _holder(self) -> dict | None:
        raw = None
        try:
            raw = self.path.read_bytes()
            holder = json.loads(raw)
            if not isinstance(holder, dict):
                raise ValueError("not a JSON object")
            holder["age"] = time.time() - self.path.stat().st_mtime
            return {**holder, "raw": raw}
        except FileNotFoundError:
            return {"pid": None, "host": None, "age": 0.0, "gone": True}
        except (OSError, ValueError, TypeError):
            try:  # unreadable: refused, and stale once old enough; else still being written
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                return None
            if age <= _BEING_WRITTEN_S:
                return None
            return {"pid": None, "host": None, "age": age, "raw": raw, "unreadable": True}

    def _stale(self, holder: dict) -> str | None:
        """Why ``holder``'s lock is stale, or None if its run may still be alive."""
        minutes = f"{holder['age'] / 60:.0f} minutes ago"
        if holder.get("gone"):
            return "its lock was just removed"
        if holder.get("unreadable"):
            if holder["age"] > STALE_AFTER_S:
                return f"its lock cannot be read and was last touched {minutes}"
            return None
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int):
            boot = holder.get("boot")
            if boot and _boot_id() and boot != _boot_id():
                return f"its lock is from before this machine restarted (process {pid})"
            if not process_exists(pid):
                return f"process {pid} on this machine no longer exists"
            return None  # alive, however long it has been suspended
        if holder["age"] > STALE_AFTER_S:
            return f"its lock was last touched {minutes}"
        return None

    def _refusal(self, holder: dict) -> str:
        if holder.get("unreadable"):
            return (f"{self.path}: this checkpoint's lock file cannot be read (empty or damaged, "
                    "as a full disk or a crash mid-write leaves it), so whether another run is "
                    f"writing {self.checkpoint} is unknown; if none is, delete it and start "
                    f"again (it counts as stale {STALE_AFTER_S / 60:.0f} minutes after it was "
                    "last touched)")
        who = f"process {holder.get('pid')} on {holder.get('host')}"
        since = f", started {holder['started']}" if holder.get("started") else ""
        text = (f"{self.checkpoint}: another run is writing this checkpoint ({who}{since}; "
                f"lock {self.path}); wait for it to finish, or train into another "
                "--checkpoint-dir")
        if holder.get("host") == socket.gethostname():
            return text + " (that process exists on this machine, so its lock is kept)"
        return (text + f". A run on another machine touches its lock every {HEARTBEAT_S:.0f} s; "
                f"the lock counts as stale once untouched for {STALE_AFTER_S / 60:.0f} minutes "
                f"(last touched {holder['age']:.0f} s ago)")


def _boot_id() -> str | None:
    """This boot of the machine (Linux), so a lock from before a restart is known to be gone."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


# ------------------------------------------------------------ resume check
def data_source_id(source: str) -> str:
    """How a run's data source is recorded: tiny/coco as they are, a folder as an absolute path."""
    return source if source in ("tiny", "coco") else str(Path(source).resolve())


def run_record(run, resumed: dict | None = None) -> dict:
    """What a checkpoint records about the data and start of a :class:`~colorlib.training.config.RunConfig`.

    ``init`` (stages that start from another's checkpoint: gan) is the
    checkpoint the generator started from (absolute path, or None). A resumed
    run keeps the record it was started with (``resumed``): its start does not
    change by being continued.
    """
    from colorlib.models.stages import get_stage

    record = {"data": data_source_id(run.data.source), "batch_size": run.data.batch_size,
              "data_seed": run.data.seed}
    if get_stage(run.stage).init_from is not None or run.init is not None:  # the gan stage
        record["init"] = _init_id(run.init)
        if resumed is not None and "init" in resumed:
            record["init"] = resumed["init"]
    return record


def _init_id(init) -> str | None:
    return None if init is None else str(Path(init).resolve())


def resume_mismatches(ckpt: dict, run) -> list[str]:
    """Each setting of ``run`` that differs from the checkpoint's, as ``--flag NEW (checkpoint: OLD)``.

    Settings an older checkpoint does not record (the data source, the batch
    size, ``--init``) are not compared. The generator's learning rate is
    compared as used (the stage's default when not given), since Adam's state
    restored from the checkpoint would otherwise keep the old one silently.
    ``--init`` is compared only when given: a resume needs no starting point,
    but one that differs from the run's own would be ignored.
    """
    from colorlib.models.stages import get_stage

    diffs = []

    def compare(flag: str, now, then) -> None:
        if then is not None and now != then:
            diffs.append(f"{flag} {now} (checkpoint: {then})")

    compare("--stage", run.stage, ckpt.get("stage"))
    model = ckpt.get("model", {})
    compare("--size", run.data.size, model.get("size"))
    if get_stage(run.stage).arch == "pix2pix_unet":
        compare("--filters", run.num_filters, model.get("num_filters"))
    train = ckpt.get("train", {})
    compare("--seed", run.train.seed, train.get("seed"))
    if get_stage(run.stage).adversarial:
        compare("--gan-mode", run.train.gan_mode, train.get("gan_mode"))
    if get_stage(run.stage).classes and "rebalance" in train:  # the weights are the checkpoint's
        compare("--no-rebalance", not run.train.rebalance, not train["rebalance"])
    if train:
        then_lr = train.get("lr_g")
        if then_lr is None and ckpt.get("stage") == run.stage:  # the stage's default
            then_lr = get_stage(run.stage).lr_g
        if then_lr is not None and not math.isclose(run.train.generator_lr, then_lr,
                                                    rel_tol=1e-9):
            diffs.append(f"--lr-g {run.train.generator_lr:g} (checkpoint: {then_lr:g})")
    record = ckpt.get("run", {})
    compare("--data", data_source_id(run.data.source), record.get("data"))
    compare("--batch-size", run.data.batch_size, record.get("batch_size"))
    if run.init is not None and "init" in record:
        compare("--init", _init_id(run.init), record["init"] or "none")
    return diffs


def check_resume(ckpt: dict, run, path) -> None:
    """Raise :class:`~colorlib.training.checkpoint.CheckpointError` naming every setting that would make
    ``--resume`` inexact."""
    from colorlib.training.checkpoint import CheckpointError

    diffs = resume_mismatches(ckpt, run)
    if diffs:
        raise CheckpointError(f"{path}: --resume continues a run exactly only with its own settings; "
                         f"this run differs: {', '.join(diffs)}. Rerun with the checkpoint's "
                         "settings, or start afresh with another --checkpoint-dir")


# ------------------------------------------------------------ Ctrl-C and SIGTERM
class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM (``signal``); ``saved`` says whether a resumable
    checkpoint was written."""

    def __init__(self, checkpoint, step: int, epoch: int, batch: int, saved: bool,
                 last_saved: int | None = None, forced: bool = False, signal: str = "SIGINT"):
        self.checkpoint, self.step, self.epoch, self.batch = checkpoint, step, epoch, batch
        self.saved, self.last_saved, self.forced = saved, last_saved, forced
        self.signal = signal
        super().__init__(str(self))

    @property
    def exit_code(self) -> int:
        """What a shell expects of a process the signal ended: 128 + its number."""
        return 128 + int(getattr(signal, self.signal, signal.SIGINT))

    def __str__(self) -> str:
        where = f"step {self.step} (epoch {self.epoch + 1}, batch {self.batch})"
        how = "interrupted" if self.signal == "SIGINT" else f"stopped by {self.signal}"
        if self.saved:
            return (f"training {how} at {where}; saved a checkpoint there that resumes "
                    f"exactly: {self.checkpoint} (continue with --resume)")
        kept = (f"the checkpoint saved at step {self.last_saved} is kept"
                if self.last_saved is not None else "no checkpoint was written")
        if self.forced:
            second = "Ctrl-C" if self.signal == "SIGINT" else self.signal
            return f"training stopped at once by a second {second} at {where}, unsaved; {kept}"
        return f"training {how} at {where}, before any new step; {kept}"

    def __reduce__(self):
        return type(self), (self.checkpoint, self.step, self.epoch, self.batch, self.saved,
                            self.last_saved, self.forced, self.signal)


# The signals that ask a run to stop: Ctrl-C, and the polite stop of schedulers and `kill`.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM")
                     if hasattr(signal, name))


class StepGuard:
    """Defers Ctrl-C and SIGTERM while a step (or a save) is in progress; see the module notes.

    Outside :meth:`shielded` blocks a signal raises KeyboardInterrupt at once
    (the loop is then between steps); inside, it is remembered and raised when
    the block ends. ``signal`` names the first one (``"SIGINT"`` or
    ``"SIGTERM"``); ``forced`` is set when a second one cut a block short.
    A signal that is ignored (a background job's SIGINT) stays ignored. Does
    nothing off the main thread (signals go there only) or when disabled.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.pending = self.forced = False
        self.signal: str | None = None
        self._depth = 0
        self._previous: dict = {}

    def __enter__(self) -> "StepGuard":
        if self.enabled:
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                if previous in (signal.SIG_IGN, None):  # ignored, or set outside Python
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum).name
        if self._depth and not self.pending:
            self.pending = True  # finish the step first
            return
        if self._depth:
            self.forced = True
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielded(self, reraise: bool = True):
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if reraise and self.pending and not self._depth:
            raise KeyboardInterrupt
