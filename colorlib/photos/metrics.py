"""How good is a colorization? Numbers to put next to the pictures.

No single number says it, so we report several, each answering one question:

* **PSNR** and **SSIM** of the colorized RGB against the original: how close
  is it, pixel by pixel, and in local structure? Both reward playing safe: a
  dull brownish guess scores better than a vivid wrong colour, and a
  plausible blue car scores badly against a red one.
* **AuC** (Zhang, Isola & Efros 2016): for thresholds 0-150 in ab units, the
  share of pixels whose ab error is within the threshold; the area under
  that cumulative curve, in percent. 100 means every pixel exact.
* **Colorfulness** (Hasler & Süsstrunk 2003) of outputs and of the ground
  truth, and **ΔCF** = CF(truth) - CF(output): positive when the outputs are
  duller than the photos. It ignores *which* colours are used.
* **Grey fraction**: the share of pixels with chroma below
  :data:`GREY_CHROMA`. A model that collapses to greyscale shows a grey
  fraction far above the photos' own.

PSNR and SSIM come from scikit-image (``skimage.metrics``), not our own code.
Every function takes one image; :mod:`colorlib.inference.evaluate` averages over a folder.

Taught in notebook 07.
"""
from __future__ import annotations

import math

import numpy as np

from colorlib.photos.lab import AB_SCALE
from colorlib.photos.lab import _as_float_rgb as as_float_rgb  # uint8 -> /255, float -> [0, 1]

AUC_MAX_THRESHOLD = 150.0  # ab units, as in Zhang et al. 2016
AUC_STEP = 1.0
GREY_CHROMA = 5.0  # ab units: below this a pixel looks grey (a just-noticeable difference is ~2.3)
PSNR_CAP = 100.0  # dB, reported for identical images instead of infinity (keeps JSON valid)
COLORFULNESS_MEAN_WEIGHT = 0.3  # Hasler & Süsstrunk's weight on the mean term
AB_HISTOGRAM_BINS = 44  # per axis of ab_histogram: 5 ab units a bin over -110..110


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if np.shape(pred) != np.shape(truth):
        raise ValueError(f"output and ground truth differ in shape: {np.shape(pred)} vs "
                         f"{np.shape(truth)}")


# ------------------------------------------------------------ fidelity
def psnr(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB on RGB in [0, 1] (scikit-image).

    10 * log10(1 / MSE): +6 dB halves the RMS error. Identical images give
    :data:`PSNR_CAP` instead of infinity.
    """
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    _check_pair(pred_rgb, true_rgb)
    pred, truth = as_float_rgb(pred_rgb), as_float_rgb(true_rgb)
    if mean_squared_error(truth, pred) == 0:
        return PSNR_CAP
    return float(min(peak_signal_noise_ratio(truth, pred, data_range=1.0), PSNR_CAP))


def ssim(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Structural similarity on RGB in [0, 1] (scikit-image, 7x7 window, per channel).

    Images smaller than 7 px on a side use the largest odd window that fits.
    """
    from skimage.metrics import structural_similarity

    _check_pair(pred_rgb, true_rgb)
    pred, truth = as_float_rgb(pred_rgb), as_float_rgb(true_rgb)
    win = min(7, min(truth.shape[:2]))
    win -= 1 - win % 2  # must be odd
    if win < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {truth.shape[:2]}")
    return float(structural_similarity(truth, pred, data_range=1.0, channel_axis=-1,
                                       win_size=win))


# ------------------------------------------------------------ ab error
def ab_error(pred_ab: np.ndarray, true_ab: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean distance in the a*b* plane (HxWx2 arrays, ab units)."""
    _check_pair(pred_ab, true_ab)
    diff = np.asarray(pred_ab, np.float64) - np.asarray(true_ab, np.float64)
    return np.sqrt((diff ** 2).sum(axis=-1))


def ab_error_curve(pred_ab: np.ndarray, true_ab: np.ndarray,
                   max_threshold: float = AUC_MAX_THRESHOLD,
                   step: float = AUC_STEP) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, share of pixels with ab error <= threshold): a cumulative curve."""
    err = np.sort(ab_error(pred_ab, true_ab).ravel())
    thresholds = np.arange(0.0, max_threshold + step / 2, step)
    share = np.searchsorted(err, thresholds, side="right") / max(err.size, 1)
    return thresholds, share


def auc(pred_ab: np.ndarray, true_ab: np.ndarray, max_threshold: float = AUC_MAX_THRESHOLD,
        step: float = AUC_STEP) -> float:
    """Area under :func:`ab_error_curve` over [0, max_threshold], in percent.

    Trapezoidal rule, normalised by the threshold range: 100 when every
    pixel is exact, 0 when every pixel is off by more than ``max_threshold``.

    Shown in notebook 07.
    """
    t, share = ab_error_curve(pred_ab, true_ab, max_threshold, step)
    area = float(np.sum((share[1:] + share[:-1]) * np.diff(t)) / 2.0)
    return 100.0 * area / max_threshold


# ------------------------------------------------------------ colour amount
def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk's colorfulness M on 0-255 RGB.

    rg = R - G and yb = (R + G)/2 - B (signed); M = sqrt(std_rg² + std_yb²)
    + 0.3 * sqrt(mean_rg² + mean_yb²). 0 for any grey image; in their survey
    ~15 reads as "slightly colourful", ~33 "moderately", ~59 "quite" and
    ~82 "highly colourful".

    Shown in notebook 07.
    """
    rgb = as_float_rgb(rgb).astype(np.float64) * 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mean = math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + COLORFULNESS_MEAN_WEIGHT * mean)


def chroma(ab: np.ndarray) -> np.ndarray:
    """Per-pixel chroma sqrt(a² + b²): distance from grey in the a*b* plane."""
    ab = np.asarray(ab, np.float64)
    return np.sqrt((ab ** 2).sum(axis=-1))


def grey_fraction(ab: np.ndarray, threshold: float = GREY_CHROMA) -> float:
    """Share of pixels (0-1) whose chroma is below ``threshold``: near-grey pixels."""
    return float((chroma(ab) < threshold).mean())


# A photo with fewer coloured pixels than this is a greyscale photo: nothing
# to learn colour from, and no colour ground truth to score against.
MIN_COLOUR_SHARE = 0.01


def is_greyscale(rgb: np.ndarray) -> bool:
    """True for a greyscale photo (stored as RGB or not): under 1% of its pixels have colour.

    JPEG noise in a scan saved as RGB stays below :data:`GREY_CHROMA`; a
    sepia print does not (its tint is colour, if not much of it).
    """
    from colorlib.photos.lab import rgb_to_lab

    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return True
    return 1.0 - grey_fraction(rgb_to_lab(rgb)[..., 1:]) < MIN_COLOUR_SHARE


def ab_histogram(ab: np.ndarray, bins: int = AB_HISTOGRAM_BINS,
                 limit: float = AB_SCALE) -> np.ndarray:
    """2-D histogram (counts, ``bins`` x ``bins``, a along rows, b along columns) of ab."""
    ab = np.asarray(ab, np.float64).reshape(-1, 2)
    hist, _, _ = np.histogram2d(ab[:, 0], ab[:, 1], bins=bins, range=[[-limit, limit]] * 2)
    return hist


# ------------------------------------------------------------ all at once
def image_metrics(pred_rgb: np.ndarray, true_rgb: np.ndarray, pred_lab: np.ndarray | None = None,
                  true_lab: np.ndarray | None = None) -> dict[str, float]:
    """Every per-image metric for one output against its ground truth.

    Lab versions of the images may be passed in when the caller already has
    them (conversion is the slow part); otherwise they are computed here.
    """
    from colorlib.photos.lab import rgb_to_lab

    _check_pair(pred_rgb, true_rgb)
    pred_lab = rgb_to_lab(pred_rgb) if pred_lab is None else pred_lab
    true_lab = rgb_to_lab(true_rgb) if true_lab is None else true_lab
    pred_ab, true_ab = pred_lab[..., 1:], true_lab[..., 1:]
    cf_out, cf_true = colorfulness(pred_rgb), colorfulness(true_rgb)
    return {
        "psnr": psnr(pred_rgb, true_rgb),
        "ssim": ssim(pred_rgb, true_rgb),
        "auc": auc(pred_ab, true_ab),
        "ab_error": float(ab_error(pred_ab, true_ab).mean()),
        "colorfulness": cf_out,
        "colorfulness_truth": cf_true,
        "delta_colorfulness": cf_true - cf_out,
        "grey_fraction": grey_fraction(pred_ab),
        "grey_fraction_truth": grey_fraction(true_ab),
        "mean_a": float(pred_ab[..., 0].mean()),
        "mean_b": float(pred_ab[..., 1].mean()),
        "mean_a_truth": float(true_ab[..., 0].mean()),
        "mean_b_truth": float(true_ab[..., 1].mean()),
    }


METRIC_KEYS = ("psnr", "ssim", "auc", "ab_error", "colorfulness", "colorfulness_truth",
               "delta_colorfulness", "grey_fraction", "grey_fraction_truth", "mean_a", "mean_b",
               "mean_a_truth", "mean_b_truth")


def mean_metrics(records: list[dict[str, float]]) -> dict[str, float]:
    """Average each metric over images (every image counts once, whatever its size)."""
    if not records:
        return {k: float("nan") for k in METRIC_KEYS}
    return {k: float(np.mean([r[k] for r in records])) for k in METRIC_KEYS}
