"""Reading, listing and writing image files robustly.

Learners feed in scans, phone photos and old archive files. Every odd but
valid image (greyscale, 16-bit, palette, RGBA, CMYK, EXIF-rotated, a TIFF in
any photometric interpretation) becomes a plain 8-bit **sRGB** array here,
in its displayed orientation and with the colours a colour-managed viewer
shows: an embedded ICC profile (a linear or gamma-1.8 grey scan, Adobe RGB,
Display P3) is converted to sRGB before anything computes Lab from it.
Every broken file becomes an :class:`ImageReadError` carrying the file and
the reason as separate fields.

Folder scans (:func:`scan_folder`, the one recursive listing in colorlib)
take every format this Pillow can open, name the plugin to install for
those it cannot (HEIC: ``pillow-heif``), skip hidden files and folders
(macOS ``._*`` sidecars, ``.thumbnails``) quietly, and leave out files that
colorlib itself wrote (recognised by the marker in their metadata), so
outputs saved inside an input folder are never read back as photos.

Used in notebooks 01 and 06; not taught in detail.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError

# Written into the Software field (PNG text chunk, EXIF 0x0131) of every file
# colorlib writes; a colorized output says so, which is how a later scan
# knows the file is a model's output and not a photo.
SOFTWARE_MARKER = "colorlib"
COLORIZED_MARKER = "colorlib (colorized)"
FIGURE_MARKER = "colorlib (figure)"  # plots: loss curves, comparisons, validation grids
_PROVENANCE_START = "Colorized automatically by colorlib"  # outputs of colorlib <= 0.1
_MARKED_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")

# colorlib's decompression-bomb guard. Today's phones take 50-200 MP photos, which colorlib
# colorizes in strips (colorlib/inference/colorizer.py; the memory that takes is in
# benchmarks/RESULTS.md, "Other measurements"), so Pillow's own
# limit (89 MP, refusing outright at 179 MP) is replaced by this one; a header
# claiming more is refused before any pixel is decoded. Raise it per run with
# ``--max-megapixels`` or ``$COLORLIB_MAX_MEGAPIXELS``.
MAX_PIXELS = 250_000_000
MAX_PIXELS_ENV = "COLORLIB_MAX_MEGAPIXELS"

# Formats Pillow cannot open without a plugin (or at all), and what to do.
_HEIF = ("HEIC/HEIF photos need the pillow-heif plugin: pip install pillow-heif "
         "(colorlib registers it automatically)")
PLUGIN_HINTS = {
    ".heic": _HEIF, ".heif": _HEIF, ".hif": _HEIF,
    ".avif": "AVIF photos need the pillow-avif-plugin (pip install pillow-avif-plugin) "
             "or Pillow >= 11.3",
    ".jxl": "JPEG XL photos need the pillow-jxl-plugin: pip install pillow-jxl-plugin",
}
_RAW = ("camera RAW files must be developed first: export them as TIFF or JPEG from your "
        "photo software (or with the rawpy package)")
PLUGIN_HINTS.update({ext: _RAW for ext in (
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
    ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".rwl")})
# Folders that hold no photos of the user's: zip debris, NAS thumbnails.
_SKIPPED_FOLDERS = {"__MACOSX", "@eaDir"}


class ImageReadError(ValueError):
    """An image file could not be read: ``path`` and ``reason`` are kept apart.

    ``str(err)`` is ``"<path>: <reason>"`` for people; code reads the fields
    (a file may well be called ``photo: 1952.jpg``). Survives pickling, so it
    crosses from DataLoader worker processes intact.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(self.path, self.reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self):
        return type(self), (self.path, self.reason)


class ImageTooLargeError(ImageReadError):
    """The header claims more pixels than colorlib's limit (``pixels``, ``limit``)."""

    def __init__(self, path, pixels: int, limit: int):
        self.pixels, self.limit = int(pixels), int(limit)
        super().__init__(path, f"image is too large to decode safely ({self.pixels:,} pixels, "
                         f"over colorlib's limit of {self.limit:,}): shrink it first, or raise "
                         f"the limit with --max-megapixels or {MAX_PIXELS_ENV} if you trust "
                         "the file")

    def __reduce__(self):
        return type(self), (self.path, self.pixels, self.limit)


class ColorlibWarning(UserWarning):
    """A warning meant for the user as one plain line (the CLI prints it so)."""

    failed = False  # True: something the user asked for was not done (exit status 1)


class SkippedImageWarning(ColorlibWarning):
    """One file (or a group of files of one kind) left out of a run, and why.

    ``paths`` and ``reason`` are fields; ``failed`` says whether the files
    were meant to be used (unreadable, needs a plugin) or were left out on
    purpose (colorlib's own outputs).
    """

    def __init__(self, paths, reason: str, failed: bool = True, what: str = "unreadable image"):
        self.paths = [str(p) for p in ([paths] if isinstance(paths, (str, os.PathLike))
                                       else paths)]
        self.reason, self.failed, self.what = reason, failed, what
        if len(self.paths) == 1:
            text = f"skipping {what} {self.paths[0]}: {reason}"
        else:
            text = f"skipping {len(self.paths)} files (e.g. {self.paths[0]}): {reason}"
        super().__init__(text)

    @classmethod
    def from_error(cls, err: ImageReadError) -> "SkippedImageWarning":
        return cls(err.path, err.reason)

    def __reduce__(self):
        return _rebuild_skipped, (self.paths, self.reason, self.failed, self.what)


def _rebuild_skipped(paths, reason, failed, what):
    return SkippedImageWarning(paths, reason, failed, what)


class ColourProfileWarning(ColorlibWarning):
    """An embedded colour profile could not be used; the pixels were read as sRGB."""


class MultiFrameWarning(ColorlibWarning):
    """A multi-page TIFF or an animated GIF/PNG/WebP: colorlib read its first page or frame."""


# ------------------------------------------------------------------ plugins
_plugins_done = False


def register_plugins() -> list[str]:
    """Register the optional Pillow plugins that are installed (HEIF, AVIF, JPEG XL)."""
    global _plugins_done
    found = []
    if _plugins_done:
        return found
    _plugins_done = True
    for module, register in (("pillow_heif", "register_heif_opener"), ("pillow_avif", None),
                             ("pillow_jxl", None)):
        try:
            mod = __import__(module)
            if register:
                getattr(mod, register)()
            found.append(module)
        except Exception:  # noqa: BLE001 - an absent or broken plugin is just absent
            continue
    readable_extensions.cache_clear()
    return found


@functools.lru_cache(maxsize=1)
def readable_extensions() -> frozenset[str]:
    """File name endings of every format this Pillow (with its plugins) can open and decode.

    Formats Pillow only recognises but cannot decode here (stubs without a
    handler such as MPEG or GRIB, EPS without Ghostscript, Windows metafiles
    off Windows) are left out, so a video in a photo folder is not an error.
    """
    from PIL import EpsImagePlugin, ImageFile

    Image.init()
    exts = set()
    for ext, fmt in Image.registered_extensions().items():
        if fmt not in Image.OPEN:
            continue
        factory = Image.OPEN[fmt][0]
        if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
            continue
        if fmt == "EPS" and not EpsImagePlugin.has_ghostscript():
            continue
        exts.add(ext.lower())
    if "JPEG" in Image.OPEN:
        exts.add(".mpo")  # multi-picture JPEG (phones' portrait/3D shots): Pillow's JPEG opener
    return frozenset(exts)


def is_image_file(path) -> bool:
    """True if ``path``'s name ends like a format Pillow can read here."""
    register_plugins()
    return Path(path).suffix.lower() in readable_extensions()


def missing_plugin_hint(path) -> str | None:
    """What to install (or do) to read ``path``, if its format needs something Pillow lacks."""
    register_plugins()
    ext = Path(path).suffix.lower()
    if ext in readable_extensions():
        return None
    return PLUGIN_HINTS.get(ext)


# ------------------------------------------------------------------ listing
def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_FOLDERS


def is_colorlib_output(path) -> bool:
    """True if ``path`` is a colorization or a figure colorlib wrote (its Software field says so).

    Reads the header only. The marker travels with the file when it is
    copied, moved or renamed, unlike a list kept beside it or a naming
    convention a user's own file could follow; a file re-saved by an editor
    usually loses it, and is then the user's file.
    """
    path = Path(path)
    if path.suffix.lower() not in _MARKED_SUFFIXES:
        return False
    try:
        with warnings.catch_warnings(), _pixel_limit_lifted(), Image.open(path) as img:
            warnings.simplefilter("ignore")
            software, note = img.info.get("Software"), img.info.get("Description")
            if software is None:
                exif = img.getexif()
                software, note = exif.get(0x0131), exif.get(0x010E)
    except Exception:  # noqa: BLE001 - unreadable: not ours; reading it will say why
        return False
    if not isinstance(software, str) or not software.startswith(SOFTWARE_MARKER):
        return False
    return software.strip() in (COLORIZED_MARKER, FIGURE_MARKER) or (
        isinstance(note, str) and note.startswith(_PROVENANCE_START))


def software_of(path) -> str | None:
    """The Software field of an image (a PNG text chunk or EXIF): who wrote it, or None.

    Reads the header only.
    """
    try:
        with warnings.catch_warnings(), _pixel_limit_lifted(), Image.open(path) as img:
            warnings.simplefilter("ignore")
            software = img.info.get("Software")
            if software is None:
                software = img.getexif().get(0x0131)
            if software is None and isinstance(img.info.get("comment"), bytes):  # a GIF's
                software = img.info["comment"].decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - unreadable: nobody we know
        return None
    return software.strip() if isinstance(software, str) else None


@dataclass
class FolderScan:
    """What :func:`scan_folder` found below one folder.

    ``images``: readable image files, sorted; ``unsupported``: hint ->
    files whose format needs a plugin or conversion; ``outputs``: files
    colorlib wrote, left out; ``hidden``: how many hidden files were
    skipped (quietly).
    """

    root: Path
    images: list[Path] = field(default_factory=list)
    unsupported: dict[str, list[Path]] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    hidden: int = 0

    def notices(self) -> list[SkippedImageWarning]:
        """One warning per kind of file left out (not per file: a phone library has thousands)."""
        out = [SkippedImageWarning(paths, hint, what="file") for hint, paths in
               self.unsupported.items()]
        if self.outputs:
            out.append(SkippedImageWarning(
                self.outputs, "written by colorlib (a model's colours, not a photo's)",
                failed=False, what="colorlib output"))
        return out


def scan_folder(folder: str | os.PathLike, exclude: tuple = (),
                skip_outputs: bool = True) -> FolderScan:
    """Every image file below ``folder`` (recursive, sorted), the one listing colorlib uses.

    Hidden files and folders (names starting with a dot, such as macOS
    ``._*`` sidecars, plus ``__MACOSX`` and ``@eaDir``) are skipped without a
    word; symbolic links to folders are not followed (no loops); folders in
    ``exclude`` (e.g. the output folder of this very run) are not entered;
    with ``skip_outputs`` files colorlib wrote are set aside in ``outputs``.
    """
    register_plugins()
    root = Path(folder)
    scan = FolderScan(root)
    excluded = {Path(p).resolve() for p in exclude}
    readable = readable_extensions()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if _hidden(d):
                scan.hidden += 1
            elif not excluded or (here / d).resolve() not in excluded:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            if _hidden(name):
                scan.hidden += 1
                continue
            ext = path.suffix.lower()
            if ext in readable:
                if skip_outputs and is_colorlib_output(path):
                    scan.outputs.append(path)
                else:
                    scan.images.append(path)
            elif ext in PLUGIN_HINTS:
                scan.unsupported.setdefault(PLUGIN_HINTS[ext], []).append(path)
    scan.images.sort()
    return scan


# ------------------------------------------------------------------ reading
def max_pixels_setting() -> int:
    """colorlib's pixel limit: ``$COLORLIB_MAX_MEGAPIXELS`` if set, else :data:`MAX_PIXELS`."""
    from colorlib.system.environment_variables import number

    value = number(MAX_PIXELS_ENV, strict=True)
    return MAX_PIXELS if value is None else int(value * 1_000_000)


_limit_lock = threading.RLock()
_limit_depth = [0, None]


@contextlib.contextmanager
def _pixel_limit_lifted():
    """Switch Pillow's own decompression-bomb check off while colorlib applies its own."""
    with _limit_lock:
        if _limit_depth[0] == 0:
            _limit_depth[1] = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _limit_depth[0] += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_depth[0] -= 1
            if _limit_depth[0] == 0:
                Image.MAX_IMAGE_PIXELS = _limit_depth[1]


@contextlib.contextmanager
def _open(path: Path, max_pixels: int | None):
    """``Image.open(path)`` under colorlib's pixel limit; every failure an ImageReadError."""
    register_plugins()
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    limit = max_pixels_setting() if max_pixels is None else int(max_pixels)
    try:
        with _pixel_limit_lifted():
            img = Image.open(path)
        with img:
            w, h = img.size
            if limit and w * h > limit:
                raise ImageTooLargeError(path, w * h, limit)
            with _pixel_limit_lifted():
                yield img
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        hint = missing_plugin_hint(path)
        raise ImageReadError(path, hint or "not an image file Pillow can identify") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied (cannot open the file)") from None
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode it") from None
    except OSError as err:
        raise ImageReadError(path, "cannot decode image, the file may be truncated or "
                             f"damaged ({err})") from None
    except (ValueError, SyntaxError, struct.error, IndexError) as err:  # corrupt headers
        raise ImageReadError(path, f"corrupt image data ({err})") from None


def load_rgb(path, max_side: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 sRGB array in its displayed orientation.

    An embedded ICC profile is converted to sRGB (see :func:`to_rgb`).
    ``max_side`` lets JPEG decoding use Pillow's draft mode (DCT scaling), which
    decodes a large photo at 1/2, 1/4 or 1/8 size for a fraction of the cost
    when only a small version is needed; the result is at least ``max_side``
    on its short side, never smaller. ``max_pixels`` overrides colorlib's
    decompression-bomb limit (:func:`max_pixels_setting`; 0: no limit).

    Raises :class:`ImageReadError` naming the file for anything unreadable.
    """
    path = Path(path)
    with _open(path, max_pixels) as img:
        if max_side is not None and img.format == "JPEG":
            w, h = img.size
            scale = min(w, h) / max_side
            if scale >= 2:
                img.draft(img.mode, (max(1, int(w / scale)), max(1, int(h / scale))))
        _say_if_multi_frame(img, path)
        img.load()
        photometric = _photometric(img)
        if img.getexif().get(0x0112, 1) != 1:  # rotated or mirrored for display
            img = ImageOps.exif_transpose(img)
        return _array(to_rgb(img, name=str(path), photometric=photometric))


def _say_if_multi_frame(img: Image.Image, path: Path) -> None:
    """Warn (:class:`MultiFrameWarning`) that only the first page or frame of ``img`` is used.

    A phone's multi-picture JPEG (MPO: the photo, then a depth map or a
    preview) is not warned about: its first picture is the photo.
    """
    frames = getattr(img, "n_frames", 1)
    if frames > 1 and img.format != "MPO":
        unit = "pages" if img.format == "TIFF" else "frames"
        warnings.warn(MultiFrameWarning(f"{path}: has {frames} {unit}; colorlib used the first "
                                        f"(save the others as separate files to colorize them)"),
                      stacklevel=3)


def check_image(path, max_pixels: int | None = None) -> None:
    """Raise :class:`ImageReadError` if ``path`` is plainly not a readable image.

    Reads the header only (no pixels), so a folder of thousands of photos is
    checked quickly: empty files, non-images and decompression bombs are
    named before training starts. Damaged pixel data (a truncated JPEG) only
    shows when the image is decoded, by :func:`load_rgb`.
    """
    with _open(Path(path), max_pixels):
        pass


def _array(img: Image.Image) -> np.ndarray:
    """A writable uint8 array of an RGB image, with one copy of the pixels, not two."""
    out = np.empty((img.height, img.width, 3), np.uint8)
    out[...] = np.asarray(img)
    return out


# ------------------------------------------------------------------ colour
@functools.lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    """LittleCMS's built-in sRGB profile: what colorlib computes in, and what outputs carry."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.lru_cache(maxsize=1)
def srgb_icc_bytes() -> bytes:
    """The ICC bytes every colorlib output embeds (sRGB), so viewers show it as computed."""
    return srgb_profile().tobytes()


_PROFILE_SPACE = {"GRAY": "L", "RGB": "RGB", "CMYK": "CMYK", "LAB": "LAB"}


@functools.lru_cache(maxsize=32)
def _transform_for(icc: bytes, mode: str):
    """A cached conversion from an embedded profile to sRGB (one per profile in a library).

    RGB and CMYK: a LittleCMS transform (its optimised 8-bit tables are
    within one level of the exact result). Grey: a 256-entry table computed
    without LittleCMS's optimisation, which is up to 10 levels off in the
    shadows of a linear profile; the table then costs nothing per pixel.
    """
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    space = profile.profile.xcolor_space.strip().upper()
    if _PROFILE_SPACE.get(space) != mode:
        raise ValueError(f"it describes {space} data but the pixels are {mode}")
    intent = ImageCms.Intent.RELATIVE_COLORIMETRIC
    if mode != "L":
        return ImageCms.buildTransform(profile, srgb_profile(), mode, "RGB",
                                       renderingIntent=intent)
    exact = ImageCms.buildTransform(profile, srgb_profile(), "L", "RGB", renderingIntent=intent,
                                    flags=ImageCms.Flags.NOOPTIMIZE)
    ramp = Image.fromarray(np.arange(256, dtype=np.uint8)[None])
    return np.asarray(ImageCms.applyTransform(ramp, exact))[0].copy()  # 256 x 3


def _apply_profile(img: Image.Image, icc: bytes) -> Image.Image:
    conversion = _transform_for(icc, img.mode)
    if isinstance(conversion, np.ndarray):  # grey: a lookup table
        return Image.fromarray(conversion[np.asarray(img)], "RGB")
    return ImageCms.applyTransform(img, conversion)


@functools.lru_cache(maxsize=1)
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), srgb_profile(), "LAB", "RGB",
                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)


def _high_bit_to_l(img: Image.Image, invert: bool) -> Image.Image:
    """16-bit / 32-bit greyscale to 8-bit L, scaled by the actual bit depth (not clipped)."""
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
    if img.mode == "F":
        top = max(float(arr.max()), 1.0) if arr.max() > 1.0 else 1.0
    arr = np.clip(arr / top, 0.0, 1.0)
    if invert:  # TIFF MinIsWhite: 0 is white
        arr = 1.0 - arr
    return Image.fromarray((arr * 255.0 + 0.5).astype(np.uint8), "L")


def _photometric(img: Image.Image) -> int | None:
    """A TIFF's PhotometricInterpretation tag (None for other formats)."""
    tags = getattr(img, "tag_v2", None)
    return tags.get(262) if tags is not None else None


def to_rgb(img: Image.Image, name: str = "image", photometric: int | None = None) -> Image.Image:
    """Convert any Pillow image to 8-bit sRGB as a colour-managed viewer would show it.

    * an embedded ICC profile (``img.info["icc_profile"]``: grey, RGB, CMYK)
      is converted to sRGB with LittleCMS (relative colorimetric), so a
      gamma-1.8 or linear grey scan, an Adobe RGB or a Display P3 photo has
      the lightness and colours it is meant to have;
    * TIFF photometric interpretations: MinIsWhite at any bit depth, CIELab
      (through LittleCMS), separated (CMYK), palette;
    * without a profile, a PNG's ``gAMA`` chunk (a linear or gamma-1.8 scan)
      and a camera's EXIF Adobe RGB marker are honoured too
      (:func:`_stated_encoding`);
    * 16/32-bit greyscale is scaled by its bit depth; transparency is
      composited on white (transparent regions of a scan are paper).

    A profile that cannot be used (damaged, or for other data than the
    pixels) is reported with a :class:`ColourProfileWarning` naming ``name``,
    and the pixels are read as sRGB.
    """
    icc = img.info.get("icc_profile") or None
    if photometric is None:
        photometric = _photometric(img)
    if img.mode == "LAB":
        return ImageCms.applyTransform(img, _lab_to_srgb())
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _high_bit_to_l(img, invert=photometric == 0)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        # Composite on white: transparent regions of a scan are paper, not black.
        grey = img.mode in ("LA", "La")
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("L" if grey else "RGB")
    if img.mode == "1":
        img = img.convert("L")
    if img.mode not in ("L", "RGB", "CMYK"):
        img = img.convert("RGB")
    if icc:
        try:
            return _apply_profile(img, bytes(icc))
        except (ValueError, TypeError, OSError, ImageCms.PyCMSError) as err:
            warnings.warn(ColourProfileWarning(
                f"{name}: its embedded colour profile cannot be used ({err}); "
                "read as sRGB"), stacklevel=2)
    elif img.mode in ("L", "RGB"):
        stated = _stated_encoding(img)
        if stated is not None:
            return _to_srgb(img, *stated)
    return img if img.mode == "RGB" else img.convert("RGB")


# Adobe RGB (1998) -> XYZ, from Adobe's specification. Its white point is D65, like sRGB's,
# so XYZ -> linear sRGB (colorlib.photos.lab's matrix) follows without adaptation.
_ADOBE_RGB_TO_XYZ = np.array([[0.5767309, 0.1855540, 0.1881852],
                              [0.2973769, 0.6273491, 0.0752741],
                              [0.0270343, 0.0706872, 0.9911085]])
_ADOBE_RGB_GAMMA = 563 / 256
_EXIF_IFD, _INTEROP_IFD, _COLOR_SPACE = 0x8769, 0xA005, 0xA001


def _stated_encoding(img: Image.Image) -> tuple[float, np.ndarray | None] | None:
    """``(decoding exponent, RGB -> XYZ matrix or None)`` a file states without an ICC profile.

    * A PNG ``gAMA`` chunk (without an ``sRGB`` chunk, which overrides it):
      ``sample = light ** gamma``; 1/2.2 is taken as sRGB as viewers do, but
      a linear (1.0) or Mac-era (1/1.8) scan is converted.
    * EXIF ColorSpace "uncalibrated" with the DCF interoperability index
      ``R03`` (or the value 2 some cameras write): a camera set to Adobe RGB
      that embeds no profile.

    None: nothing stated beyond sRGB.
    """
    gamma = img.info.get("gamma")
    if "srgb" not in img.info and isinstance(gamma, (int, float)) and gamma > 0 \
            and abs(gamma * 2.2 - 1) > 0.05:
        return 1.0 / gamma, None
    if img.mode == "RGB":
        try:
            exif = img.getexif()
            space = exif.get_ifd(_EXIF_IFD).get(_COLOR_SPACE)
            adobe = space == 2 or (space == 0xFFFF and str(
                exif.get_ifd(_INTEROP_IFD).get(1, "")).strip("\x00 ") == "R03")
        except Exception:  # noqa: BLE001 - damaged EXIF states nothing usable
            adobe = False
        if adobe:
            return _ADOBE_RGB_GAMMA, _ADOBE_RGB_TO_XYZ
    return None


def _to_srgb(img: Image.Image, exponent: float, to_xyz: np.ndarray | None) -> Image.Image:
    """Decode to linear light, change primaries if given (via XYZ), re-encode as 8-bit sRGB."""
    from colorlib.photos.lab import _XYZ_FROM_RGB, linear_to_srgb

    def encode(linear: np.ndarray) -> np.ndarray:
        return np.round(np.clip(linear_to_srgb(linear), 0.0, 1.0) * 255.0).astype(np.uint8)

    linear_of = ((np.arange(256) / 255.0) ** exponent).astype(np.float32)  # 256 levels
    if to_xyz is None:
        return img.point(encode(linear_of).tolist() * len(img.getbands())).convert("RGB")
    matrix = (np.linalg.inv(_XYZ_FROM_RGB) @ to_xyz).T.astype(np.float32)
    pixels = np.asarray(img)
    out = np.empty_like(pixels)
    for top in range(0, pixels.shape[0], 512):  # in bands of rows: a 48 MP photo stays small
        out[top:top + 512] = encode(np.clip(linear_of[pixels[top:top + 512]] @ matrix, 0.0, 1.0))
    return Image.fromarray(out, "RGB")


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB array to ``size`` x ``size`` (bicubic, as the tutorial does)."""
    img = Image.fromarray(rgb)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.array(img, dtype=np.uint8)  # writable, so torch.from_numpy is safe


# ------------------------------------------------------------------ writing
def save_rgb(rgb: np.ndarray, path, note: str | None = None, overwrite: bool = False,
             colorized: bool | None = None) -> Path:
    """Save float [0, 1] or uint8 sRGB to ``path`` atomically, marked as colorlib's.

    The file embeds the sRGB ICC profile (the values are sRGB; a
    colour-managed viewer then shows exactly what was computed). A
    colorization (``colorized``; by default, a file saved with a provenance
    ``note``) also gets the Software field ``colorlib (colorized)`` (a PNG
    text chunk, or EXIF for JPEG/WebP/TIFF), which :func:`is_colorlib_output`
    reads back; ``note`` goes into the description. An existing file is kept
    unless ``overwrite`` is true.
    """
    colorized = note is not None if colorized is None else colorized
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists")
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    kwargs = {"icc_profile": srgb_icc_bytes()}
    ext = path.suffix.lower()
    if ext == ".png":
        info = PngImagePlugin.PngInfo()
        if note:
            info.add_text("Description", note)
        if colorized:
            info.add_text("Software", COLORIZED_MARKER)
        kwargs["pnginfo"] = info
    elif ext in (".jpg", ".jpeg", ".webp", ".tif", ".tiff"):
        exif = Image.Exif()
        if note:
            exif[0x010E] = note  # ImageDescription
        if colorized:
            exif[0x0131] = COLORIZED_MARKER  # Software
        kwargs["exif"] = exif.tobytes()
    if ext in (".jpg", ".jpeg"):
        kwargs["quality"] = 95
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"{path}: unsupported output extension {ext!r}")
    from colorlib.system.atomic_files import atomic_write

    return atomic_write(path, lambda f: img.save(f, format=fmt, **kwargs))
