"""Run every notebook as a test: ``pytest`` (or ``pytest notebooks/``) executes them with nbval.

pyproject's ``testpaths`` includes ``notebooks/``, so this file is loaded at
start-up and switches nbval on with the options the series needs, unless the
command line already chose nbval options:

* ``--nbval-lax``: run every cell and fail on errors, without comparing
  outputs (the committed notebooks have none: outputs are stripped);
* ``--nbval-current-env``: use this Python, not whatever kernel the notebook
  metadata names, so the tests run against the colorlib being tested;
* a per-cell timeout, so a hung cell fails instead of stalling CI.

The kernels inherit ``COLORLIB_TINY=1`` (the embedded tiny set, a few steps)
and fresh, per-session folders for checkpoints and figures, so a test run
never touches real checkpoints or the committed figures.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CELL_TIMEOUT_S = 600.0
NBVAL_DEFAULT_TIMEOUT = 2000.0  # nbval's own default, i.e. "not given on the command line"
WORK_KEY = pytest.StashKey[Path]()
OVERRIDES = ("COLORLIB_DATA", "COLORLIB_SIZE", "COLORLIB_EPOCHS", "COLORLIB_MAX_STEPS",
             "COLORLIB_BATCH_SIZE", "COLORLIB_DEVICE", "COLORLIB_STORE", "COLORLIB_DATA_CACHE")


def pytest_configure(config) -> None:
    opt = config.option
    if not hasattr(opt, "nbval_lax"):  # nbval not installed: notebooks are not collected
        return
    if not (opt.nbval or opt.nbval_lax):
        opt.nbval_lax = True
    if not opt.nbval_kernel_name:
        opt.nbval_current_env = True
    if opt.nbval_cell_timeout == NBVAL_DEFAULT_TIMEOUT:
        opt.nbval_cell_timeout = CELL_TIMEOUT_S
    work = Path(tempfile.mkdtemp(prefix="colorlib-nbtest-"))
    config.stash[WORK_KEY] = work
    os.environ["COLORLIB_TINY"] = "1"
    os.environ["COLORLIB_CHECKPOINTS"] = str(work / "checkpoints")
    os.environ["COLORLIB_FIGURES"] = str(work / "figures")
    for name in OVERRIDES:  # a developer's shell settings must not change the test run
        os.environ.pop(name, None)


def pytest_unconfigure(config) -> None:
    work = config.stash.get(WORK_KEY, None)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)  # tiny checkpoints: ~100 MB per session
