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
