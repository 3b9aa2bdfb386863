import numpy as np

from colorlib.figures import lab_axis_cmap, plot_colorization_grid, plot_lab_channels, plot_losses


def test_lab_axis_colour_maps_are_grey_at_zero_and_coloured_at_the_ends():
    a, b = lab_axis_cmap(1), lab_axis_cmap(2)
    mid = np.array(a(0.5)[:3])
    assert np.ptp(mid) < 0.03  # a* = 0 is neutral grey
    red_end, green_end = np.array(a(1.0)[:3]), np.array(a(0.0)[:3])
    assert red_end[0] > red_end[1] and green_end[1] > green_end[0]
    yellow_end, blue_end = np.array(b(1.0)[:3]), np.array(b(0.0)[:3])
    assert yellow_end[:2].mean() > yellow_end[2] and blue_end[2] > blue_end[:2].mean()


def test_plot_helpers_return_figures_with_the_expected_panels(real_photos):
    fig = plot_lab_channels(real_photos[0])
    assert len(fig.axes) == 4 + 3  # four images, three colour bars
    L = np.zeros((3, 1, 16, 16), np.float32)
    ab = np.zeros((3, 2, 16, 16), np.float32)
    assert len(plot_colorization_grid(L, ab, ab).axes) == 9
    history = [{"step": i, "loss_G_L1": 1.0 / (i + 1), "loss_D": 0.5} for i in range(10)]
    fig = plot_losses(history, smooth=3)
    assert len(fig.axes) == 2


def test_patch_verdicts_give_one_score_per_patch_and_draw_over_the_photo(real_photos):
    import torch

    from colorlib.figures import patch_verdicts, plot_patch_verdicts
    from colorlib.images import resize_rgb
    from colorlib.lab import split_lab
    from colorlib.networks import ModelConfig, build_discriminator

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
    from colorlib.figures import (ab_error_map, flattest_spot, plot_failure_modes,
                                  simulate_colour_blob, simulate_colour_spill)
    from colorlib.images import resize_rgb
    from colorlib.lab import rgb_to_lab

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
    from colorlib.ab_classes import in_gamut_centres
    from colorlib.figures import plot_ab_classes

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
