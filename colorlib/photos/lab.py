"""RGB <-> L*a*b* conversion and the tutorial's normalisation, defined once.

Two paths share one normalisation:

* single images as numpy arrays (``HxWx3``), through scikit-image, which is
  what learners meet in every colour-science text;
* batches of tensors (``Bx3xHxW``): on a GPU through ``kornia.color``, so
  a whole batch is converted in one vectorised call on the device; on the
  CPU through the same formulas as skimage written out in float32 numpy
  (:func:`fast_rgb_to_lab`), one image-sized chunk at a time: quicker on a
  CPU than both (``benchmarks/RESULTS.md``, ``lab_batch_conversion`` and
  "Other measurements"); it agrees with skimage to within 1e-5 in
  normalised units (``tests/test_fast_path.py``).

The network sees ``L/50 - 1`` (so L in [0, 100] maps to [-1, 1]) and
``ab/110`` (the a and b channels of real sRGB colours stay within about
+-110, so they land in [-1, 1] as well, matching the generator's tanh).

Taught in notebook 01 (the batch conversion in notebook 02).
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from skimage import color as skcolor

L_SCALE = 50.0
L_SHIFT = 1.0
AB_SCALE = 110.0


def normalize_l(L):
    """Map lightness L in [0, 100] to the network's range [-1, 1].

    Shown in notebook 01.
    """
    return L / L_SCALE - L_SHIFT


def normalize_ab(ab):
    """Map a*b* (about +-110 for sRGB colours) to about [-1, 1].

    Shown in notebook 01.
    """
    return ab / AB_SCALE


def denormalize_l(L):
    """Inverse of :func:`normalize_l`."""
    return (L + L_SHIFT) * L_SCALE


def denormalize_ab(ab):
    """Inverse of :func:`normalize_ab`."""
    return ab * AB_SCALE


# ---------------------------------------------------------------- numpy path
def _as_float_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / 255.0
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / 65535.0
    return np.clip(rgb.astype(np.float32), 0.0, 1.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert one RGB image (uint8, uint16 or float in [0, 1]) to Lab (float32).

    L is in [0, 100]; a and b are unbounded in principle but stay within
    about +-110 for colours an sRGB image can hold.

    Shown in notebook 01.
    """
    return skcolor.rgb2lab(_as_float_rgb(rgb)).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Convert one Lab image to float RGB in [0, 1].

    Lab values a network predicts need not be inside the sRGB gamut; such
    colours are clipped to the nearest displayable value rather than
    wrapping around or producing NaNs.

    Shown in notebook 01.
    """
    lab = np.asarray(lab, dtype=np.float64)
    with warnings.catch_warnings():
        # skimage warns about every out-of-gamut pixel ("negative Z values");
        # clipping them is exactly what we promise, so the warning is noise.
        warnings.simplefilter("ignore", UserWarning)
        rgb = skcolor.lab2rgb(lab)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def split_lab(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB image -> (normalised L as 1xHxW, normalised ab as 2xHxW), float32.

    Shown in notebook 01.
    """
    lab = rgb_to_lab(rgb)
    L = normalize_l(lab[..., :1]).transpose(2, 0, 1)
    ab = normalize_ab(lab[..., 1:]).transpose(2, 0, 1)
    return np.ascontiguousarray(L), np.ascontiguousarray(ab)


def merge_lab(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Normalised L (1xHxW or HxW) and ab (2xHxW) -> float RGB HxWx3 in [0, 1]."""
    L = np.asarray(L, dtype=np.float32).reshape(-1, *np.shape(ab)[-2:])[:1]
    lab = np.concatenate([denormalize_l(L), denormalize_ab(np.asarray(ab, np.float32))], 0)
    return lab_to_rgb(lab.transpose(1, 2, 0))


def pixel_chroma(ab) -> np.ndarray:
    """Chroma sqrt(a*^2 + b*^2) of every pixel, in Lab units, of normalised ab.

    ``ab`` is 2xHxW or Bx2xHxW (array or tensor); the result is HxW or BxHxW.
    Chroma is the distance from grey in the a*b* plane: 0 for grey, about
    10-20 for muted colours, 50 and more for vivid ones.
    """
    if isinstance(ab, torch.Tensor):
        ab = ab.detach().float().cpu().numpy()
    ab = denormalize_ab(np.asarray(ab, dtype=np.float32))
    if ab.ndim < 3 or ab.shape[-3] != 2:
        raise ValueError(f"expected ab as 2xHxW or Bx2xHxW, got shape {ab.shape}")
    return np.hypot(ab[..., 0, :, :], ab[..., 1, :, :])


def mean_chroma(ab) -> float:
    """Average colourfulness, :func:`pixel_chroma` averaged over all pixels.

    A model that hedges between plausible colours predicts ab near 0, i.e.
    greys and browns; comparing this number with the ground truth's shows
    how much it hedges.

    Shown in notebook 03.
    """
    return float(pixel_chroma(ab).mean())


# ------------------------------------------------------- fast CPU path (numpy)
# skimage's sRGB (D65, 2 degree observer) formulas and constants, in float32.
# Work is cut into chunks of CHUNK pixels so each step's arrays stay in the
# CPU cache, and the chunks are shared out to torch.get_num_threads() threads
# (numpy releases the GIL in every step used here; boolean indexing, which
# does not, is avoided). The chunking depends only on the image size, never
# on the input's memory layout or the thread count, so results are bitwise
# reproducible. (What the threads gain: benchmarks/RESULTS.md, "Other measurements".)
CHUNK = 1 << 16
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_XYZN_FROM_LIN = (_XYZ_FROM_RGB / _WHITE_D65[:, None]).astype(np.float32)  # XYZ / white
_LIN_FROM_XYZN = (np.linalg.inv(_XYZ_FROM_RGB) * _WHITE_D65[None, :]).astype(np.float32)
_v = np.arange(256) / 255.0
_SRGB_TO_LINEAR = np.where(_v > 0.04045, ((_v + 0.055) / 1.055) ** 2.4, _v / 12.92).astype(np.float32)
_F_EPS, _F_K, _F_C = np.float32(0.008856), np.float32(7.787), np.float32(16.0 / 116.0)
_POOL: ThreadPoolExecutor | None = None


def _chunks(n_images: int, n_pixels: int) -> list[tuple[int, int, int]]:
    """(image, start, stop) pieces of at most CHUNK pixels; never span two images."""
    return [(i, s, min(s + CHUNK, n_pixels)) for i in range(n_images)
            for s in range(0, n_pixels, CHUNK)]


def _run(fn, pieces: list) -> None:
    """``fn(*piece)`` for every piece, on up to ``torch.get_num_threads()`` threads."""
    global _POOL
    threads = min(torch.get_num_threads(), len(pieces))
    if threads <= 1:
        for piece in pieces:
            fn(*piece)
        return
    if _POOL is None or _POOL._max_workers < threads:
        _POOL = ThreadPoolExecutor(threads, thread_name_prefix="colorlib-lab")
    for future in [_POOL.submit(fn, *piece) for piece in pieces]:
        future.result()


def _linear_rgb(planes: np.ndarray) -> np.ndarray:
    """(3, n) sRGB (uint8, or float in [0, 1]) -> (3, n) linear-light float32."""
    if planes.dtype == np.uint8:
        return np.take(_SRGB_TO_LINEAR, planes)  # exact: 256 values, computed in float64
    v = np.clip(planes.astype(np.float32), 0.0, 1.0)
    return np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92).astype(np.float32)


def _lab_f(t: np.ndarray) -> np.ndarray:
    """CIE f(t), in place: cube root above (6/29)^3, the linear segment below.

    Masked copies rather than boolean indexing: numpy holds the GIL for the
    latter, which would serialise the worker threads.
    """
    low = t * _F_K
    low += _F_C
    dark = t <= _F_EPS
    np.cbrt(t, out=t)
    np.copyto(t, low, where=dark)
    return t


def _lab_planes(planes: np.ndarray, out: np.ndarray, l_scale: float, l_shift: float,
                a_scale: float, b_scale: float) -> None:
    """(3, n) RGB -> out (3, n): L = fy*l_scale + l_shift, a = (fx-fy)*a_scale, b = (fy-fz)*b_scale."""
    fx, fy, fz = _lab_f(_XYZN_FROM_LIN @ _linear_rgb(planes))
    np.multiply(fy, np.float32(l_scale), out=out[0])
    out[0] += np.float32(l_shift)
    np.subtract(fx, fy, out=out[1])
    out[1] *= np.float32(a_scale)
    np.subtract(fy, fz, out=out[2])
    out[2] *= np.float32(b_scale)


def _rgb_planes(L: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Lab rows (L 0-100, a, b; each (n,)) -> out (3, n) sRGB float32, clipped to [0, 1]."""
    f = np.empty((3, L.shape[0]), np.float32)
    np.add(L, np.float32(16.0), out=f[1])
    f[1] /= np.float32(116.0)
    np.divide(a, np.float32(500.0), out=f[0])
    f[0] += f[1]
    np.divide(b, np.float32(-200.0), out=f[2])
    f[2] += f[1]
    np.maximum(f[2], 0.0, out=f[2])  # skimage: negative z -> 0
    linear_part = f <= np.float32(0.2068966)
    low = (f - _F_C) / _F_K
    f **= 3
    np.copyto(f, low, where=linear_part)
    np.clip(linear_to_srgb(_LIN_FROM_XYZN @ f), 0.0, 1.0, out=out)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB's transfer curve (IEC 61966-2-1), in place on a float32 array.

    Returns ``lin``; values are not clipped. Also used by
    :func:`colorlib.photos.image_files.to_rgb` for files that state another encoding.
    """
    dark = lin <= np.float32(0.0031308)
    dark_values = lin * np.float32(12.92)
    np.maximum(lin, 0.0, out=lin)
    np.power(lin, np.float32(1.0 / 2.4), out=lin)
    lin *= np.float32(1.055)
    lin -= np.float32(0.055)
    np.copyto(lin, dark_values, where=dark)
    return lin


def in_srgb_gamut(lab: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """True where a Lab colour exists in sRGB, i.e. where :func:`lab_to_rgb` need not clip.

    ``lab`` is any array whose last axis holds (L 0-100, a, b). The colour is
    converted to linear RGB without clipping; it is displayable when all of
    R, G and B lie in [0, 1] (``tolerance`` absorbs rounding at the border).

    Shown in notebook 01.
    """
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0])
    t = np.where(f > 6.0 / 29.0, f ** 3, (f - 16.0 / 116.0) / 7.787)
    lin = np.tensordot(_LIN_FROM_XYZN.astype(np.float64), t, axes=1)
    return ((lin >= -tolerance) & (lin <= 1.0 + tolerance)).all(axis=0)


def _rgb_pixels(rgb: np.ndarray) -> tuple[np.ndarray, int, int]:
    """HxWx3 RGB -> (N x 3 pixels, uint8 kept as is, else float in [0, 1]; H; W)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        rgb = _as_float_rgb(rgb)
    h, w, _ = rgb.shape
    return rgb.reshape(-1, 3), h, w


def fast_rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """:func:`rgb_to_lab` for big images: float32 numpy, in cache-sized chunks, threaded.

    Same formulas and constants as skimage, so the result agrees with
    :func:`rgb_to_lab` to within about 1e-4 L/a/b units (float32 rounding).
    """
    pix, h, w = _rgb_pixels(rgb)
    out = np.empty((h * w, 3), np.float32)

    def work(_, s, e):
        res = np.empty((3, e - s), np.float32)
        _lab_planes(pix[s:e].T, res, 116.0, -16.0, 500.0, 200.0)
        out[s:e] = res.T

    _run(work, _chunks(1, h * w))
    return out.reshape(h, w, 3)


def fast_lightness(rgb: np.ndarray) -> np.ndarray:
    """Only the L channel of :func:`fast_rgb_to_lab` (HxW float32, 0-100).

    L depends on Y alone, so this skips two of the three cube roots; it is
    what full-resolution colorization needs from the input photo.
    """
    pix, h, w = _rgb_pixels(rgb)
    out = np.empty(h * w, np.float32)

    def work(_, s, e):
        y = _XYZN_FROM_LIN[1] @ _linear_rgb(pix[s:e].T)
        np.multiply(_lab_f(y), np.float32(116.0), out=out[s:e])
        out[s:e] -= np.float32(16.0)

    _run(work, _chunks(1, h * w))
    return out.reshape(h, w)


def fast_lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """:func:`lab_to_rgb` for big images: float32 numpy, in cache-sized chunks, threaded.

    Out-of-gamut colours are clipped exactly as skimage clips them.
    """
    lab = np.asarray(lab, dtype=np.float32)
    if lab.ndim != 3 or lab.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 Lab array, got shape {lab.shape}")
    h, w, _ = lab.shape
    pix = lab.reshape(-1, 3)
    out = np.empty((h * w, 3), np.float32)

    def work(_, s, e):
        res = np.empty((3, e - s), np.float32)
        rows = np.ascontiguousarray(pix[s:e].T)
        _rgb_planes(rows[0], rows[1], rows[2], res)
        out[s:e] = res.T

    _run(work, _chunks(1, h * w))
    return out.reshape(h, w, 3)


def _lab_batch_numpy(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU batch (Bx3xHxW) -> normalised (L, ab) through the numpy path."""
    b, _, h, w = rgb.shape
    src = rgb.contiguous().numpy().reshape(b, 3, h * w)
    out = np.empty((b, 3, h * w), np.float32)

    def work(i, s, e):
        _lab_planes(src[i, :, s:e], out[i, :, s:e], 116.0 / L_SCALE, -16.0 / L_SCALE - L_SHIFT,
                    500.0 / AB_SCALE, 200.0 / AB_SCALE)

    _run(work, _chunks(b, h * w))
    lab = torch.from_numpy(out).view(b, 3, h, w)
    return lab[:, :1], lab[:, 1:]


# --------------------------------------------------------------- tensor path
def rgb_to_lab_tensor(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch of RGB images (Bx3xHxW, uint8 or float in [0, 1]) -> normalised (L, ab).

    Runs wherever ``rgb`` lives, so the Lab conversion can happen on the GPU
    after the loader has shipped compact uint8 pixels. On the CPU it takes
    the numpy path above (quicker there than kornia).

    Shown in notebook 02.
    """
    if rgb.device.type == "cpu":
        if rgb.dtype != torch.uint8:
            rgb = rgb.float()
        return _lab_batch_numpy(rgb)
    return kornia_rgb_to_lab(rgb)


def kornia_rgb_to_lab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The GPU path of :func:`rgb_to_lab_tensor` (kornia), on any device.

    Called directly only by tests, which check it against skimage on the
    CPU (tests/test_gpu_paths.py) so it is right before a GPU ever runs it.
    """
    import kornia.color

    if rgb.dtype == torch.uint8:
        rgb = rgb.float().div_(255.0)
    lab = kornia.color.rgb_to_lab(rgb.float().clamp(0.0, 1.0))
    return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])


def lab_tensor_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Normalised L (Bx1xHxW) and ab (Bx2xHxW) -> float RGB in [0, 1], clipped."""
    lab = torch.cat([denormalize_l(L.float()), denormalize_ab(ab.float())], dim=1)
    if lab.device.type == "cpu":
        b, _, h, w = lab.shape
        src = lab.detach().contiguous().numpy().reshape(b, 3, h * w)
        out = np.empty((b, 3, h * w), np.float32)

        def work(i, s, e):
            _rgb_planes(src[i, 0, s:e], src[i, 1, s:e], src[i, 2, s:e], out[i, :, s:e])

        _run(work, _chunks(b, h * w))
        return torch.from_numpy(out).view(b, 3, h, w)
    return kornia_lab_to_rgb(L, ab)


def kornia_lab_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The GPU path of :func:`lab_tensor_to_rgb` (kornia), on any device (see above)."""
    import kornia.color

    lab = torch.cat([denormalize_l(L.float()), denormalize_ab(ab.float())], dim=1)
    return kornia.color.lab_to_rgb(lab, clip=True)
