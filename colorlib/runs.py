"""What keeps a training run honest: one writer per checkpoint, exact resumes, a clean Ctrl-C.

* :class:`RunLock`: ``<checkpoint>.lock`` holds the writer's pid, host and
  start time, and is touched every :data:`HEARTBEAT_S` seconds. A second run
  on the same checkpoint is refused while the first lives. A lock left by a
  killed run is stale when its process no longer exists (same host), or when
  it has not been touched for :data:`STALE_AFTER_S` (any host: a lost Colab
  session's lock on Google Drive); a stale lock is taken over, with a note.
* :func:`resume_mismatches`: ``--resume`` is exact only with the settings
  the run started with (data, batch size, seed, GAN loss, stage, model);
  each difference is named, in one line.
* :class:`StepGuard`: Ctrl-C (or Colab's stop button, which sends the same
  signal) lets the step in progress finish, so :meth:`Trainer.fit
  <colorlib.train.Trainer.fit>` can save a checkpoint at a step boundary
  that resumes exactly; :class:`TrainingInterrupted` says what was kept.
  A second Ctrl-C stops at once, without saving. Data-parallel, the ranks
  agree at each step's end whether any of them had a Ctrl-C, and all stop
  there together.

Not taught in a notebook; the README's command-line section describes it.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


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
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": datetime.now().isoformat(timespec="seconds"),
                           "token": self.token}, f)
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name="colorlib-lock-heartbeat")
            self._beat.start()
            return self
        raise RunLockedError(f"{self.checkpoint}: cannot take its lock {self.path} (another "
                             "run keeps taking it); try again in a moment")

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
            holder["age"] = time.time() - self.path.stat().st_mtime
            return {**holder, "raw": raw} if isinstance(holder, dict) else None
        except FileNotFoundError:
            return {"pid": None, "host": None, "age": 0.0, "gone": True}
        except (OSError, ValueError, TypeError):
            try:  # unreadable: stale once old enough, else still being written
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                return None
            return {"pid": None, "host": None, "age": age, "raw": raw} if age > 2 else None

    def _stale(self, holder: dict) -> str | None:
        """Why ``holder``'s lock is stale, or None if its run may still be alive."""
        if holder.get("gone"):
            return "its lock was just removed"
        if holder["age"] > STALE_AFTER_S:
            return f"its lock was last touched {holder['age'] / 60:.0f} minutes ago"
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            if not _alive(holder["pid"]):
                return f"process {holder['pid']} on this machine no longer exists"
        return None

    def _refusal(self, holder: dict) -> str:
        who = f"process {holder.get('pid')} on {holder.get('host')}"
        since = f", started {holder['started']}" if holder.get("started") else ""
        return (f"{self.checkpoint}: another run is writing this checkpoint ({who}{since}; "
                f"lock {self.path}); wait for it to finish, or train into another "
                f"--checkpoint-dir. A lock whose run was killed on another machine counts as "
                f"stale {STALE_AFTER_S / 60:.0f} minutes after its last sign of life")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return True


# ------------------------------------------------------------ resume check
def data_source_id(source: str) -> str:
    """How a run's data source is recorded: tiny/coco as they are, a folder as an absolute path."""
    return source if source in ("tiny", "coco") else str(Path(source).resolve())


def run_record(run) -> dict:
    """What a checkpoint records about the data of a :class:`~colorlib.train.RunConfig`."""
    return {"data": data_source_id(run.data.source), "batch_size": run.data.batch_size,
            "data_seed": run.data.seed}


def resume_mismatches(ckpt: dict, run) -> list[str]:
    """Each setting of ``run`` that differs from the checkpoint's, as ``--flag NEW (checkpoint: OLD)``.

    Settings an older checkpoint does not record (the data source, the batch
    size) are not compared.
    """
    from .stages import get_stage

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
    record = ckpt.get("run", {})
    compare("--data", data_source_id(run.data.source), record.get("data"))
    compare("--batch-size", run.data.batch_size, record.get("batch_size"))
    return diffs


def check_resume(ckpt: dict, run, path) -> None:
    """Raise :class:`~colorlib.checkpoint.CheckpointError` naming every setting that would make
    ``--resume`` inexact."""
    from .checkpoint import CheckpointError

    diffs = resume_mismatches(ckpt, run)
    if diffs:
        raise CheckpointError(f"{path}: --resume continues a run exactly only with its own settings; "
                         f"this run differs: {', '.join(diffs)}. Rerun with the checkpoint's "
                         "settings, or start afresh with another --checkpoint-dir")


# ------------------------------------------------------------ Ctrl-C
class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; ``saved`` says whether a resumable checkpoint was written."""

    def __init__(self, checkpoint, step: int, epoch: int, batch: int, saved: bool,
                 last_saved: int | None = None, forced: bool = False):
        self.checkpoint, self.step, self.epoch, self.batch = checkpoint, step, epoch, batch
        self.saved, self.last_saved, self.forced = saved, last_saved, forced
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"step {self.step} (epoch {self.epoch + 1}, batch {self.batch})"
        if self.saved:
            return (f"training interrupted at {where}; saved a checkpoint there that resumes "
                    f"exactly: {self.checkpoint} (continue with --resume)")
        kept = (f"the checkpoint saved at step {self.last_saved} is kept"
                if self.last_saved is not None else "no checkpoint was written")
        if self.forced:
            return f"training stopped at once by a second Ctrl-C at {where}, unsaved; {kept}"
        return f"training interrupted at {where}, before any new step; {kept}"

    def __reduce__(self):
        return type(self), (self.checkpoint, self.step, self.epoch, self.batch, self.saved,
                            self.last_saved, self.forced)


class StepGuard:
    """Defers SIGINT while a step (or a save) is in progress; see the module notes.

    Outside :meth:`shielded` blocks a Ctrl-C raises KeyboardInterrupt at once
    (the loop is then between steps); inside, it is remembered and raised when
    the block ends. ``forced`` is set when a second Ctrl-C cut a block short.
    Does nothing off the main thread (signals go there only) or when disabled.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.pending = self.forced = False
        self._depth = 0
        self._previous = None

    def __enter__(self) -> "StepGuard":
        if self.enabled:
            self._previous = signal.getsignal(signal.SIGINT)
            if self._previous in (signal.SIG_IGN, None):  # ignored, or set outside Python
                self.enabled = False
            else:
                signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
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
