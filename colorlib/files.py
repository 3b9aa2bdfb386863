"""Writing files all at once or not at all (checkpoints, colorized photos).

:func:`atomic_write` writes to a temporary file in the target's folder,
flushes it to the disk (``fsync``), gives it a normal file's mode and only
then renames it over the target. A crash, a full disk or a killed process
mid-write leaves the previous file exactly as it was; the next successful
write removes temporary files such interruptions left behind.

Not taught in a notebook (plumbing).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


class WriteFailed(OSError):
    """An atomic write failed; the target is unchanged.

    ``in_folder`` is True when not even a temporary file could be created
    (missing or read-only folder), False when writing the file failed.
    """

    def __init__(self, err: OSError, in_folder: bool):
        super().__init__(err.errno, err.strerror or str(err))
        self.in_folder = in_folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file, then put it in place as ``path``.

    Raises :class:`WriteFailed` (an ``OSError`` with the system's reason) if
    anything goes wrong; ``path`` is then untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise WriteFailed(err, in_folder=True) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, path)
    except OSError as err:
        raise WriteFailed(err, in_folder=False) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    remove_stale_temp_files(path)
    return path


def remove_stale_temp_files(path: str | os.PathLike) -> None:
    """Delete temp files of ``path`` left by writes that were killed (SIGKILL, lost session)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass  # debris never blocks a write or a resume; the next write tries again
