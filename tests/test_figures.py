import numpy as np

from colorlib.teaching.figures import (lab_axis_cmap, plot_colorization_grid, plot_lab_channels,
                                       plot_losses)


def test_lab_axis_colour_maps_are_grey_at_zero_and_coloured_at_the_ends():
    a, b = lab_axis_cmap(1), lab_axis_cmap(2)
    mid = np.array(a(0.5)[:3])
    assert np.ptp(mid) < 0.03  # a* = 0 is neutral grey
    red_end, green_end = np.array(a(1.0)[:3]), np.array(a(0.0)[:3])
    assert red_end[0] > red_end[1] and green_end[1] > green_end[0]
    yellow_end, blue_end = np.array(b(1.0)[:3]), np.array(b(0.0)[:3])
    assert yellow_end[:2].mean() > yellow_end[2] and blue_end[2] > blue_end[:2].mean()


def _shown(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


def test_lab_channels_show_the_photo_then_L_a_b_in_order(real_photos):
    from colorlib.photos.lab import rgb_to_lab

    rgb = real_photos[0]
    fig = plot_lab_channels(rgb)
    assert len(fig.axes) == 4 + 3  # four images, three colour bars
    lab = rgb_to_lab(rgb)
    assert np.array_equal(_shown(fig.axes[0]), rgb)
    for ax, channel in zip(fig.axes[1:4], range(3)):
        np.testing.assert_allclose(_shown(ax), lab[..., channel], atol=1e-4)


def test_colorization_grid_puts_input_prediction_truth_in_rows_and_photos_in_columns():
    """Distinct photos and distinct ab per row, so a swapped row or column shows."""
    from colorlib.photos.lab import merge_lab

    rng = np.random.default_rng(0)
    L = rng.uniform(-0.8, 0.8, (3, 1, 16, 16)).astype(np.float32)
    pred = rng.uniform(-0.3, 0.3, (3, 2, 16, 16)).astype(np.float32)
    true = rng.uniform(-0.3, 0.3, (3, 2, 16, 16)).astype(np.float32)
    fig = plot_colorization_grid(L, pred, true, titles=["a", "b", "c"])
    assert len(fig.axes) == 9
    for i in range(3):
        column = fig.axes[i::3]  # subplots are stored row by row
        np.testing.assert_allclose(_shown(column[0]), (L[i, 0] + 1) / 2, atol=1e-6)
        np.testing.assert_allclose(_shown(column[1]), merge_lab(L[i], pred[i]), atol=1e-6)
        np.testing.assert_allclose(_shown(column[2]), merge_lab(L[i], true[i]), atol=1e-6)
        assert column[0].get_title() == "abc"[i]
    assert [fig.axes[r * 3].get_ylabel() for r in range(3)] == [
        "input (L)", "colorized", "ground truth"]
    named = plot_colorization_grid(L, np.zeros_like(pred), true,
                                   names=["input (L)", "L with ab = 0", "true colours"])
    assert [named.axes[r * 3].get_ylabel() for r in range(3)] == [
        "input (L)", "L with ab = 0", "true colours"]  # notebook 02's middle row is no model's


def test_loss_plot_draws_each_loss_in_its_panel_with_the_validation_curve():
    history = [{"step": i, "loss_G_L1": 1.0 / (i + 1), "loss_D": 0.5 + 0.01 * i}
               for i in range(1, 11)]
    val = [{"step": 5, "val_l1": 0.3}, {"step": 10, "val_l1": 0.2}]
    fig = plot_losses(history, val_history=val)
    l1_ax, gan_ax, val_ax = fig.axes
    np.testing.assert_allclose(l1_ax.lines[0].get_ydata(), [h["loss_G_L1"] for h in history])
    np.testing.assert_allclose(gan_ax.lines[0].get_ydata(), [h["loss_D"] for h in history])
    assert l1_ax.lines[0].get_label() == "loss_G_L1" and gan_ax.lines[0].get_label() == "loss_D"
    np.testing.assert_allclose(val_ax.lines[0].get_xdata(), [5, 10])
    np.testing.assert_allclose(val_ax.lines[0].get_ydata(), [0.3, 0.2])
    smoothed = plot_losses(history, smooth=3).axes[0].lines[1].get_ydata()
    np.testing.assert_allclose(smoothed, np.convolve([h["loss_G_L1"] for h in history],
                                                     np.ones(3) / 3, mode="valid"))


def test_patch_verdicts_give_one_score_per_patch_and_draw_over_the_photo(real_photos):
    import torch

    from colorlib.models.networks import ModelConfig, build_discriminator
    from colorlib.photos.image_files import resize_rgb
    from colorlib.photos.lab import split_lab
    from colorlib.teaching.figures import patch_verdicts, plot_patch_verdicts

    L, ab = split_lab(resize_rgb(real_photos[0], 64))
    net_D = build_discriminator(ModelConfig(size=64)).train()
    Lt, abt = torch.from_numpy(L)[None], torch.from_numpy(ab)[None]
    v = patch_verdicts(net_D, Lt, abt)
    assert v["score"].shape == (1, 6, 6) and v["stride"] == 8  # 64 px -> 6 x 6 verdicts
    assert ((v["score"] > 0) & (v["score"] < 1)).all()  # probabilities
    assert net_D.training  # the network's mode is left as it was
    hinge = patch_verdicts(net_D, Lt, abt, gan_mode="hinge")
    assert hinge["threshold"] == 0.0 and hinge["score"].shape == (1, 6, 6)
    fig = plot_patch_verdicts(L, [ab, np.zeros_like(ab)], ["real", "grey"], [v, v], field=70)
    assert len(fig.axes) == 5  # 2 x 2 panels and a colour bar
    assert "6 x 6 verdicts" in fig.axes[2].get_title()


def test_simulated_failures_keep_lightness_and_change_colour_where_expected(real_photos):
    from colorlib.photos.image_files import resize_rgb
    from colorlib.photos.lab import rgb_to_lab
    from colorlib.teaching.figures import (ab_error_map, flattest_spot, plot_failure_modes,
                                           simulate_colour_blob, simulate_colour_spill)

    photo = resize_rgb(real_photos[0], 96)
    truth_L = rgb_to_lab(photo)[..., 0]
    spill = simulate_colour_spill(photo)
    blob = simulate_colour_blob(photo, radius=10)
    for version in (spill, blob):
        assert np.abs(rgb_to_lab(version)[..., 0] - truth_L).mean() < 1.0  # lightness kept
    err = ab_error_map(blob, photo)
    r, c = flattest_spot(photo, 10)
    assert err[r, c] > 20  # the blob sits on the flattest spot
    assert np.median(err) < 1  # and nowhere else
    assert ab_error_map(spill, photo).mean() > 0.5
    fig = plot_failure_modes(photo, [("grey", rgb_to_lab(photo)[..., 0] / 100)])
    assert len(fig.axes) == 2 * 4 + 1


def test_ab_class_maps_draw_one_square_per_class():
    from colorlib.models.ab_classes import in_gamut_centres
    from colorlib.teaching.figures import plot_ab_classes

    centres = in_gamut_centres()
    values = np.linspace(0.1, 1.0, len(centres))
    fig = plot_ab_classes(centres, {"share": values, "weight": 1 / values})
    assert len(fig.axes) == 4
    drawn = fig.axes[0].images[0].get_array()
    assert np.isfinite(drawn).sum() == len(centres)


def test_every_committed_figure_has_a_caption_and_every_caption_a_figure():
    """figures/README.md describes exactly the files in figures/ (a regenerated figure that is
    new, or a caption whose figure was dropped, fails here)."""
    import re
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "figures"
    files = {p.name for p in folder.iterdir() if p.suffix in (".png", ".jpg", ".gif")}
    captioned = set(re.findall(r"^- `(\d\d_[a-z0-9_]+\.(?:png|jpg|gif))`", (folder / "README.md")
                               .read_text(), re.M))
    paired = set(re.findall(r"^- `(\d\d_[a-z0-9_]+\.png)`, `(\d\d_[a-z0-9_]+\.png)`",
                            (folder / "README.md").read_text(), re.M))
    captioned |= {name for pair in paired for name in pair}
    assert files - captioned == set(), "figures without a caption"
    assert captioned - files == set(), "captions without a figure"
