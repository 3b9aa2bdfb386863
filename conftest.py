"""Test-session set-up shared by ``tests/`` and ``notebooks/``: caches go to a temporary folder.

Loaded by pytest before either folder's own ``conftest.py``, so every test and
every notebook kernel (which inherits the environment) writes its caches
into one fresh folder per session, never into the home directory: the tiny
data set (``COLORLIB_CACHE``), matplotlib's font cache, torch hub downloads,
fastai's config, IPython's profile and Jupyter's connection files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

CACHE_VARIABLES = {  # variable -> sub-folder of the session's cache folder
    "COLORLIB_CACHE": "colorlib",
    "XDG_CACHE_HOME": "xdg-cache",
    "MPLCONFIGDIR": "matplotlib",
    "TORCH_HOME": "torch",
    "FASTAI_HOME": "fastai",
    "IPYTHONDIR": "ipython",
    "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
}
_session_root: Path | None = None


def pytest_configure(config) -> None:
    global _session_root
    _session_root = Path(tempfile.mkdtemp(prefix="colorlib-test-caches-"))
    for variable, folder in CACHE_VARIABLES.items():
        (_session_root / folder).mkdir()
        os.environ[variable] = str(_session_root / folder)


def pytest_unconfigure(config) -> None:
    if _session_root is not None:
        shutil.rmtree(_session_root, ignore_errors=True)
