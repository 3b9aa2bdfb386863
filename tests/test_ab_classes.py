"""Colour as classification (Zhang et al. 2016): bins, annealed mean, class rebalancing."""
import numpy as np
import pytest

from colorlib.models.ab_classes import (annealed_mean, class_distribution, grid_centres,
                                        in_gamut_centres, nearest_class, rebalancing_weights)


def test_only_displayable_squares_are_classes():
    centres = in_gamut_centres()
    assert len(grid_centres()) == 23 * 23
    assert 150 < len(centres) < 23 * 23
    as_set = {tuple(c) for c in centres}
    assert (0.0, 0.0) in as_set  # grey
    assert (110.0, -110.0) not in as_set  # no screen shows that


def test_annealed_mean_runs_from_the_mean_to_the_mode():
    centres = np.array([[60.0, 40.0], [0.0, -50.0], [-50.0, 40.0]])  # red, blue, green
    probs = np.array([0.45, 0.35, 0.20])
    assert annealed_mean(probs, centres, T=1.0) == pytest.approx(probs @ centres)
    assert annealed_mean(probs, centres, T=0.01) == pytest.approx(centres[0], abs=1e-3)
    chroma = [np.hypot(*annealed_mean(probs, centres, T)) for T in (1.0, 0.38, 0.05)]
    assert chroma[0] < chroma[1] < chroma[2]
    with pytest.raises(ValueError):
        annealed_mean(probs, centres, T=0)


def test_rebalancing_weights_favour_rare_colours_and_average_to_one():
    centres = in_gamut_centres()
    rng = np.random.default_rng(0)
    ab = np.concatenate([rng.normal(0, 4, (9000, 2)), rng.normal([60, 50], 4, (1000, 2))])
    p = class_distribution(ab, centres)
    assert p.sum() == pytest.approx(1.0)
    w = rebalancing_weights(p, centres)
    grey, vivid = nearest_class(np.array([[0.0, 0.0], [60.0, 50.0]]), centres)
    assert w[vivid] > w[grey]
    smooth_avg = rebalancing_weights(p, centres, lam=1.0)
    assert smooth_avg == pytest.approx(np.ones(len(centres)))
