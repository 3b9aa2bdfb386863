"""ICC colour profiles for the colour-management tests, and the colour science to check them.

Pillow's ImageCms creates sRGB (and Lab/XYZ) profiles itself; it cannot
create grey, Adobe RGB or Display P3 ones, so :func:`rgb_profile` and
:func:`grey_profile` write the ICC bytes by hand: a version 2 matrix/TRC
display profile (header, tag table, ``desc``, ``cprt``, ``wtpt``, the
colorants adapted to D50 with the Bradford transform, and tone curves).
The expected values in the tests come from the formulas below, not from
LittleCMS, so a wrong profile or a wrong conversion both show.
"""
from __future__ import annotations

import struct

import numpy as np

D50 = np.array([0.9642, 1.0, 0.8249])
D65_XY = (0.3127, 0.3290)
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367],
                     [0.0389, -0.0685, 1.0296]])
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
ADOBE_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_GAMMA = 563 / 256  # 2.19921875, as Adobe RGB (1998) specifies


# ------------------------------------------------------------ colour science
def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries, white_xy=D65_XY) -> np.ndarray:
    """Linear RGB -> XYZ (Y of white = 1) for chromaticities ``primaries``."""
    p = np.stack([xy_to_xyz(*xy) for xy in primaries], axis=1)
    scale = np.linalg.solve(p, xy_to_xyz(*white_xy))
    return p * scale


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def lightness(Y: np.ndarray) -> np.ndarray:
    """CIE L* of relative luminance Y (white = 1)."""
    Y = np.asarray(Y, np.float64)
    return np.where(Y > (6 / 29) ** 3, 116 * np.cbrt(Y) - 16, Y * (29 / 3) ** 3)


def to_srgb8(rgb8: np.ndarray, primaries, decode) -> np.ndarray:
    """What a colour-managed viewer shows for 8-bit ``rgb8`` in an RGB space, as 8-bit sRGB."""
    linear = decode(np.asarray(rgb8, np.float64) / 255.0)
    xyz = linear @ rgb_to_xyz_matrix(primaries).T
    srgb_linear = xyz @ np.linalg.inv(rgb_to_xyz_matrix(SRGB_PRIMARIES)).T
    return np.round(srgb_encode(srgb_linear) * 255.0)


# ------------------------------------------------------------ ICC writing
def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in xyz)


def _curve_tag(gamma: float | None = None, table: np.ndarray | None = None) -> bytes:
    """``curv``: identity (no entries), a pure gamma (one u8Fixed8 entry) or a sampled table."""
    if table is not None:
        entries = np.round(np.clip(table, 0, 1) * 65535).astype(">u2").tobytes()
        return b"curv" + b"\0" * 4 + struct.pack(">I", len(table)) + entries
    if gamma is None or gamma == 1.0:
        return b"curv" + b"\0" * 4 + struct.pack(">I", 0)
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256)))


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)


def _text_tag(text: str) -> bytes:
    return b"text" + b"\0" * 4 + text.encode("ascii") + b"\0"


def _assemble(space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries, blobs = [], b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        entries.append(struct.pack(">4sII", sig, offset + len(blobs), len(data)))
        blobs += data
    size = 128 + table_size + len(blobs)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntr"
              + space + b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24
              + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + blobs


def _bradford_to_d50(white_xy) -> np.ndarray:
    src = BRADFORD @ xy_to_xyz(*white_xy)
    dst = BRADFORD @ D50
    return np.linalg.inv(BRADFORD) @ np.diag(dst / src) @ BRADFORD


def rgb_profile(name: str, primaries, gamma: float | None = None,
                table: np.ndarray | None = None) -> bytes:
    """A matrix/TRC RGB display profile (D65 white) with a gamma or a sampled tone curve."""
    m = _bradford_to_d50(D65_XY) @ rgb_to_xyz_matrix(primaries)
    curve = _curve_tag(gamma, table)
    return _assemble(b"RGB ", [
        (b"desc", _desc_tag(name)), (b"cprt", _text_tag("No copyright, test profile")),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(m[:, 0])), (b"gXYZ", _xyz_tag(m[:, 1])), (b"bXYZ", _xyz_tag(m[:, 2])),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)])


def grey_profile(name: str, gamma: float) -> bytes:
    """A greyscale display profile: luminance = (value / max) ** gamma (1.0: linear)."""
    return _assemble(b"GRAY", [
        (b"desc", _desc_tag(name)), (b"cprt", _text_tag("No copyright, test profile")),
        (b"wtpt", _xyz_tag(D50)), (b"kTRC", _curve_tag(gamma))])


def adobe_rgb() -> bytes:
    return rgb_profile("Adobe RGB (1998) compatible test profile", ADOBE_PRIMARIES, ADOBE_GAMMA)


def display_p3() -> bytes:
    table = srgb_decode(np.linspace(0.0, 1.0, 4096))  # Display P3 uses the sRGB tone curve
    return rgb_profile("Display P3 compatible test profile", P3_PRIMARIES, table=table)
