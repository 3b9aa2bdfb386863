"""Let a CPU process reuse the memory it frees (glibc malloc settings, Linux only).

A training step on the CPU allocates and frees the same large activation
tensors every step (the ResNet18 U-Net's last block alone holds several
of 16 x 97 x 128 x 128 floats, about 100 MB each). glibc serves blocks
above its mmap threshold (never more than 32 MB unless set) straight from
the kernel with ``mmap`` and hands them back on ``free``, so every step
pays again for a page fault per 4 kB and for the kernel zeroing each fresh
page. Raising glibc's mmap and trim thresholds makes malloc keep those
pages and reuse them: CPU training and colorizing get markedly faster
(``benchmarks/RESULTS.md``, the ``*_vs_seed_malloc`` rows and "Other
measurements").

The price: the process keeps the memory of its largest step until it
exits, and the heap settles a little larger (also in RESULTS.md). Set
``COLORLIB_KEEP_FREED_MEMORY=0`` to leave malloc alone. The settings are
process-wide and stay in force, so only entry points apply them
(:meth:`colorlib.system.device.DevicePolicy.prepare_process`, called by the CLI,
``train_stage`` and the notebooks' settings), never a constructor.

Not taught in a notebook; README, section Speed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

_M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_LIMIT = 2**31 - 1  # largest value mallopt takes (an int): 2 GiB
_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Tell glibc to reuse freed large blocks; True if the settings are in force.

    Does nothing (returns False) off Linux/glibc, or when the environment
    variable ``COLORLIB_KEEP_FREED_MEMORY`` is ``0``. Safe to call often.
    """
    if "applied" not in _state:
        _state["applied"] = _apply()
    return _state["applied"]


def _apply() -> bool:
    from colorlib.system.environment_variables import flag

    if not flag("COLORLIB_KEEP_FREED_MEMORY", default=True):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # Order matters: a fixed mmap threshold switches off glibc's own
        # adjustment, which would otherwise keep the trim threshold low.
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _LIMIT)
                    and libc.mallopt(_M_TRIM_THRESHOLD, _LIMIT))
    except (OSError, AttributeError):
        return False
