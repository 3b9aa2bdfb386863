"""Every metric against inputs whose answer is known by hand."""
import math

import numpy as np
import pytest

from colorlib.photos import metrics as M
from colorlib.photos.lab import lab_to_rgb, rgb_to_lab


def solid(rgb, h=4, w=4):
    return np.tile(np.array(rgb, dtype=np.uint8), (h, w, 1))


def lab_image(L, a, b, h=8, w=8):
    return np.dstack([np.full((h, w), L, float), np.full((h, w), a, float), np.full((h, w), b, float)])


# ------------------------------------------------------------------- PSNR
def test_psnr_matches_a_hand_computation():
    truth = np.zeros((2, 2, 3), np.float32)
    pred = truth.copy()
    pred[0, 0, 0] = 0.5  # one of 12 values off by 0.5: MSE = 0.25 / 12
    assert M.psnr(pred, truth) == pytest.approx(10 * math.log10(1 / (0.25 / 12)))  # 16.81 dB
    assert M.psnr(np.full((2, 2, 3), 0.1), truth) == pytest.approx(20.0)  # MSE 0.01


def test_psnr_reads_uint8_as_0_to_255():
    truth = solid((0, 0, 0))
    pred = solid((51, 51, 51))  # 0.2 everywhere: MSE 0.04, PSNR 13.98 dB
    assert M.psnr(pred, truth) == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-6)


def test_psnr_of_identical_images_is_capped_not_infinite():
    img = solid((10, 200, 30))
    assert M.psnr(img, img) == M.PSNR_CAP


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        M.psnr(solid((0, 0, 0), 4, 4), solid((0, 0, 0), 4, 5))


# ------------------------------------------------------------------- SSIM
def test_ssim_is_one_for_identical_and_lower_for_noise(real_photos):
    img = real_photos[0][:64, :64]
    assert M.ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    assert M.ssim(noisy, img) < 0.7


def test_ssim_works_on_images_smaller_than_its_window():
    rng = np.random.default_rng(1)
    a = rng.random((5, 6, 3))
    assert M.ssim(a, a) == pytest.approx(1.0)
    assert M.ssim(rng.random((5, 6, 3)), a) < 0.9


# -------------------------------------------------------------------- AuC
def test_auc_is_100_for_exact_ab_and_0_for_errors_beyond_150():
    ab = np.random.default_rng(0).uniform(-80, 80, (8, 8, 2))
    assert M.auc(ab, ab) == pytest.approx(100.0)
    assert M.auc(ab + np.array([200.0, 0.0]), ab) == pytest.approx(0.0)


def test_auc_of_a_constant_error_matches_the_trapezoid_by_hand():
    true_ab = np.zeros((4, 4, 2))
    pred_ab = np.zeros((4, 4, 2))
    pred_ab[..., 0] = 30.0
    pred_ab[..., 1] = 40.0  # every pixel 50 ab units off
    # share is 0 below 50 and 1 from 50 on: area = 0.5 (the step [49, 50]) + 100
    assert M.auc(pred_ab, true_ab) == pytest.approx(100.5 / 150 * 100)


def test_auc_of_half_exact_half_far_is_50():
    true_ab = np.zeros((2, 2, 2))
    pred_ab = true_ab.copy()
    pred_ab[0] = 300.0
    assert M.auc(pred_ab, true_ab) == pytest.approx(50.0)


def test_error_curve_is_cumulative():
    rng = np.random.default_rng(2)
    t, share = M.ab_error_curve(rng.normal(0, 40, (16, 16, 2)), np.zeros((16, 16, 2)))
    assert t[0] == 0 and t[-1] == 150 and len(t) == 151
    assert np.all(np.diff(share) >= 0) and 0 <= share[0] <= share[-1] <= 1


# ----------------------------------------------------------- colorfulness
def test_colorfulness_of_any_grey_image_is_zero():
    grey = np.repeat(np.random.default_rng(0).integers(0, 256, (16, 16, 1), dtype=np.uint8), 3, 2)
    assert M.colorfulness(grey) == pytest.approx(0.0, abs=1e-9)


def test_colorfulness_matches_hasler_suesstrunk_by_hand():
    # Solid red: rg = 255, yb = 127.5, no spread -> 0.3 * sqrt(255² + 127.5²)
    assert M.colorfulness(solid((255, 0, 0))) == pytest.approx(0.3 * math.hypot(255, 127.5))
    # Half red, half black: rg in {255, 0} (std 127.5, mean 127.5); yb in {127.5, 0}.
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, :, 0] = 255
    expected = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 63.75)
    assert M.colorfulness(img) == pytest.approx(expected)


def test_colorfulness_signs_matter_blue_is_not_yellow():
    # yb is signed: a blue image has yb < 0; its colourfulness is still positive.
    assert M.colorfulness(solid((0, 0, 255))) == pytest.approx(0.3 * 255)
    assert M.colorfulness(solid((0, 0, 255))) == pytest.approx(M.colorfulness(solid((255, 255, 0))))


def test_colorfulness_reads_uint8_and_float_alike(real_photos):
    img = real_photos[0][:32, :32]
    assert M.colorfulness(img) == pytest.approx(M.colorfulness(img / 255.0))


# ------------------------------------------------------------- grey share
def test_grey_fraction_counts_low_chroma_pixels():
    ab = np.zeros((2, 2, 2))
    ab[0, 0] = [3.0, 4.0]  # chroma 5: not below the threshold
    ab[1, 1] = [30.0, 0.0]
    assert M.grey_fraction(ab, threshold=5.0) == pytest.approx(0.5)
    assert M.grey_fraction(np.zeros((3, 3, 2))) == 1.0


def test_ab_histogram_counts_every_pixel():
    ab = np.random.default_rng(0).uniform(-100, 100, (10, 10, 2))
    hist = M.ab_histogram(ab, bins=20)
    assert hist.shape == (20, 20) and hist.sum() == 100


# ---------------------------------------------------------- all together
def test_an_output_equal_to_the_truth_is_perfect(real_photos):
    truth = real_photos[1][:48, :48]
    m = M.image_metrics(truth, truth)
    assert m["auc"] == pytest.approx(100.0)
    assert m["delta_colorfulness"] == pytest.approx(0.0)
    assert m["ssim"] == pytest.approx(1.0) and m["psnr"] == M.PSNR_CAP
    assert m["ab_error"] == pytest.approx(0.0)
    assert m["grey_fraction"] == m["grey_fraction_truth"]


def test_greyscale_output_loses_all_colourfulness(real_photos):
    truth = real_photos[0][:64, :64]
    lab = rgb_to_lab(truth)
    lab[..., 1:] = 0
    grey = lab_to_rgb(lab)
    m = M.image_metrics(grey, truth)
    assert m["colorfulness"] == pytest.approx(0.0, abs=0.5)
    assert m["delta_colorfulness"] == pytest.approx(M.colorfulness(truth), abs=0.5)
    assert m["grey_fraction"] == pytest.approx(1.0)
    assert m["grey_fraction_truth"] < 0.9
    assert 0 < m["auc"] < 100


def test_a_plausible_wrong_colour_scores_worse_than_grey():
    """What the metrics miss: a blue car against a red truth loses to no colour at all."""
    red = lab_to_rgb(lab_image(50, 60, 40))
    blue = lab_to_rgb(lab_image(50, 10, -50))
    grey = lab_to_rgb(lab_image(50, 0, 0))
    assert M.psnr(blue, red) < M.psnr(grey, red)
    assert M.auc(rgb_to_lab(blue)[..., 1:], rgb_to_lab(red)[..., 1:]) < \
        M.auc(rgb_to_lab(grey)[..., 1:], rgb_to_lab(red)[..., 1:])
    # ...while colourfulness, which ignores *which* colour, sees no problem with blue.
    assert abs(M.colorfulness(blue) - M.colorfulness(red)) < M.colorfulness(red) - M.colorfulness(grey)


def test_mean_metrics_averages_each_key():
    a = dict.fromkeys(M.METRIC_KEYS, 1.0)
    b = dict.fromkeys(M.METRIC_KEYS, 3.0)
    assert M.mean_metrics([a, b]) == dict.fromkeys(M.METRIC_KEYS, 2.0)
    assert all(math.isnan(v) for v in M.mean_metrics([]).values())
