import numpy as np
import pytest
import torch

from colorlib.photos import lab


def test_normalisation_maps_ranges_to_unit_interval():
    assert lab.normalize_l(np.float32(0)) == -1 and lab.normalize_l(np.float32(100)) == 1
    assert lab.normalize_ab(np.float32(110)) == 1 and lab.normalize_ab(np.float32(-110)) == -1
    x = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(lab.normalize_l(lab.denormalize_l(x)), x)
    np.testing.assert_allclose(lab.normalize_ab(lab.denormalize_ab(x)), x)


def test_numpy_round_trip_on_real_photos(real_photos):
    for rgb in real_photos:
        back = lab.lab_to_rgb(lab.rgb_to_lab(rgb))
        assert back.shape == rgb.shape
        assert np.abs(back * 255 - rgb).max() < 1.0  # within one 8-bit level


def test_split_merge_round_trip(real_photos):
    rgb = real_photos[0][:64, :80]
    L, ab = lab.split_lab(rgb)
    assert L.shape == (1, 64, 80) and ab.shape == (2, 64, 80)
    assert -1 <= L.min() and L.max() <= 1 and np.abs(ab).max() <= 1
    np.testing.assert_allclose(lab.merge_lab(L, ab) * 255, rgb, atol=1.0)


def _extreme_colours() -> np.ndarray:
    corners = np.array(np.meshgrid([0, 255], [0, 255], [0, 255])).reshape(3, -1).T
    ramps = np.stack([np.arange(256)] * 3, 1)
    rng = np.random.default_rng(0)
    return np.concatenate([corners, ramps, rng.integers(0, 256, (4096, 3))]).astype(np.uint8)


def test_tensor_round_trip_and_gamut_clipping():
    rgb = torch.from_numpy(_extreme_colours()[:4096].reshape(1, 64, 64, 3)).permute(0, 3, 1, 2)
    back = lab.lab_tensor_to_rgb(*lab.rgb_to_lab_tensor(rgb))
    assert torch.allclose(back * 255, rgb.float(), atol=0.6)
    # Far outside the gamut: must clip to [0, 1], no NaN, on both paths.
    L = torch.full((1, 1, 4, 4), 0.2)
    ab = torch.tensor([3.0, -3.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
    out = lab.lab_tensor_to_rgb(L, ab)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    wild = np.array([[[60.0, 330.0, -330.0]]])
    out_np = lab.lab_to_rgb(wild)
    assert np.isfinite(out_np).all() and out_np.min() >= 0 and out_np.max() <= 1


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match="HxWx3"):
        lab.rgb_to_lab(np.zeros((4, 4)))


def test_pixel_chroma_is_the_distance_from_grey_in_lab_units():
    import torch

    from colorlib.photos.lab import mean_chroma, normalize_ab, pixel_chroma

    ab = np.zeros((2, 2, 3), np.float32)
    ab[:, 0, 0] = normalize_ab(np.array([30.0, 40.0]))  # chroma 50
    chroma = pixel_chroma(ab)
    assert chroma.shape == (2, 3)
    assert chroma[0, 0] == pytest.approx(50.0, abs=1e-4) and chroma[1, 2] == 0.0
    batch = torch.from_numpy(np.stack([ab, ab]))
    assert pixel_chroma(batch).shape == (2, 2, 3)
    assert mean_chroma(batch) == pytest.approx(50.0 / 6, abs=1e-4)
    with pytest.raises(ValueError, match="2xHxW"):
        pixel_chroma(np.zeros((3, 4, 4)))


def test_in_srgb_gamut_agrees_with_an_unclipped_conversion(real_photos):
    import kornia.color

    photo_lab = lab.rgb_to_lab(real_photos[0])
    assert lab.in_srgb_gamut(photo_lab).all()  # every real pixel is displayable
    assert not lab.in_srgb_gamut(np.array([50.0, 100.0, 100.0]))
    assert lab.in_srgb_gamut(np.array([50.0, 0.0, 0.0]))
    values = np.linspace(-110, 110, 45)
    grid = np.stack(np.meshgrid(np.linspace(0, 100, 21), values, values, indexing="ij"), -1)
    t = torch.from_numpy(grid.reshape(-1, 3).T.reshape(3, -1, 1).astype(np.float32))
    raw = kornia.color.lab_to_rgb(t, clip=False).numpy().reshape(3, -1)
    kornia_in = ((raw >= -1e-3) & (raw <= 1 + 1e-3)).all(axis=0)
    ours = lab.in_srgb_gamut(grid.reshape(-1, 3))
    assert (ours == kornia_in).mean() > 0.995
