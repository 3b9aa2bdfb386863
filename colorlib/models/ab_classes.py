"""Colour as classification: the alternative to L1 regression (taught in notebook 04).

Zhang, Isola & Efros (*Colorful Image Colorization*, ECCV 2016) do not
regress a*b*. They cut the a*b* plane into squares of side 10, keep the
squares whose colours can be displayed (313 of them in their paper), and
let the network output, for every pixel, a probability for each square: a
classification with Q = 313 classes, trained with cross-entropy. Two
choices then fight the brownish average that L1 and L2 produce:

* **Decoding with the annealed mean.** A probability distribution keeps
  "red or blue" as two peaks instead of averaging them into grey. Taking
  the most likely class (the mode) gives a vivid colour but speckled,
  inconsistent images; the plain mean brings the grey back. Zhang et al.
  sharpen the distribution with a temperature T = 0.38 and then take the
  mean: :func:`annealed_mean`.
* **Class rebalancing.** Most pixels of real photos are nearly grey, so a
  plain cross-entropy is dominated by the few low-chroma classes. Each
  class gets the weight 1 / ((1 - lam) p + lam / Q), where p is its
  (smoothed) share of pixels, normalised so the average weight per pixel is
  1: rare, saturated colours count several times more than grey ones
  (:func:`rebalancing_weights`).

This module holds the pieces needed to show those ideas on small examples
in numpy. The series' main road trains by regression (L1, then GAN + L1),
as the seed tutorial and pix2pix do; the ``classify`` stage
(:mod:`colorlib.models.classify`) trains Zhang et al.'s classifier with the same
pieces in torch, so notebook 04 can compare the two on the same photos.
"""
from __future__ import annotations

import numpy as np

GRID = 10.0  # side of one a*b* square, in Lab units
LIMIT = 110.0  # bin centres run from -LIMIT to LIMIT
ZHANG_T = 0.38  # the annealed-mean temperature Zhang et al. chose
ZHANG_LAMBDA = 0.5  # their mix of empirical and uniform distribution
ZHANG_SIGMA = 5.0  # Gaussian smoothing of the empirical distribution (Lab units)


def grid_centres(grid: float = GRID, limit: float = LIMIT) -> np.ndarray:
    """Every square's centre on the a*b* grid, as (n, 2) values (a, b) in Lab units."""
    axis = np.arange(-limit, limit + grid / 2, grid)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def in_gamut_centres(grid: float = GRID, limit: float = LIMIT, lightness_steps: int = 101) -> np.ndarray:
    """Grid centres whose colour is displayable in sRGB at one lightness at least: (Q, 2)."""
    # Imported here: colorlib.photos.lab brings torch, and the command line reads ZHANG_T
    # (through ModelConfig) for its --help without needing it.
    from colorlib.photos.lab import in_srgb_gamut

    centres = grid_centres(grid, limit)
    L = np.linspace(0.0, 100.0, lightness_steps)
    lab = np.concatenate([np.broadcast_to(L[None, :, None], (len(centres), len(L), 1)),
                          np.broadcast_to(centres[:, None, :], (len(centres), len(L), 2))], axis=2)
    return centres[in_srgb_gamut(lab).any(axis=1)]


def nearest_class(ab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for each (a, b) row of ``ab`` (n, 2)."""
    ab = np.asarray(ab, dtype=np.float32).reshape(-1, 2)
    centres = np.asarray(centres, dtype=np.float32)
    out = np.empty(len(ab), dtype=np.int64)
    for start in range(0, len(ab), 4096):  # in chunks: n x Q distances at once would be large
        d2 = ((ab[start:start + 4096, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        out[start:start + 4096] = d2.argmin(axis=1)
    return out


def class_distribution(ab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Share of the (a, b) rows of ``ab`` that fall in each class (sums to 1)."""
    counts = np.bincount(nearest_class(ab, centres), minlength=len(centres)).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def annealed_mean(probs: np.ndarray, centres: np.ndarray, T: float = ZHANG_T) -> np.ndarray:
    """Decode a distribution over classes into one (a, b): mean of the re-tempered distribution.

    ``probs`` is (..., Q). T = 1 gives the plain mean (grey for "red or
    blue"), T -> 0 the mode (the single most likely class); Zhang et al.
    use 0.38, which keeps most of the mode's vividness and some of the
    mean's smoothness.

    Shown in notebook 04.
    """
    if T <= 0:
        raise ValueError(f"temperature must be > 0, got {T}")
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) / T
    logp -= logp.max(axis=-1, keepdims=True)
    sharp = np.exp(logp)
    sharp /= sharp.sum(axis=-1, keepdims=True)
    return sharp @ centres


def rebalancing_weights(p: np.ndarray, centres: np.ndarray, lam: float = ZHANG_LAMBDA,
                        sigma: float = ZHANG_SIGMA) -> np.ndarray:
    """Zhang et al.'s class weights: 1 / ((1 - lam) p~ + lam / Q), with E_p[w] = 1.

    ``p`` is the empirical class distribution (:func:`class_distribution`);
    p~ is ``p`` smoothed with a Gaussian of ``sigma`` Lab units over the
    centres. ``lam = 0`` weights by inverse frequency (rare colours
    dominate), ``lam = 1`` gives every pixel the same weight (plain
    cross-entropy).

    The weights are scaled so that they average 1 over the pixels themselves
    (E_p[w] = 1), so a rebalanced loss keeps the scale of a plain one. Zhang
    et al. write the normalisation over the smoothed distribution
    (E_p~[w] = 1); the two differ by one constant factor (0.81 on the tiny
    set), which changes no ratio between classes and which Adam's step size
    does not feel.
    """
    p = np.asarray(p, dtype=np.float64)
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    kernel = np.exp(-d2 / (2 * sigma ** 2))
    smooth = kernel @ p
    smooth /= smooth.sum()
    w = 1.0 / ((1.0 - lam) * smooth + lam / len(centres))
    return w / (p * w).sum()
