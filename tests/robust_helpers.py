"""Odd, broken and tiny files for the robustness tests, all generated on the spot.

Nothing here comes from disk outside the test's own tmp folder: each file is
drawn with numpy/Pillow (or written byte by byte) so the tests run anywhere.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

UNICODE_NAME = "Grand-mère à Zürich 1952.jpg"  # spaces and non-ASCII letters


def gradient(h: int, w: int) -> np.ndarray:
    """A smooth, colourful HxWx3 uint8 picture (so colour conversions can be checked)."""
    y, x = np.mgrid[0:h, 0:w]
    r = x * 255 // max(w - 1, 1)
    g = y * 255 // max(h - 1, 1)
    b = (x + y) * 255 // max(h + w - 2, 1)
    return np.stack([r, g, b], -1).astype(np.uint8)


def make_odd_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Odd but valid images -> their displayed size (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = gradient(48, 64)
    sizes = {}

    def save(name, img, size=(64, 48), **kwargs):
        img.save(folder / name, **kwargs)
        sizes[name] = size

    save("grey.png", Image.fromarray(rgb).convert("L"))
    save("grey16.png", Image.fromarray(np.linspace(0, 65535, 48 * 64).reshape(48, 64)
                                       .astype(np.uint16)))
    save("palette.png", Image.fromarray(rgb).quantize(16), transparency=0)
    alpha = np.full((48, 64, 1), 128, np.uint8)
    save("rgba.png", Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA"))
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display
    save("rotated.jpg", Image.fromarray(rgb), size=(48, 64), exif=exif.tobytes())
    save("tiny7x13.png", Image.fromarray(gradient(13, 7)), size=(7, 13))
    save("panorama.jpg", Image.fromarray(gradient(100, 1200)), size=(1200, 100))
    grey = rgb.mean(-1)
    sepia = np.clip(np.stack([grey * 1.07, grey * 0.74, grey * 0.43], -1), 0, 255)
    save("sepia.jpg", Image.fromarray(sepia.astype(np.uint8)))
    save(UNICODE_NAME, Image.fromarray(rgb))
    return sizes


def blank_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of blank pixels: huge on screen, a few KB on disk."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def make_broken_images(folder: Path) -> dict[str, str]:
    """Broken image files -> a phrase the error for each must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(gradient(64, 64)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a shopping list, not a photo\n")
    # 20000 x 20000 = 400 Mpx: over twice Pillow's default limit, so even a
    # warning-only setting refuses it; the file itself is about 50 KB.
    blank_png(folder / "bomb.png", 20_000, 20_000)
    return {"truncated.jpg": "truncated", "empty.jpg": "empty",
            "notes.jpg": "not an image", "bomb.png": "too large"}


def make_training_photos(folder: Path, n: int = 10, side: int = 40) -> Path:
    """``n`` smooth colour pictures, different enough to train on for a few steps."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side] / (side - 1)
    for i in range(n):
        c = rng.uniform(0, 1, (3, 3))
        rgb = np.stack([c[k, 0] * x + c[k, 1] * y + c[k, 2] * (1 - x) for k in range(3)], -1)
        Image.fromarray((rgb / rgb.max() * 255).astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def tiny_checkpoint(path: Path) -> Path:
    """An untrained but complete baseline checkpoint (32 px, 8 filters): milliseconds."""
    from colorlib.models.networks import ModelConfig
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    cfg = ModelConfig(arch="pix2pix_unet", size=32, num_filters=8)
    return Trainer.build(cfg, TrainConfig(stage="baseline"), "cpu", weights=None).save(path)


def stage_run(stage: str, data, checkpoint_dir, **fields):
    """A ``RunConfig`` from flat keyword arguments: TrainConfig's fields go to ``.train``."""
    from dataclasses import fields as dataclass_fields

    from colorlib.training.config import RunConfig, TrainConfig

    ours = {f.name for f in dataclass_fields(TrainConfig)}
    train = TrainConfig(stage=stage, **{k: v for k, v in fields.items() if k in ours})
    return RunConfig(train, data, checkpoint_dir,
                     **{k: v for k, v in fields.items() if k not in ours})


# One thread per child: these networks are tiny, and on a busy 2-core machine
# OpenMP threads spin against each other (a 0.1 s training step takes 1-2 s).
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m colorlib ARGS`` in a fresh process, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "colorlib", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=CHILD_ENV)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch threads (see CHILD_ENV), then restore the setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cli_in_process(*args, forbidden: tuple[str, ...] = ("Traceback",)
                   ) -> tuple[int, list[str], str]:
    """``colorlib ARGS`` in this process: (exit status, the lines for the user, all of stderr).

    None of ``forbidden`` may appear on stderr (a traceback is never what a user should see).
    """
    from colorlib.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse
            code = exit_.code
    text = err.getvalue()
    for bad in forbidden:
        assert bad not in text, text
    return code, error_lines(text), text


def error_lines(stderr: str) -> list[str]:
    """The lines colorlib printed for the user (progress bars left out)."""
    return [line[line.index("colorlib: "):] for line in stderr.splitlines()
            if "colorlib: " in line]


def assert_same_state(a, b, where="checkpoint"):
    """Every tensor bitwise equal, every other value equal (wall-clock time aside)."""
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if key != "train_seconds":
                assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
