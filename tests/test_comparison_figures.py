"""The L1-vs-GAN comparison helpers: image grid, animated GIF, mean chroma."""
import numpy as np
import pytest
import torch
from PIL import Image

from colorlib.photos.lab import mean_chroma, normalize_ab
from colorlib.teaching.figures import plot_image_grid, save_comparison_gif


def test_gif_has_one_captioned_frame_per_image(tmp_path, real_photos):
    rgb = real_photos[0][:90, :120]
    grey = rgb.mean(axis=2).astype(np.uint8)
    path = save_comparison_gif([rgb, rgb.astype(np.float32) / 255, grey], ["a", "b", "c"],
                               tmp_path / "sub" / "cmp.gif", duration_ms=500)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 3 and gif.is_animated
        assert gif.size[0] == 120 and gif.size[1] > 90  # caption strip below the photo
        gif.seek(1)
        assert gif.info["duration"] == 500


def test_gif_shrinks_large_photos_and_rejects_mismatched_input(tmp_path, real_photos):
    big = real_photos[0]
    path = save_comparison_gif([big, big], ["x", "y"], tmp_path / "big.gif", max_side=100)
    h, w = big.shape[:2]
    fw, fh = round(w * 100 / max(h, w)), round(h * 100 / max(h, w))
    with Image.open(path) as gif:
        assert gif.size == (fw, fh + max(14, fh // 12))
    with pytest.raises(ValueError, match="differ in size"):
        save_comparison_gif([big, big[:50]], ["x", "y"], tmp_path / "bad.gif")
    with pytest.raises(ValueError, match="one label per image"):
        save_comparison_gif([big], ["x", "y"], tmp_path / "bad.gif")


def test_image_grid_layout(real_photos):
    rgb = real_photos[0][:40, :60]
    fig = plot_image_grid([[rgb, rgb[..., 0]], [rgb, rgb]], ["input", "output"], ["p1", "p2"])
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "input" and fig.axes[2].get_ylabel() == "p2"
    with pytest.raises(ValueError, match="every row needs 2 images"):
        plot_image_grid([[rgb]], ["input", "output"])


def test_mean_chroma_in_lab_units():
    ab = np.zeros((2, 4, 4), np.float32)
    assert mean_chroma(ab) == 0.0
    ab[0], ab[1] = normalize_ab(30.0), normalize_ab(-40.0)
    assert mean_chroma(ab) == pytest.approx(50.0, rel=1e-5)
    assert mean_chroma(torch.from_numpy(ab)[None].repeat(3, 1, 1, 1)) == pytest.approx(50.0, rel=1e-5)
    with pytest.raises(ValueError, match="2xHxW"):
        mean_chroma(np.zeros((3, 4, 4)))
