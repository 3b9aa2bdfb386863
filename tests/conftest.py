"""Shared fixtures: small real photos and a folder of them from the tiny set; one torch thread,
a tiny checkpoint and a few drawn photos for the command-line tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from robust_helpers import make_training_photos, tiny_checkpoint, torch_threads

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

# The fast lane (make test-fast: -m "not slow") stays fast only if every test that is not
# marked slow is light. Its weight is counted in CPU seconds (this process and the
# subprocesses it waited for), which a busy machine does not inflate the way it does wall
# time; the summary names each unmarked test over the limit, and the lane's total.
FAST_TEST_LIMIT_CPU_S = 3.0
_TESTS = Path(__file__).resolve().parent  # the lane is tests/ (notebooks are never in it)
_cpu_by_test: dict[str, float] = {}


def _cpu_seconds() -> float:
    try:
        import resource
    except ImportError:  # Windows: this process only
        import time

        return time.process_time()
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _cpu_seconds()
    yield
    if item.get_closest_marker("slow") is None and _TESTS in item.path.parents:
        _cpu_by_test[item.nodeid] = _cpu_seconds() - start


def pytest_terminal_summary(terminalreporter) -> None:
    if not _cpu_by_test:
        return
    heavy = sorted(((s, n) for n, s in _cpu_by_test.items() if s > FAST_TEST_LIMIT_CPU_S),
                   reverse=True)
    if heavy:
        terminalreporter.write_sep("-", f"tests over {FAST_TEST_LIMIT_CPU_S:g} CPU s without "
                                   "@pytest.mark.slow (they slow down make test-fast)")
        for seconds, nodeid in heavy:
            terminalreporter.write_line(f"{seconds:6.1f} CPU s  {nodeid}")
    terminalreporter.write_line(f"tests not marked slow: {len(_cpu_by_test)}, "
                                f"{sum(_cpu_by_test.values()):.0f} CPU s in all")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, saying why, where no CUDA GPU is available."""
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU (benchmarks/gpu_check.py runs these)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(no_gpu)


@pytest.fixture(scope="session")
def tiny_root() -> Path:
    from colorlib.photos.tiny_set import build_tiny_set

    return build_tiny_set()


@pytest.fixture(scope="session")
def real_photos(tiny_root) -> list[np.ndarray]:
    """A few real colour photos (full size), as uint8 RGB arrays."""
    from colorlib.photos.image_files import load_rgb

    return [load_rgb(p) for p in sorted((tiny_root / "photos").glob("*.png"))]


@pytest.fixture()
def photo_folder(tmp_path, tiny_root) -> Path:
    """A folder of 12 real training crops (train/) and 4 held-out ones (val/)."""
    for split, n in (("train", 12), ("val", 4)):
        dest = tmp_path / "photos" / split
        dest.mkdir(parents=True)
        for p in sorted((tiny_root / split).glob("*.png"))[::7][:n]:
            shutil.copy(p, dest / p.name)
    return tmp_path / "photos"


# ---------------------------------------------------- shared by the command-line tests
@pytest.fixture()
def one_thread():
    """One torch thread for the test: its networks are tiny, and on a busy 2-core machine two
    OpenMP threads spin against each other. Modules ask for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")`` (the child processes of
    ``robust_helpers.CHILD_ENV`` use one thread too)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """An untrained, complete baseline checkpoint (32 px, 8 filters), one per test module."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "baseline.pt")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six small training photos, one folder per test module (some modules want more)."""
    return make_training_photos(tmp_path_factory.mktemp("photos") / "all", n=6)
