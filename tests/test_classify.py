"""The classify stage (issue 23): Zhang et al.'s colour classes, trained, decoded and shipped.

Each test can fail: the targets, weights and decodings are checked against values worked
out independently (numpy, or a per-pixel Python loop on a few pixels), and the stub network
colours a photo with one known class, end to end through ``Colorizer`` and the CLI.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from colorlib.models import ab_classes
from colorlib.models.classify import (DECODINGS, ClassUnet, class_centres, decode_ab, decodings,
                                      dense_targets, measure_class_prior, nearest_class,
                                      rebalanced_cross_entropy, soft_encode)
from colorlib.photos.lab import AB_SCALE

CENTRES = torch.tensor(class_centres(), dtype=torch.float32)
Q = len(CENTRES)


def _random_ab(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` a*b* values (Lab units) spread over the classes, some exactly on a centre."""
    g = torch.Generator().manual_seed(seed)
    near = CENTRES[torch.randint(Q, (n,), generator=g)] + 7 * torch.randn(n, 2, generator=g)
    near[: n // 8] = CENTRES[torch.randint(Q, (n // 8,), generator=g)]
    return near


# ------------------------------------------------------------------ the classes
def test_q_is_the_in_gamut_grid_and_smaller_than_zhangs():
    assert Q == len(ab_classes.in_gamut_centres()) == 226  # reported against Zhang's 313
    assert {(0.0, 0.0), (20.0, 30.0)} <= {tuple(c) for c in class_centres().tolist()}


# ------------------------------------------------------------------ soft encoding
def test_soft_encoding_sums_to_one_and_peaks_at_the_true_bin():
    ab = _random_ab(4000)
    index, weight = soft_encode(ab, CENTRES)
    assert index.shape == weight.shape == (4000, 5)
    torch.testing.assert_close(weight.sum(-1), torch.ones(4000))
    # the nearest class (worked out by numpy, independently) gets the largest weight
    true_bin = torch.from_numpy(ab_classes.nearest_class(ab.numpy(), class_centres()))
    dense = dense_targets(index, weight, Q)
    assert torch.equal(dense.argmax(-1), true_bin)
    assert (dense > 0).sum(-1).eq(5).all()  # five classes share each colour, no more
    # Gaussian weights of sigma 5 over the five nearest: a colour on a centre has the
    # weight exp(0) against four neighbours at distance 10 (exp(-2)) ... recomputed here
    on_centre = CENTRES[[0, 100]]
    _, w = soft_encode(on_centre, CENTRES)
    d2 = torch.cdist(on_centre, CENTRES).pow(2).sort(-1).values[:, :5]
    expected = torch.exp(-d2 / 50)
    torch.testing.assert_close(w, expected / expected.sum(-1, keepdim=True))
    assert (w[:, :1] > w[:, 1:]).all()


def test_candidate_table_finds_the_same_nearest_classes_as_measuring_all():
    """soft_encode measures each colour against its 12 candidates only: the five nearest it
    finds equal a brute-force search over all Q classes, over the whole table's range."""
    g = torch.Generator().manual_seed(4)
    ab = (torch.rand(50_000, 2, generator=g) * 2 - 1) * 128
    index, weight = soft_encode(ab, CENTRES)
    brute = torch.cdist(ab.double(), CENTRES.double()).square().topk(5, dim=-1, largest=False)
    assert torch.equal(index, brute.indices)
    torch.testing.assert_close(weight, torch.softmax(-brute.values / 50, -1).float(),
                               atol=1e-4, rtol=0)  # float32 distances of up to 250 units
    # on the corners of the table's squares (odd a*, b*), the farthest from a square's centre;
    # ties between classes are common there, so the distances are compared, not the order
    corners = torch.round(ab[:2000] / 2) * 2 + 1
    index, _ = soft_encode(corners, CENTRES)
    found = (corners.double()[:, None] - CENTRES.double()[index]).square().sum(-1)
    brute = torch.cdist(corners.double(), CENTRES.double()).square().topk(5, largest=False)
    torch.testing.assert_close(found, brute.values, atol=1e-6, rtol=0)


# ------------------------------------------------------------------ the loss
def _loss_by_hand(logits: torch.Tensor, ab: torch.Tensor, class_weights: torch.Tensor) -> float:
    """Zhang et al.'s loss written the slow way: one pixel at a time, dense soft targets."""
    centres = CENTRES.double()
    total, n = 0.0, 0
    B, _, H, W = logits.shape
    for b in range(B):
        for y in range(H):
            for x in range(W):
                colour = ab[b, :, y, x].double() * AB_SCALE
                d2 = ((centres - colour) ** 2).sum(-1)
                near = d2.argsort()[:5]
                target = torch.zeros(Q, dtype=torch.float64)
                target[near] = torch.softmax(-d2[near] / 50, 0)
                log_p = torch.log_softmax(logits[b, :, y, x].double(), 0)
                total += float(class_weights[near[0]]) * float(-(target * log_p).sum())
                n += 1
    return total / n


def test_loss_matches_the_per_pixel_definition():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, Q, 3, 4, generator=g) * 3
    ab = _random_ab(24, seed=2).reshape(2, 3, 4, 2).permute(0, 3, 1, 2) / AB_SCALE
    weights = torch.rand(Q, generator=g) * 3
    got = rebalanced_cross_entropy(logits, ab, CENTRES, weights)
    assert got.item() == pytest.approx(_loss_by_hand(logits, ab, weights), rel=1e-5)


def _python_calls(fn) -> int:
    """How many Python and C functions ``fn()`` calls (the profiler's call events)."""
    count = [0]

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            count[0] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count[0]


def test_loss_is_vectorised_no_python_per_pixel():
    """The loss and its gradient make the same Python calls for 16 pixels as for 16,384:
    all per-pixel work happens inside torch's kernels."""
    def loss_and_grad(size: int):
        logits = torch.randn(4, Q, size, size, requires_grad=True)
        ab = _random_ab(4 * size * size).reshape(4, size, size, 2).permute(0, 3, 1, 2) / AB_SCALE
        weights = torch.rand(Q)
        return lambda: rebalanced_cross_entropy(logits, ab, CENTRES, weights).backward()

    small, large = loss_and_grad(2), loss_and_grad(64)
    small(), large()  # warm-up: lazy imports and caches on the first call
    assert _python_calls(small) == _python_calls(large) < 200


def test_uniform_scores_cost_log_q_times_the_mean_weight():
    ab = _random_ab(64).reshape(1, 8, 8, 2).permute(0, 3, 1, 2) / AB_SCALE
    ones = rebalanced_cross_entropy(torch.zeros(1, Q, 8, 8), ab, CENTRES, torch.ones(Q))
    assert ones.item() == pytest.approx(math.log(Q), rel=1e-6)
    doubled = rebalanced_cross_entropy(torch.zeros(1, Q, 8, 8), ab, CENTRES, 2 * torch.ones(Q))
    assert doubled.item() == pytest.approx(2 * math.log(Q), rel=1e-6)


# ------------------------------------------------------------------ decoding
def test_annealed_mean_runs_from_the_mean_at_t1_to_the_mode_as_t_falls():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, Q, 5, 6, generator=g) * 4
    # a clear winner per pixel (1 above the runner-up at least), so "approaches" has a scale
    top = logits.argmax(1, keepdim=True)
    logits.scatter_add_(1, top, torch.ones_like(top, dtype=logits.dtype))
    p = torch.softmax(logits.permute(0, 2, 3, 1), -1)
    mean = (p @ CENTRES).permute(0, 3, 1, 2)
    mode = CENTRES[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(decode_ab(logits, CENTRES, 1.0), mean, atol=1e-4, rtol=0)
    assert torch.equal(decode_ab(logits, CENTRES, 0.0), mode)
    gaps = [(decode_ab(logits, CENTRES, t) - mode).abs().max().item() for t in (0.38, 0.1, 0.01)]
    assert gaps[0] > gaps[1] >= gaps[2] and gaps[2] < 1e-3  # T -> 0 approaches the mode
    # the batch decoder and ab_classes' numpy one (notebook 04's toy) agree at Zhang's T
    numpy_decoded = ab_classes.annealed_mean(p.numpy(), class_centres(), 0.38)
    np.testing.assert_allclose(decode_ab(logits, CENTRES, 0.38).permute(0, 2, 3, 1).numpy(),
                               numpy_decoded, atol=1e-3)
    with pytest.raises(ValueError, match=">= 0"):
        decode_ab(logits, CENTRES, -0.1)


def _one_hot_net(k: int, size: int = 64, temperature: float = 0.38) -> ClassUnet:
    """The stub network: a real ClassUnet whose last layer ignores its input and scores
    class ``k`` 30 above every other class, for every pixel of every photo."""
    from colorlib.models.networks import ModelConfig, build_generator

    torch.manual_seed(0)
    net = build_generator(ModelConfig(arch="resnet18_unet", size=size, classes=Q,
                                      temperature=temperature), weights=None)
    last = [m for m in net.body.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.out_channels == Q and last.bias is not None
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[k] = 30.0
    return net.eval()


def test_decodings_of_one_pass():
    k = int(nearest_class(torch.tensor([[20.0, 30.0]]), CENTRES))
    body = torch.nn.Conv2d(1, Q, 1)  # a stub body: the same one-hot scores for every pixel
    with torch.no_grad():
        body.weight.zero_()
        body.bias.zero_()
        body.bias[k] = 30.0
    net = ClassUnet(body, class_centres()).train()
    out = decodings(net, torch.zeros(2, 1, 64, 64))
    assert list(out) == list(DECODINGS) and net.training  # put back in the mode it was in
    for ab in out.values():  # a one-hot distribution: mode, mean and annealed mean agree
        torch.testing.assert_close(ab * AB_SCALE, CENTRES[k].view(1, 2, 1, 1).expand(2, 2, 64, 64),
                                   atol=1e-3, rtol=0)


# ------------------------------------------------------------------ rebalancing
def test_rebalancing_weights_average_one_per_pixel_on_the_training_distribution(tiny_root):
    from colorlib.data.loading import ColorizationDataset
    from colorlib.data.sources import DataConfig, resolve_source

    train_paths = resolve_source(DataConfig(source="tiny", size=32))[0][::4]  # 48 photos
    dataset = ColorizationDataset(train_paths, 32, lab=False)
    prior = measure_class_prior(dataset, CENTRES)
    assert prior.sum() == pytest.approx(1.0)
    net = ClassUnet(torch.nn.Identity(), class_centres())
    net.set_class_weights(prior)
    # every training pixel, classified again here, with the weight the loss gives it
    ab = torch.cat([_ab_of(dataset, i) for i in range(len(dataset))])
    per_pixel = net.class_weights[nearest_class(ab, CENTRES)]
    assert per_pixel.double().mean().item() == pytest.approx(1.0, abs=1e-4)
    grey, vivid = nearest_class(torch.tensor([[0.0, 0.0], [40.0, 50.0]]), CENTRES)
    assert net.class_weights[vivid] > 2 * net.class_weights[grey]  # paid for daring
    net.set_class_weights(prior, rebalance=False)  # the ablation: plain cross-entropy
    assert torch.equal(net.class_weights, torch.ones(Q))


def _ab_of(dataset, i: int) -> torch.Tensor:
    """One photo's a*b* (N, 2, Lab units) through the numpy colour path, not the loader's."""
    from colorlib.photos.lab import rgb_to_lab

    rgb = np.asarray(dataset.pixels(i)).transpose(1, 2, 0)  # the dataset keeps 3xHxW
    return torch.from_numpy(rgb_to_lab(rgb)[..., 1:].reshape(-1, 2).astype(np.float32))


# ------------------------------------------------------------------ whole photos
@pytest.fixture(scope="module")
def one_hot_checkpoint(tmp_path_factory):
    """A classify checkpoint (full, resumable format) holding the one-hot stub, and its class."""
    from colorlib.models.networks import ModelConfig
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    k = int(nearest_class(torch.tensor([[20.0, 30.0]]), CENTRES))  # a warm orange
    trainer = Trainer.build(ModelConfig(arch="resnet18_unet", size=64, classes=Q),
                            TrainConfig(stage="classify"), device="cpu", weights=None)
    trainer.net_G.load_state_dict(_one_hot_net(k).state_dict())
    return trainer.save(tmp_path_factory.mktemp("stub") / "classify.pt"), k


def _mid_grey_photo(tmp_path):
    from PIL import Image

    path = tmp_path / "grey.png"
    Image.new("RGB", (80, 48), (119, 119, 119)).save(path)  # L* about 50
    return path


def _ab_of_file(path) -> np.ndarray:
    from colorlib.photos.image_files import load_rgb
    from colorlib.photos.lab import rgb_to_lab

    return rgb_to_lab(load_rgb(path))[..., 1:].reshape(-1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [None, 0.0, 1.0])
def test_one_hot_stub_colours_a_photo_with_its_class_through_colorizer(one_hot_checkpoint,
                                                                       tmp_path, temperature):
    from colorlib.inference.colorizer import Colorizer
    from colorlib.photos.image_files import load_rgb
    from colorlib.photos.lab import rgb_to_lab

    ckpt, k = one_hot_checkpoint
    colorizer = Colorizer.load(ckpt, temperature=temperature)
    assert colorizer.config.classes == Q
    assert colorizer.config.temperature == (0.38 if temperature is None else temperature)
    out = colorizer(load_rgb(_mid_grey_photo(tmp_path)))
    ab = rgb_to_lab(out)[..., 1:].reshape(-1, 2)
    np.testing.assert_allclose(ab, np.broadcast_to(class_centres()[k], ab.shape), atol=1.5)
    assert f"T = {colorizer.config.temperature:g}" in colorizer.provenance


@pytest.mark.slow
def test_one_hot_stub_colours_a_photo_with_its_class_through_the_cli(one_hot_checkpoint,
                                                                     tmp_path, capsys):
    from colorlib.cli import main

    ckpt, k = one_hot_checkpoint
    photo = _mid_grey_photo(tmp_path)
    assert main(["colorize", str(photo), "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "out"), "--temperature", "0"]) == 0
    ab = _ab_of_file(tmp_path / "out" / "grey.png")
    np.testing.assert_allclose(ab, np.broadcast_to(class_centres()[k], ab.shape), atol=1.5)
    assert np.abs(_ab_of_file(photo)).max() < 0.01  # the input was grey: the colour is the class's


# ------------------------------------------------------------------ train, resume, export
def _run(folder, ckpt_dir, max_steps: int, **train):
    from colorlib.data.sources import DataConfig
    from colorlib.training.config import RunConfig, TrainConfig

    return RunConfig(TrainConfig(stage="classify", epochs=5, max_steps=max_steps, **train),
                     DataConfig(source=str(folder), size=32, batch_size=4),
                     checkpoint_dir=ckpt_dir, weights=None, progress=False, resume=True,
                     device="cpu")


@pytest.mark.slow
def test_checkpoint_stores_the_prior_measured_on_the_training_photos(photo_folder, tmp_path):
    from colorlib.data.loading import ColorizationDataset
    from colorlib.data.sources import resolve_source
    from colorlib.training.checkpoint import load_checkpoint
    from colorlib.training.runner import train_stage

    result = train_stage(_run(photo_folder, tmp_path / "ck", 1), log=lambda msg: None)
    stored = load_checkpoint(result.checkpoint, stage="classify")
    assert stored["model"]["classes"] == Q and stored["model"]["temperature"] == 0.38
    prior = stored["generator"]["class_prior"].double().numpy()
    # the same shares, counted independently: numpy Lab and numpy nearest class, photo by photo
    train_paths = resolve_source(_run(photo_folder, tmp_path, 1).data)[0]
    assert len(train_paths) == 12
    dataset = ColorizationDataset(train_paths, 32, lab=False)
    ab = np.concatenate([_ab_of(dataset, i).numpy() for i in range(len(dataset))])
    np.testing.assert_allclose(prior, ab_classes.class_distribution(ab, class_centres()),
                               atol=2e-4)
    expected_w = ab_classes.rebalancing_weights(prior, class_centres().astype(np.float64))
    np.testing.assert_allclose(stored["generator"]["class_weights"].numpy(), expected_w, rtol=1e-5)
    torch.testing.assert_close(stored["generator"]["centres"], CENTRES, rtol=0, atol=0)


@pytest.mark.slow
def test_resume_is_exact_and_keeps_the_stored_weights(photo_folder, tmp_path):
    """Two steps, then one more on resume, equal three steps in one go, bitwise; the resume
    reads the class weights from the checkpoint instead of measuring them again."""
    from colorlib.training.checkpoint import load_checkpoint
    from colorlib.training.runner import train_stage

    def logged(lines):
        return lambda msg: lines.append(str(msg))

    straight = train_stage(_run(photo_folder, tmp_path / "a", 3), log=lambda msg: None)
    first, second = [], []
    train_stage(_run(photo_folder, tmp_path / "b", 2), log=logged(first))
    resumed = train_stage(_run(photo_folder, tmp_path / "b", 3), log=logged(second))
    assert any("measured the a*b* class shares" in line for line in first)
    assert not any("measured" in line for line in second)  # read from the checkpoint
    a = load_checkpoint(straight.checkpoint)
    b = load_checkpoint(resumed.checkpoint)
    assert a["step"] == b["step"] == 3
    for key, value in a["generator"].items():
        assert torch.equal(value, b["generator"][key]), key
    assert [h["loss_G_class"] for h in a["history"]] == [h["loss_G_class"] for h in b["history"]]
    # the ablation's flag is part of the run's settings: a resume with the other one is refused
    from colorlib.training.checkpoint import CheckpointError

    with pytest.raises((CheckpointError, ValueError), match="--no-rebalance"):
        train_stage(_run(photo_folder, tmp_path / "b", 4, rebalance=False), log=lambda msg: None)


@pytest.mark.slow
def test_export_loads_and_colours_like_the_checkpoint(photo_folder, tmp_path, real_photos):
    from colorlib.inference.colorizer import Colorizer
    from colorlib.inference.export import export_generator
    from colorlib.training.checkpoint import load_checkpoint
    from colorlib.training.runner import train_stage

    result = train_stage(_run(photo_folder, tmp_path / "ck", 2), log=lambda msg: None)
    exported = export_generator(result.checkpoint)
    small = load_checkpoint(exported)
    assert small["model"]["classes"] == Q
    torch.testing.assert_close(small["generator"]["centres"].float(), CENTRES, rtol=0, atol=0)
    full = load_checkpoint(result.checkpoint)["generator"]["class_prior"]
    assert torch.equal(small["generator"]["class_prior"], full)  # class buffers kept at float32
    photo = real_photos[0][:48, :64]
    for t in (None, 0.0):
        a = Colorizer.load(result.checkpoint, temperature=t)(photo)
        b = Colorizer.load(exported, temperature=t)(photo)
        # half-precision weights: the mode may flip between neighbouring classes on a few
        # pixels; the annealed mean moves by a fraction of an 8-bit level
        limit = 0.01 if t is None else 0.05
        assert np.abs(a - b).mean() < limit


@pytest.mark.slow
def test_cli_train_resume_export_colorize_evaluate(photo_folder, tmp_path, capsys):
    import json

    from colorlib.cli import main

    ck = tmp_path / "ck"
    common = ["train", "--stage", "classify", "--data", str(photo_folder), "--size", "32",
              "--batch-size", "4", "--checkpoint-dir", str(ck), "--weights", "none",
              "--no-progress", "--device", "cpu"]
    assert main([*common, "--max-steps", "1"]) == 0
    assert main([*common, "--max-steps", "2", "--resume"]) == 0
    assert "Resumed classify" in capsys.readouterr().out
    assert main(["export", str(ck / "classify.pt")]) == 0
    val = sorted((photo_folder / "val").iterdir())
    assert main(["colorize", *map(str, val[:2]), "--checkpoint", str(ck / "classify-generator.pt"),
                 "--out", str(tmp_path / "out")]) == 0
    assert main(["evaluate", "--checkpoint", str(ck / "classify.pt"), "--data",
                 str(photo_folder / "val"), "--no-progress", "--temperature", "1",
                 "--json", str(tmp_path / "ev.json")]) == 0
    report = json.loads((tmp_path / "ev.json").read_text())
    assert report["images"] == len(val) and report["settings"]["temperature"] == 1.0
    capsys.readouterr()
    # --temperature means nothing to a regression generator, and says so
    assert main(["train", "--stage", "pretrain", "--data", str(photo_folder), "--size", "32",
                 "--batch-size", "4", "--checkpoint-dir", str(ck), "--weights", "none",
                 "--no-progress", "--device", "cpu", "--max-steps", "1"]) == 0
    capsys.readouterr()
    assert main(["colorize", str(val[0]), "--checkpoint", str(ck / "pretrain.pt"), "--out",
                 str(tmp_path / "o2"), "--temperature", "0.5"]) != 0
    assert "only applies to a generator of colour classes" in capsys.readouterr().err
    # --no-rebalance belongs to the classify stage alone
    assert main(["train", "--stage", "pretrain", "--checkpoint-dir", str(tmp_path / "x"),
                 "--no-rebalance"]) != 0


# ------------------------------------------------------------------ helpers around the stage
def test_final_stage_is_never_the_side_road():
    from colorlib.models.stages import MAIN_ROAD, final_stage

    assert MAIN_ROAD == ("baseline", "pretrain", "gan")
    assert final_stage(["baseline", "pretrain", "gan", "classify"]) == "gan"
    assert final_stage(["classify", "pretrain"]) == "pretrain"
    with pytest.raises(ValueError):
        final_stage(["classify"])


def test_winners_say_which_metric_each_model_wins():
    from colorlib.teaching.published_results import winners, winners_in_words

    truth = {"colorfulness_truth": 30.0, "grey_fraction_truth": 0.2}
    results = {"scores": {
        "colorlib_pretrain": {"psnr": 24.0, "ssim": 0.95, "auc": 90.0, "colorfulness": 12.0,
                              "delta_colorfulness": 18.0, "grey_fraction": 0.55, **truth},
        "colorlib_classify": {"psnr": 23.0, "ssim": 0.95, "auc": 91.0, "colorfulness": 33.0,
                              "delta_colorfulness": -3.0, "grey_fraction": 0.1, **truth}}}
    won = winners(results, "colorlib_pretrain", "colorlib_classify")
    assert won == {"psnr": "colorlib_pretrain", "ssim": None, "auc": "colorlib_classify",
                   "colorfulness": "colorlib_classify", "delta_colorfulness": "colorlib_classify",
                   "grey_fraction": "colorlib_classify"}
    words = winners_in_words(results, "colorlib_pretrain", "colorlib_classify")
    assert words.startswith("ResNet18 U-Net, L1 pretraining wins PSNR dB;")
    assert "equal on SSIM" in words


def test_plot_ab_versions_titles_carry_each_versions_numbers():
    from colorlib.teaching.figures import plot_ab_versions, version_stats

    L = torch.zeros(2, 1, 8, 8)
    grey, vivid = torch.zeros(2, 2, 8, 8), torch.full((2, 2, 8, 8), 30 / AB_SCALE)
    fig = plot_ab_versions(L, {"L1": grey, "classes": vivid}, true_ab=vivid,
                           row_titles=["a", "b"])
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles[0] == "input (L)"
    assert titles[1] == "L1\nchroma 0.0, grey 100%"
    assert titles[2] == f"classes\nchroma {30 * math.sqrt(2):.1f}, grey 0%"
    assert titles[3].startswith("true colours")
    assert version_stats(vivid)["grey_fraction"] == 0.0
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------ leftovers of issue 23
def _uneven_prior() -> np.ndarray:
    """Class shares as uneven as photos' (a few grey classes hold most pixels), with some of
    the rarest under float16's smallest number (6e-8) and many under its normal range."""
    prior = np.random.default_rng(0).dirichlet(np.full(Q, 0.05))
    prior[:3] = [1e-9, 2e-8, 3e-6]
    return prior / prior.sum()


@pytest.fixture(scope="module")
def exported_classify(tmp_path_factory):
    """A classify checkpoint (untrained, 32 px) with uneven class buffers, and its export."""
    from colorlib.inference.export import export_generator
    from colorlib.models.networks import ModelConfig
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    trainer = Trainer.build(ModelConfig(arch="resnet18_unet", size=32, classes=Q),
                            TrainConfig(stage="classify"), device="cpu", weights=None)
    trainer.net_G.set_class_weights(_uneven_prior())
    ckpt = trainer.save(tmp_path_factory.mktemp("uneven") / "classify.pt")
    return ckpt, export_generator(ckpt)


def test_export_keeps_the_class_buffers_at_full_precision(exported_classify):
    """Issue 23: export stored the bin centres, rebalancing weights and class shares in
    float16. They are the checkpoint's, exactly, and decode the same colours from the same
    class scores; the weights are still halved."""
    from colorlib.models.classify import CLASS_BUFFERS
    from colorlib.training.checkpoint import load_checkpoint

    ckpt, exported = exported_classify
    full, small = load_checkpoint(ckpt)["generator"], load_checkpoint(exported)["generator"]
    for name in CLASS_BUFFERS:
        assert small[name].dtype == torch.float32, name
        assert torch.equal(small[name], full[name]), name
    assert (small["class_prior"] > 0).sum() == (full["class_prior"] > 0).sum()  # none lost
    halved = [k for k, v in small.items() if v.dtype == torch.float16]
    assert len(halved) > 0.9 * len([k for k, v in full.items() if v.is_floating_point()])
    scores = torch.randn(2, Q, 8, 8, generator=torch.Generator().manual_seed(1))
    for t in (0.0, 0.38, 1.0):
        assert torch.equal(decode_ab(scores, small["centres"], t),
                           decode_ab(scores, full["centres"], t))


@pytest.mark.slow
def test_an_exported_classify_model_colours_a_photo_like_its_checkpoint(exported_classify):
    """Through the half-precision network, a whole photo's colours stay within a mean 0.005
    (RGB in [0, 1]) of the checkpoint's, at the stored T = 0.38 and at T = 1. (The mode,
    T = 0, may flip between neighbouring classes on a few pixels, so it is not compared.)"""
    from robust_helpers import gradient

    from colorlib.inference.colorizer import Colorizer

    ckpt, exported = exported_classify
    photo = gradient(48, 64)
    for t in (None, 1.0):
        a, b = Colorizer.load(ckpt, temperature=t), Colorizer.load(exported, temperature=t)
        assert np.abs(a(photo) - b(photo)).mean() < 0.005


@pytest.mark.parametrize("stage", ["classify", "baseline"])
def test_init_from_a_checkpoint_that_is_not_pretrain_is_one_line(tmp_path, stage,
                                                                  exported_classify):
    """Issue 23: --init naming a classify checkpoint failed with torch's page of state_dict
    keys. Refused before any data is read, naming the file, its stage and what --init needs."""
    import contextlib
    import io
    import shutil

    from robust_helpers import error_lines, tiny_checkpoint

    from colorlib.cli import main
    from colorlib.models.networks import ModelConfig
    from colorlib.training.checkpoint import CheckpointError
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    path = tmp_path / f"{stage}.pt"
    if stage == "classify":
        shutil.copy(exported_classify[0], path)
    else:
        tiny_checkpoint(path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--stage", "gan", "--init", str(path), "--data", "tiny", "--size",
                     "32", "--device", "cpu", "--no-progress", "--checkpoint-dir",
                     str(tmp_path / "ck")])
    (line,) = error_lines(err.getvalue())
    assert code == 2
    assert line.startswith(f"colorlib: error: --init: {path} is a '{stage}' checkpoint (")
    assert line.endswith("--init needs a pretrain checkpoint (e.g. <checkpoint-dir>/pretrain.pt, "
                         "or its export)")
    assert not (tmp_path / "ck" / "gan.pt").exists()
    with pytest.raises(CheckpointError, match=f"is a '{stage}' checkpoint"):  # the API says it too
        Trainer.build(ModelConfig(arch="resnet18_unet", size=32), TrainConfig(stage="gan"),
                      "cpu", weights=None, init=path)
