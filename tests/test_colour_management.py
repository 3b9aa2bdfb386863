"""Colour is read as it is meant to be seen: ICC profiles and TIFF photometrics become sRGB.

Expected values come from colour-science formulas (``icc_profiles``), not
from LittleCMS; each case also checks that reading the raw pixel values as
sRGB would have been clearly wrong, so the test fails if conversion stops.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import icc_profiles as icc
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from colorlib.inference.colorizer import Colorizer
from colorlib.models.networks import ModelConfig
from colorlib.photos.image_files import ColourProfileWarning, load_rgb, save_rgb, srgb_icc_bytes
from colorlib.photos.lab import rgb_to_lab

RAMP = np.tile(np.arange(256, dtype=np.uint8), (8, 1))  # 8 x 256 grey ramp


def colour_patches() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)


def saved(tmp_path: Path, name: str, array: np.ndarray, profile: bytes | None, **kwargs) -> Path:
    path = tmp_path / name
    img = Image.fromarray(array)
    if profile is not None:
        kwargs["icc_profile"] = profile
    img.save(path, **kwargs)
    return path


# ---------------------------------------------------------------- reading
@pytest.mark.parametrize("gamma", [1.8, 1.0])
def test_grey_scan_with_a_gamma_profile_reads_as_a_viewer_shows_it(tmp_path, gamma):
    path = saved(tmp_path, f"scan_gamma{gamma}.png", RAMP, icc.grey_profile("scan", gamma))
    rgb = load_rgb(path).astype(float)
    expected = np.round(icc.srgb_encode((np.arange(256) / 255.0) ** gamma) * 255.0)
    assert np.abs(rgb[0, :, 0] - expected).max() <= 1
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert np.abs(RAMP[0] - expected).max() > 15  # taking the values as sRGB would be wrong


def test_sixteen_bit_grey_with_a_profile(tmp_path):
    ramp16 = (RAMP.astype(np.uint16) * 257)
    path = saved(tmp_path, "scan16.png", ramp16, icc.grey_profile("scan", 1.8))
    assert Image.open(path).mode.startswith("I")
    expected = np.round(icc.srgb_encode((np.arange(256) / 255.0) ** 1.8) * 255.0)
    assert np.abs(load_rgb(path)[0, :, 1].astype(float) - expected).max() <= 1


@pytest.mark.parametrize("space", ["adobe_rgb", "display_p3"])
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_wide_gamut_photos_are_converted_to_srgb(tmp_path, space, fmt):
    patches = colour_patches()
    profile, primaries, decode = {
        "adobe_rgb": (icc.adobe_rgb(), icc.ADOBE_PRIMARIES, lambda v: v ** icc.ADOBE_GAMMA),
        "display_p3": (icc.display_p3(), icc.P3_PRIMARIES, icc.srgb_decode)}[space]
    kwargs = {"quality": 100, "subsampling": 0} if fmt == "jpeg" else {}
    path = saved(tmp_path, f"photo.{fmt}", patches, profile, **kwargs)
    stored = np.asarray(Image.open(path)).astype(float)  # what the file holds (JPEG: re-encoded)
    expected = icc.to_srgb8(stored, primaries, decode)
    got = load_rgb(path).astype(float)
    assert np.abs(got - expected).max() <= 2 and np.abs(got - expected).mean() < 0.3
    assert np.abs(stored - expected).max() > 25  # the raw values are not sRGB


def png_with_chunks(path: Path, array: np.ndarray, **chunks: bytes) -> Path:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for name, data in chunks.items():
        info.add(name.encode(), data)
    Image.fromarray(array).save(path, pnginfo=info)
    return path


def gama(gamma: float) -> bytes:
    return round(gamma * 100000).to_bytes(4, "big")


@pytest.mark.parametrize("gamma", [1.8, 1.0])
def test_a_png_gamma_chunk_without_a_profile_is_honoured(tmp_path, gamma):
    """A linear or Mac-era scan saved as PNG states its encoding in gAMA (file gamma = 1/gamma)."""
    path = png_with_chunks(tmp_path / "scan.png", RAMP, gAMA=gama(1 / gamma))
    assert Image.open(path).info["gamma"] == pytest.approx(1 / gamma, abs=1e-5)
    expected = np.round(icc.srgb_encode((np.arange(256) / 255.0) ** gamma) * 255.0)
    rgb = load_rgb(path).astype(float)
    assert np.abs(rgb[0, :, 0] - expected).max() <= 1
    assert np.abs(RAMP[0] - expected).max() > 15
    # RGB too, channel by channel.
    patches = colour_patches()
    rgb = load_rgb(png_with_chunks(tmp_path / "photo.png", patches, gAMA=gama(1 / gamma)))
    expected = np.round(icc.srgb_encode((patches / 255.0) ** gamma) * 255.0)
    assert np.abs(rgb.astype(float) - expected).max() <= 1


def test_a_png_gamma_of_srgb_or_with_an_srgb_chunk_changes_nothing(tmp_path):
    for name, chunks in (("g22.png", {"gAMA": gama(1 / 2.2)}),
                         ("srgb.png", {"sRGB": b"\x00", "gAMA": gama(1.0)})):
        assert (load_rgb(png_with_chunks(tmp_path / name, RAMP, **chunks))[..., 0] == RAMP).all()


def camera_jpeg(path: Path, array: np.ndarray, color_space: int, interop: str | None) -> Path:
    exif_ifd = {0xA001: color_space}  # ColorSpace: 1 sRGB, 0xFFFF uncalibrated
    if interop is not None:
        exif_ifd[0xA005] = {1: interop}  # the DCF interoperability index
    exif = Image.Exif()
    exif[0x8769] = exif_ifd  # (written this way, Pillow 10.3 keeps the nested IFDs too)
    Image.fromarray(array).save(path, exif=exif.tobytes(), quality=100, subsampling=0)
    return path


@pytest.mark.parametrize("color_space, interop", [(0xFFFF, "R03"), (2, None)])
def test_a_camera_s_adobe_rgb_without_a_profile_is_converted(tmp_path, color_space, interop):
    patches = colour_patches()
    path = camera_jpeg(tmp_path / "DSC_0001.JPG", patches, color_space, interop)
    stored = np.asarray(Image.open(path)).astype(float)
    expected = icc.to_srgb8(stored, icc.ADOBE_PRIMARIES, lambda v: v ** icc.ADOBE_GAMMA)
    got = load_rgb(path).astype(float)
    assert np.abs(got - expected).max() <= 2 and np.abs(got - expected).mean() < 0.3
    assert np.abs(stored - expected).max() > 25  # the raw values are not sRGB


@pytest.mark.parametrize("color_space, interop", [(1, "R98"), (0xFFFF, None), (0xFFFF, "THM")])
def test_other_camera_colour_spaces_are_read_as_srgb(tmp_path, color_space, interop):
    patches = colour_patches()
    path = camera_jpeg(tmp_path / "DSC_0002.JPG", patches, color_space, interop)
    assert (load_rgb(path) == np.asarray(Image.open(path))).all()


def test_srgb_profile_changes_nothing(tmp_path):
    patches = colour_patches()
    path = saved(tmp_path, "srgb.png", patches, srgb_icc_bytes())
    assert np.abs(load_rgb(path).astype(int) - patches).max() <= 1


def test_lab_tiff_and_min_is_white_tiffs(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    ramp16 = RAMP.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "miw8.tif", RAMP, photometric="miniswhite")
    tifffile.imwrite(tmp_path / "miw16.tif", ramp16, photometric="miniswhite")
    tifffile.imwrite(tmp_path / "mib16.tif", ramp16, photometric="minisblack")
    for name in ("miw8.tif", "miw16.tif"):  # 0 means white
        rgb = load_rgb(tmp_path / name)
        assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, -1].tolist() == [0, 0, 0], name
    assert load_rgb(tmp_path / "mib16.tif")[0, -1].tolist() == [255, 255, 255]
    # CIELab TIFF: L* = value / 255 * 100, a* and b* signed bytes.
    lab = np.zeros((2, 2, 3), np.uint8)
    lab[..., 0] = 128  # L* 50.2
    lab[1, 1, 1] = 40  # a* = +40: red
    tifffile.imwrite(tmp_path / "lab.tif", lab, photometric="cielab")
    rgb = load_rgb(tmp_path / "lab.tif").astype(int)
    assert abs(rgb[0, 0, 0] - 119) <= 2 and len(set(rgb[0, 0].tolist())) == 1  # neutral grey
    assert rgb[1, 1, 0] > rgb[1, 1, 1] + 40  # reddish
    assert abs(rgb_to_lab(rgb[1:, 1:].astype(np.uint8))[0, 0, 1] - 40) < 3


def test_an_unusable_profile_is_named_and_the_pixels_read_as_srgb(tmp_path):
    patches = colour_patches()
    path = saved(tmp_path, "odd profile.png", patches, icc.grey_profile("grey", 1.8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = load_rgb(path)  # a grey profile on RGB pixels
    (w,) = [w for w in caught if issubclass(w.category, ColourProfileWarning)]
    assert "odd profile.png" in str(w.message) and "GRAY" in str(w.message)
    assert (rgb == patches).all()
    damaged = saved(tmp_path, "damaged.png", patches, b"not an icc profile at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (load_rgb(damaged) == patches).all()
    assert any("damaged.png" in str(w.message) for w in caught)


# ---------------------------------------------------------------- colorizing
class ZeroAB(torch.nn.Module):
    """A generator that predicts ab = 0 (grey): the output's colour cannot move its lightness."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, L):
        return torch.zeros(L.shape[0], 2, *L.shape[2:]) + 0 * self.anchor


def test_output_lightness_is_the_input_as_a_viewer_shows_it(tmp_path):
    path = saved(tmp_path, "scan.png", RAMP, icc.grey_profile("scan", 1.8))
    colorizer = Colorizer(ZeroAB(), ModelConfig(arch="pix2pix_unet", size=32), Path("zero.pt"))
    out = colorizer(path)
    seen = icc.lightness((np.arange(256) / 255.0) ** 1.8)  # L* a viewer shows for the scan
    got = rgb_to_lab(out)[..., 0]
    assert np.abs(got[0] - seen).max() < 0.6
    naive = rgb_to_lab(np.repeat(RAMP[..., None], 3, 2))[..., 0]
    assert np.abs(naive[0] - seen).max() > 5  # reading the values as sRGB is visibly off


def test_outputs_carry_an_srgb_profile(tmp_path):
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.stack([x * 4, y * 5, 255 - x * 2], -1).astype(np.uint8)  # smooth: JPEG keeps it
    for name in ("out.png", "out.jpg"):
        path = save_rgb(rgb, tmp_path / name, note="test")
        with Image.open(path) as img:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
        assert "sRGB" in profile.profile.profile_description
        assert profile.profile.xcolor_space.strip() == "RGB"
        # Read back through the embedded profile: the values stay what was computed.
        tolerance = 1 if name.endswith(".png") else 6  # JPEG: lossy
        assert np.abs(load_rgb(path).astype(int) - rgb).max() <= tolerance
