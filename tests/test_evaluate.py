"""``colorlib evaluate`` and colorlib.inference.evaluate on a few real photos with a tiny checkpoint."""
import json
import shutil

import numpy as np
import pytest

from colorlib.cli import EXIT_ERROR, EXIT_FAILED, main
from colorlib.inference.evaluate import (evaluate_paths, find_eval_images, format_table,
                                         greyscale_version, limit_side)
from colorlib.photos.image_files import load_rgb
from colorlib.photos.lab import rgb_to_lab
from colorlib.photos.metrics import PSNR_CAP

KEYS = {"psnr", "ssim", "auc", "colorfulness", "delta_colorfulness", "grey_fraction",
        "grey_fraction_truth", "colorfulness_truth"}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_root):
    """A small pix2pix generator trained for two steps on real crops: enough to have weights."""
    import torch

    from colorlib.models.networks import ModelConfig
    from colorlib.photos.image_files import resize_rgb
    from colorlib.photos.lab import rgb_to_lab_tensor
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    crops = [resize_rgb(load_rgb(p), 32) for p in sorted((tiny_root / "train").glob("*.png"))[::20]]
    L, ab = rgb_to_lab_tensor(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2))
    trainer = Trainer.build(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                            TrainConfig(stage="baseline"), device="cpu", weights=None)
    for _ in range(2):
        trainer.train_step(L, ab)
        trainer.state.step += 1
    return trainer.save(tmp_path_factory.mktemp("ckpt") / "baseline.pt")


@pytest.fixture()
def eval_folder(tmp_path, tiny_root):
    """Three held-out crops, one full photo in a subfolder, and one broken file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for p in sorted((tiny_root / "val").glob("*.png"))[::9][:3]:
        shutil.copy(p, folder / p.name)
    shutil.copy(sorted((tiny_root / "photos").glob("*.png"))[0], folder / "sub" / "photo.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


def test_report_has_the_promised_shape(tiny_checkpoint, eval_folder):
    paths = find_eval_images(eval_folder)
    assert len(paths) == 5
    report = evaluate_paths(paths, checkpoint=tiny_checkpoint, progress=False)
    assert report["images"] == 4 and len(report["per_image"]) == 4
    assert [f["file"] for f in report["failed"]] == [str(eval_folder / "broken.jpg")]
    assert KEYS <= set(report["model"]) and KEYS <= set(report["baselines"]["greyscale"])
    grey = report["baselines"]["greyscale"]
    assert grey["grey_fraction"] == pytest.approx(1.0)
    assert grey["colorfulness"] == pytest.approx(0.0, abs=0.5)
    assert grey["delta_colorfulness"] == pytest.approx(grey["colorfulness_truth"], abs=0.5)
    for rec in report["per_image"]:  # full resolution: the photo's own size
        h, w = load_rgb(rec["file"]).shape[:2]
        assert (rec["height"], rec["width"]) == (h, w)
    table = format_table(report)
    assert "PSNR" in table and "greyscale baseline" in table and "4 image(s)" in table
    json.dumps(report)  # plain JSON values only


def test_an_oracle_scores_perfectly_and_grey_matches_the_baseline(eval_folder):
    path = sorted(eval_folder.glob("*.png"))[0]
    truth = load_rgb(path)
    oracle = evaluate_paths([path], colorize_fn=lambda grey: truth / 255.0, progress=False)
    assert oracle["model"]["auc"] == pytest.approx(100.0)
    assert oracle["model"]["delta_colorfulness"] == pytest.approx(0.0, abs=1e-6)
    assert oracle["model"]["psnr"] == PSNR_CAP
    same = evaluate_paths([path], colorize_fn=lambda grey: grey, progress=False)
    for k in ("psnr", "ssim", "auc", "colorfulness"):
        assert same["model"][k] == pytest.approx(same["baselines"]["greyscale"][k])


def test_the_model_only_ever_sees_lightness(eval_folder):
    path = sorted(eval_folder.glob("*.png"))[1]
    seen = []

    def spy(grey):
        seen.append(grey)
        return grey

    evaluate_paths([path], colorize_fn=spy, progress=False, baseline=False)
    lab = rgb_to_lab(seen[0])
    assert np.abs(lab[..., 1:]).max() < 1.0  # no colour reaches the model
    assert np.allclose(lab[..., 0], rgb_to_lab(load_rgb(path))[..., 0], atol=0.5)


def test_limit_side_shrinks_and_never_enlarges():
    img = np.zeros((100, 300, 3), np.uint8)
    assert limit_side(img, 150).shape == (50, 150, 3)
    assert limit_side(img, 1000).shape == img.shape
    assert limit_side(img, None) is img


def test_greyscale_version_keeps_lightness(real_photos):
    lab = rgb_to_lab(real_photos[0][:32, :32])
    grey = greyscale_version(lab)
    assert np.ptp(grey, axis=2).max() < 1e-3  # R = G = B
    assert np.allclose(rgb_to_lab(grey)[..., 0], lab[..., 0], atol=0.5)


def test_needs_exactly_one_colorizer(eval_folder):
    with pytest.raises(ValueError, match="exactly one"):
        evaluate_paths(find_eval_images(eval_folder), progress=False)


# ------------------------------------------------------------------- CLI
def test_cli_writes_json_and_reports_bad_files(tiny_checkpoint, eval_folder, tmp_path, capsys):
    out = tmp_path / "report" / "eval.json"
    code = main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(eval_folder),
                 "--json", str(out), "--size", "48", "--no-progress"])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED  # ran, but one file failed
    assert "broken.jpg" in captured.err and "not counted" in captured.err
    assert "PSNR" in captured.out and "greyscale baseline" in captured.out
    report = json.loads(out.read_text())
    assert report["images"] == 4
    assert set(report) >= {"images", "model", "baselines", "per_image"}
    assert KEYS <= set(report["baselines"]["greyscale"])
    assert all(max(r["width"], r["height"]) <= 48 for r in report["per_image"])


def test_cli_clean_folder_exits_zero(tiny_checkpoint, eval_folder, capsys):
    (eval_folder / "broken.jpg").unlink()
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(eval_folder / "sub"),
                 "--no-progress"]) == 0
    assert "1 image(s)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "missing.pt"], "missing.pt"),
    (["--data", "no/such/folder"], "no/such/folder"),
])
def test_cli_errors_are_one_line(tiny_checkpoint, eval_folder, capsys, args, message):
    argv = {"--checkpoint": str(tiny_checkpoint), "--data": str(eval_folder)}
    argv.update(dict(zip(args[::2], args[1::2])))
    code = main(["evaluate", *[x for kv in argv.items() for x in kv], "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_ERROR
    assert err.startswith("colorlib: error:") and message in err and "\n" not in err


def test_cli_all_unreadable_is_an_error(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    code = main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "bad.png" in err and "could be read" in err


def test_comparison_table_and_ab_histogram_plot(eval_folder):
    import matplotlib

    matplotlib.use("Agg")
    from colorlib.inference.evaluate import comparison_table
    from colorlib.teaching.figures import plot_ab_histograms

    paths = sorted(eval_folder.glob("*.png"))[:2]
    grey = evaluate_paths(paths, colorize_fn=lambda g: g, progress=False, histograms=True)
    truth = {p: load_rgb(p) / 255.0 for p in paths}
    seen = iter(paths)
    oracle = evaluate_paths(paths, colorize_fn=lambda g: truth[next(seen)], progress=False,
                            histograms=True, baseline=False)
    table = comparison_table({"grey model": grey, "oracle": oracle})
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 4  # header, rule, two models, baseline, ground truth
    assert lines[3].startswith("| oracle | 100.00") and "greyscale baseline" in lines[4]
    hists = {"truth": oracle["ab_histograms"]["truth"], "oracle": oracle["ab_histograms"]["model"]}
    assert np.array_equal(hists["truth"], hists["oracle"])
    fig = plot_ab_histograms(hists, means={"truth": (1.0, 2.0)})
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2
