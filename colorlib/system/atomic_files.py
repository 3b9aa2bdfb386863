"""Writing files all at once or not at all (checkpoints, photos, reports, figures, uploads).

:func:`atomic_write` writes to a temporary file in the target's folder,
flushes it to the disk (``fsync``), gives it a normal file's mode and only
then renames it over the target. A crash, a full disk or a killed process
mid-write leaves the previous file exactly as it was.

The temporary name says whose it is: ``.<name>.<pid>-<host>-<random>.tmp``
(``<host>`` is a short hash of the machine's name), shortened so it fits the
file system's limit on a name (255 bytes on most). A later write clears only
debris whose writer is gone: a process of this machine that no longer
exists, or a file another machine has not touched for a day. So two runs
writing into one folder at once never delete each other's temporary files.

Not taught in a notebook (plumbing).
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

FOREIGN_TEMP_STALE_S = 24 * 3600  # another machine's temp file: debris once untouched this long
_TAG = re.compile(r"(\d+)-([0-9a-f]{8})-[0-9a-z_]+")


class WriteFailed(OSError):
    """An atomic write failed; the target is unchanged.

    ``in_folder`` is True when not even a temporary file could be created
    (missing or read-only folder), False when writing the file failed.
    ``str()`` names the file and the system's reason (``strerror``).
    """

    def __init__(self, err: OSError, in_folder: bool, path: str | os.PathLike | None = None):
        super().__init__(err.errno, err.strerror or str(err))
        self.in_folder = in_folder
        self.filename = None if path is None else str(path)

    def __str__(self) -> str:
        if self.filename is None:
            return self.strerror or super().__str__()
        path = Path(self.filename)
        if self.in_folder:
            return f"cannot write in {path.parent}: {self.strerror}"
        return (f"cannot write {path}: {self.strerror}; an earlier file of that name, if any, "
                "is unchanged")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no such folder yet, or not POSIX
        return 255


def _temp_prefix(path: Path, room: int) -> str:
    """``.<name>.`` shortened (by whole characters) so ``room`` more bytes still fit."""
    name, limit = path.name, _name_max(path.parent if path.parent.exists() else Path("."))
    while name and len(f".{name}.".encode()) + room > limit:
        name = name[:-1]
    return f".{name}."


_TAG_ROOM = len("4294967295-01234567-0123456789ab.tmp")  # the longest tag, and ".tmp"


def _owner(pid: int | None = None) -> str:
    return f"{os.getpid() if pid is None else pid}-{_host_tag()}-"


def temp_name(path: str | os.PathLike, pid: int | None = None) -> str:
    """The name of a temporary file for ``path``, written by process ``pid`` (default: this one)."""
    path = Path(path)
    return f"{_temp_prefix(path, _TAG_ROOM)}{_owner(pid)}{uuid.uuid4().hex[:12]}.tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None],
                 replace: bool = True) -> Path:
    """Call ``write(f)`` on a temporary binary file, then put it in place as ``path``.

    ``replace=False`` never replaces a file: if one appeared at ``path``
    while this one was written, :class:`FileExistsError` is raised and the
    other file is kept. Raises :class:`WriteFailed` (an ``OSError`` naming
    the file and the system's reason) if anything else goes wrong; ``path``
    is then untouched and no temporary file is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path, _TAG_ROOM) + _owner(),
                                   suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise WriteFailed(err, in_folder=True, path=path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        if replace:
            os.replace(tmp, path)
        else:
            _put_in_place_without_replacing(tmp, path)
    except FileExistsError:
        raise
    except OSError as err:
        raise WriteFailed(err, in_folder=False, path=path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    remove_stale_temp_files(path)
    return path


def _put_in_place_without_replacing(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # atomic, and fails if ``path`` exists
    except FileExistsError:
        raise FileExistsError(f"{path}: a file of that name appeared while this one was "
                              "written; kept it") from None
    except OSError:  # a file system without hard links (some network and FUSE drives)
        if os.path.lexists(path):
            raise FileExistsError(f"{path}: a file of that name appeared while this one was "
                                  "written; kept it") from None
        os.replace(tmp, path)


def _writer_gone(tmp: Path) -> bool:
    """Whether the process that wrote temp file ``tmp`` is gone (its file is debris)."""
    match = _TAG.fullmatch(tmp.name[:-len(".tmp")].rsplit(".", 1)[-1])
    if match is None:  # an older colorlib's name (no pid): debris, as it always was
        return True
    pid, host = int(match.group(1)), match.group(2)
    if host != _host_tag():
        try:
            return time.time() - tmp.stat().st_mtime > FOREIGN_TEMP_STALE_S
        except OSError:
            return False
    return not process_exists(pid)


def process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (of any user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:  # e.g. Windows without such a process
        return False
    return True


def remove_stale_temp_files(path: str | os.PathLike) -> None:
    """Delete temp files of ``path`` left by writes whose process is gone (SIGKILL, lost session).

    A temp file of a writer that is still running (another colorize into the
    same folder, a nested write of this process) is left alone.
    """
    path = Path(path)
    prefix = glob.escape(_temp_prefix(path, _TAG_ROOM))
    for stale in path.parent.glob(f"{prefix}*.tmp"):
        try:
            if _writer_gone(stale):
                stale.unlink()
        except OSError:
            pass  # debris never blocks a write or a resume; the next write tries again


def unreadable_reason(path: str | os.PathLike, err: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, in words a learner can act on.

    ``err`` is what it raised; the file's first bytes tell an empty, foreign
    or truncated file from pickled objects that ``weights_only=True`` refuses.
    Used for checkpoints (:mod:`colorlib.training.checkpoint`) and encoder weights
    (:func:`colorlib.models.networks.load_resnet18`) alike.
    """
    text = str(err).strip()
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as open_err:
        return f"cannot open it ({open_err.strerror or open_err})"
    if not head:
        return "the file is empty (0 bytes)"
    if head != b"PK" and head[:1] != b"\x80":  # zip (torch >= 1.6) or legacy pickle
        return "not a PyTorch checkpoint (the file holds something else)"
    if isinstance(err, EOFError) or "central directory" in text or "zip archive" in text:
        return "the file is truncated or damaged (an interrupted copy or download?)"
    if "Weights only load failed" in text:
        return ("it holds pickled Python objects, not plain weights; colorlib loads with "
                "weights_only=True and never runs code from a checkpoint")
    return f"cannot read it ({text.splitlines()[0][:160] if text else type(err).__name__})"
