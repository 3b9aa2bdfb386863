"""Shared fixtures: small real photos and a folder of them, all from the tiny set."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


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
    from colorlib.tiny import build_tiny_set

    return build_tiny_set()


@pytest.fixture(scope="session")
def real_photos(tiny_root) -> list[np.ndarray]:
    """A few real colour photos (full size), as uint8 RGB arrays."""
    from colorlib.images import load_rgb

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
