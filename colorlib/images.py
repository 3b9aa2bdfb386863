"""Reading and writing image files robustly.

Learners feed in scans, phone photos and old archive files. Every odd but
valid image (greyscale, 16-bit, palette, RGBA, CMYK, EXIF-rotated) becomes a
plain 8-bit RGB array here, with its displayed orientation; every broken
file becomes an :class:`ImageReadError` that names the file and the reason.
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class ImageReadError(ValueError):
    """An image file could not be read. The message names the file and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without losing what the eye sees."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit greyscale: scale by the actual bit depth instead of
        # letting Pillow clip everything above 255 to white.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            top = max(float(arr.max()), 1.0) if arr.max() > 1.0 else 1.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        # Composite on white: transparent regions of a scan are paper, not black.
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def load_rgb(path, max_side: int | None = None) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array in its displayed orientation.

    ``max_side`` lets JPEG decoding use Pillow's draft mode (DCT scaling), which
    decodes a large photo at 1/2, 1/4 or 1/8 size for a fraction of the cost
    when only a small version is needed; the result is at least ``max_side``
    on its short side, never smaller.

    Raises :class:`ImageReadError` naming the file for anything unreadable.
    """
    path = Path(path)
    with _reading(path), Image.open(path) as img:
        if max_side is not None and img.format == "JPEG":
            w, h = img.size
            scale = min(w, h) / max_side
            if scale >= 2:
                img.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
        img.load()
        img = ImageOps.exif_transpose(img)
        return np.asarray(to_rgb(img), dtype=np.uint8).copy()


def check_image(path) -> None:
    """Raise :class:`ImageReadError` if ``path`` is plainly not a readable image.

    Reads the header only (no pixels), so a folder of thousands of photos is
    checked in seconds: empty files, non-images and decompression bombs are
    named before training starts. Damaged pixel data (a truncated JPEG) only
    shows when the image is decoded, by :func:`load_rgb`.
    """
    path = Path(path)
    with _reading(path), Image.open(path):
        pass


@contextlib.contextmanager
def _reading(path: Path):
    """Turn every way of failing to read ``path`` into one :class:`ImageReadError`."""
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(path, _too_large_reason(err)) from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file Pillow can identify") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied (cannot open the file)") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot decode image, the file may be truncated or "
                             f"damaged ({err})") from None
    except (ValueError, SyntaxError, struct.error) as err:  # corrupt headers
        raise ImageReadError(path, f"corrupt image data ({err})") from None


def _too_large_reason(err: Exception) -> str:
    """Pillow's decompression-bomb message, restated with what to do about it."""
    match = re.search(r"\((\d+) pixels\)", str(err))
    pixels = f"{int(match.group(1)):,} pixels" if match else "too many pixels"
    return (f"image is too large to decode safely ({pixels}; Pillow's decompression-bomb "
            f"limit is {Image.MAX_IMAGE_PIXELS or 0:,}): shrink it first, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file")


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB array to ``size`` x ``size`` (bicubic, as the tutorial does)."""
    img = Image.fromarray(rgb)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.array(img, dtype=np.uint8)  # writable, so torch.from_numpy is safe


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def save_rgb(rgb: np.ndarray, path, note: str | None = None, overwrite: bool = False) -> Path:
    """Save float [0, 1] or uint8 RGB to ``path`` atomically.

    ``note`` is written into the file's metadata (a PNG text chunk, or the EXIF
    ImageDescription for JPEG/WebP/TIFF) so a colorized photo says what it is.
    An existing file is kept unless ``overwrite`` is true.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (use --overwrite to replace it)")
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    kwargs = {}
    ext = path.suffix.lower()
    if note:
        if ext == ".png":
            info = PngImagePlugin.PngInfo()
            info.add_text("Description", note)
            info.add_text("Software", "colorlib")
            kwargs["pnginfo"] = info
        elif ext in (".jpg", ".jpeg", ".webp", ".tif", ".tiff"):
            exif = Image.Exif()
            exif[0x010E] = note  # ImageDescription
            exif[0x0131] = "colorlib"  # Software
            kwargs["exif"] = exif.tobytes()
    if ext in (".jpg", ".jpeg"):
        kwargs["quality"] = 95
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"{path}: unsupported output extension {ext!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        img.save(tmp, format=fmt, **kwargs)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
