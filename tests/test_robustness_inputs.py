"""Odd and broken inputs through every entry point: load_rgb, the Dataset, colorize, the CLI.

Odd but valid files must work and keep their displayed size; broken ones must
be reported as one line naming the file and the reason, while the rest of the
batch is still processed and the command exits non-zero. No traceback.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from robust_helpers import (UNICODE_NAME, error_lines, gradient, make_broken_images,
                            make_odd_images, make_training_photos, run_cli, tiny_checkpoint)

from colorlib.cli import main
from colorlib.data.loading import ColorizationDataset, collate, prepare_batch
from colorlib.inference.colorizer import Colorizer
from colorlib.photos.image_files import (ImageReadError, ImageTooLargeError, SkippedImageWarning,
                                         load_rgb)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    sizes = make_odd_images(root / "odd")
    reasons = make_broken_images(root / "broken")
    ckpt = tiny_checkpoint(root / "baseline.pt")
    return root, sizes, reasons, ckpt


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def shape_of(size):
    width, height = size
    return (height, width, 3)


# ------------------------------------------------------------------ load_rgb
def test_odd_images_load_as_rgb_in_displayed_orientation(files):
    root, sizes, _, _ = files
    for name, size in sizes.items():
        rgb = load_rgb(root / "odd" / name)
        assert rgb.shape == shape_of(size) and rgb.dtype == np.uint8, name
    truth = gradient(48, 64).astype(int)
    # 16-bit greyscale is scaled by its bit depth, not clipped to white.
    grey16 = load_rgb(root / "odd" / "grey16.png")
    assert grey16.min() == 0 and grey16.max() == 255 and 100 < grey16.mean() < 155
    # CMYK comes back as the colours it was made from (not inverted).
    assert np.abs(load_rgb(root / "odd" / "cmyk.jpg") - truth).mean() < 5
    # Transparent palette entries are paper (white), not black.
    index = np.asarray(Image.open(root / "odd" / "palette.png"))
    assert (load_rgb(root / "odd" / "palette.png")[index == 0] == 255).all()
    # Half-transparent RGBA is blended onto white: lighter than the opaque picture.
    assert load_rgb(root / "odd" / "rgba.png").mean() > truth.mean() + 40
    # A file name with spaces and non-ASCII letters is just a file name.
    assert np.abs(load_rgb(root / "odd" / UNICODE_NAME) - truth).mean() < 5


@pytest.mark.parametrize("max_side", [None, 32])
def test_draft_decoding_never_goes_below_the_asked_size(files, max_side):
    root, _, _, _ = files
    rgb = load_rgb(root / "odd" / "panorama.jpg", max_side=max_side)
    assert min(rgb.shape[:2]) >= (max_side or 100)
    assert rgb.shape[1] / rgb.shape[0] == pytest.approx(12, rel=0.05)  # aspect ratio kept


@pytest.mark.parametrize("name", ["truncated.jpg", "empty.jpg", "notes.jpg", "bomb.png"])
def test_broken_files_raise_an_error_naming_file_and_reason(files, name):
    root, _, reasons, _ = files
    with pytest.raises(ImageReadError) as info:
        load_rgb(root / "broken" / name)
    message = str(info.value)
    assert message.startswith(str(root / "broken" / name) + ": ")
    assert reasons[name] in message and "\n" not in message


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_pixel_limit_is_an_error_with_advice(files, monkeypatch, how):
    root, _, _, _ = files
    grey = root / "odd" / "grey.png"  # 3,072 pixels
    if how == "environment":
        monkeypatch.setenv("COLORLIB_MAX_MEGAPIXELS", "0.001")
    with pytest.raises(ImageTooLargeError, match="too large to decode safely .*3,072 pixels.*"
                       "--max-megapixels") as info:
        load_rgb(grey, max_pixels=1000 if how == "argument" else None)
    assert (info.value.pixels, info.value.limit, info.value.path) == (3072, 1000, str(grey))
    assert load_rgb(grey, max_pixels=3072).shape == (48, 64, 3)  # at the limit: fine


def test_missing_file_and_folder_are_read_errors(files):
    root, _, _, _ = files
    with pytest.raises(ImageReadError, match="no such file"):
        load_rgb(root / "nowhere.jpg")
    with pytest.raises(ImageReadError, match="is a folder"):
        load_rgb(root / "odd")


# ------------------------------------------------------------------- Dataset
def test_dataset_serves_odd_images_and_names_broken_ones(files):
    root, sizes, reasons, _ = files
    paths = [root / "odd" / n for n in sizes] + [root / "broken" / n for n in reasons]
    ds = ColorizationDataset(paths, size=32, lab=True)
    items = [ds[i] for i in range(len(ds))]
    for item in items[: len(sizes)]:
        assert item["L"].shape == (1, 32, 32) and item["ab"].shape == (2, 32, 32)
        assert torch.isfinite(item["L"]).all() and torch.isfinite(item["ab"]).all()
    for item, name in zip(items[len(sizes):], reasons):
        assert set(item) == {"error"} and isinstance(item["error"], ImageReadError)
        assert item["error"].path == str(root / "broken" / name)  # a field, not a parsed string
        assert reasons[name] in item["error"].reason
    # The loader path: a batch with broken files still yields its good images,
    # and warns once per broken file, naming it.
    rgb_ds = ColorizationDataset(paths, size=32, lab=False)
    batch = collate([rgb_ds[i] for i in range(len(rgb_ds))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        L, ab = prepare_batch(batch, "cpu")
    assert L.shape == (len(sizes), 1, 32, 32) and ab.shape == (len(sizes), 2, 32, 32)
    skipped = [w.message for w in caught if isinstance(w.message, SkippedImageWarning)]
    assert sorted(Path(w.paths[0]).name for w in skipped) == sorted(reasons)
    with pytest.raises(ImageReadError, match="empty"):
        prepare_batch(collate([rgb_ds[len(sizes) + 1]]), "cpu", on_error="raise")


# ------------------------------------------------------------ colorize (API)
def test_colorize_keeps_every_odd_image_at_its_displayed_size(files):
    root, sizes, _, ckpt = files
    colorizer = Colorizer.load(ckpt, device="cpu")
    for name, size in sizes.items():
        out = colorizer(root / "odd" / name)
        assert out.shape == shape_of(size), name
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ImageReadError, match="truncated"):
        colorizer(root / "broken" / "truncated.jpg")


# ------------------------------------------------------------- colorize (CLI)
@pytest.mark.slow
def test_cli_colorizes_a_mixed_batch_and_reports_each_broken_file(files, tmp_path):
    root, sizes, reasons, ckpt = files
    out = tmp_path / "out"
    proc = run_cli("colorize", root / "odd", root / "broken", tmp_path / "missing.jpg",
                   "--checkpoint", ckpt, "--out", out)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == len(reasons) + 1  # one line per broken input, nothing else
    for name, reason in reasons.items():
        (line,) = [line for line in lines if f"{name}:" in line]
        assert line.startswith(f"colorlib: error: {root / 'broken' / name}: ") and reason in line
    assert any("missing.jpg: no such file" in line for line in lines)
    for name, size in sizes.items():  # every good input was still colorized, full size
        with Image.open(out / f"{os.path.splitext(name)[0]}.png") as img:
            assert img.size == size, name
    assert f"colorized {len(sizes)} of" in proc.stdout


def test_cli_reports_a_decompression_bomb_under_a_low_limit(files, tmp_path, capsys):
    root, _, _, ckpt = files
    code = main(["colorize", str(root / "odd" / "grey.png"), str(root / "odd" / "tiny7x13.png"),
                 "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"),
                 "--max-megapixels", "0.001"])
    lines = error_lines(capsys.readouterr().err)
    assert code == 1 and len(lines) == 1
    assert "grey.png: image is too large to decode safely" in lines[0]
    assert (tmp_path / "out" / "tiny7x13.png").is_file()  # 91 pixels: under the limit


def test_cli_keeps_existing_outputs_unless_overwrite(files, tmp_path, capsys):
    root, _, _, ckpt = files
    src, out = root / "odd" / "grey.png", tmp_path / "out"
    args = ["colorize", str(src), "--checkpoint", str(ckpt), "--out", str(out)]
    assert main(args) == 0
    target = out / "grey.png"
    first = target.read_bytes()
    capsys.readouterr()
    assert main(args) == 1  # an earlier output: kept, and only the safe flag is suggested
    (line,) = error_lines(capsys.readouterr().err)
    assert line == (f"colorlib: error: {src}: output {target} already exists from an earlier "
                    "run; kept it (--skip-existing goes on without it)")
    assert main([*args, "--skip-existing"]) == 0
    assert "0 of 1 image(s)" in capsys.readouterr().out and target.read_bytes() == first
    target.write_bytes(b"")  # so a replacement shows
    Image.fromarray(gradient(5, 5)).save(target, pnginfo=_marked())
    assert main([*args, "--overwrite"]) == 0  # colorlib's own earlier output: replaced
    assert Image.open(target).size == (64, 48)
    target.write_bytes(b"my own edit")  # the user's file now: never replaced
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "exists and was not written by colorlib; kept it" in line and "--overwrite" not in line
    assert target.read_bytes() == b"my own edit"


def _marked():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "colorlib (colorized)")
    return info


def test_cli_one_unwritable_output_does_not_stop_the_others(files, tmp_path, capsys):
    root, _, _, ckpt = files
    out = tmp_path / "out"
    (out / "grey.png").mkdir(parents=True)  # a folder where an output file should go
    code = main(["colorize", str(root / "odd" / "grey.png"), str(root / "odd" / "sepia.jpg"),
                 "--checkpoint", str(ckpt), "--out", str(out), "--overwrite"])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 1 and "grey.png: cannot write" in line
    assert (out / "sepia.png").is_file()


def test_cli_two_inputs_with_one_output_name_are_not_silently_merged(files, tmp_path, capsys):
    root, _, _, ckpt = files
    twin = tmp_path / "grey.jpg"
    Image.fromarray(gradient(20, 30)).save(twin)
    src = root / "odd" / "grey.png"
    code = main(["colorize", str(src), str(twin), str(src), "--checkpoint", str(ckpt),
                 "--out", str(tmp_path / "out")])
    (line,) = error_lines(capsys.readouterr().err)  # src named twice: colorized once, silently
    assert code == 1 and "grey.jpg: output" in line and "already taken by" in line
    assert Image.open(tmp_path / "out" / "grey.png").size == (64, 48)  # the first one won


def test_cli_missing_inputs_and_empty_folders(files, tmp_path, capsys):
    root, _, _, ckpt = files
    (tmp_path / "empty").mkdir()
    code = main(["colorize", str(tmp_path / "empty"), str(tmp_path / "nope.jpg"),
                 "--checkpoint", str(ckpt), "--out", str(tmp_path / "out")])
    lines = error_lines(capsys.readouterr().err)
    assert code == 1 and len(lines) == 2
    assert lines[0].endswith("empty: folder contains no images")
    assert lines[1].endswith("nope.jpg: no such file")
    code = main(["colorize", str(root / "odd" / "grey.png"), "--checkpoint",
                 str(tmp_path / "none.pt"), "--out", str(tmp_path / "out")])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and line.endswith("none.pt: checkpoint file not found")


def _unwritable(tmp_path):
    """A path no one can create: its parent is a regular file (works as root, too)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    return blocker / "out"


def test_cli_refuses_an_output_folder_it_cannot_write(files, tmp_path, capsys):
    root, _, _, ckpt = files
    src = str(root / "odd" / "grey.png")
    cases = [
        ["colorize", src, "--checkpoint", str(ckpt), "--out", str(_unwritable(tmp_path))],
        ["colorize", src, "--checkpoint", str(ckpt), "--out", str(tmp_path / "a-file")],
        ["train", "--stage", "baseline", "--data", str(root / "odd"), "--checkpoint-dir",
         str(_unwritable(tmp_path))],
        ["demo", "--out", str(_unwritable(tmp_path))],
    ]
    for args in cases:
        code = main(args)
        (line,) = error_lines(capsys.readouterr().err)
        assert code == 2 and "a-file" in line, args
        assert "cannot write to" in line or "is not a folder" in line, line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="runs as root, and chmod does not stop root writing; the "
                    "parent-is-a-file case above covers an unwritable --out")
def test_cli_refuses_a_read_only_output_folder(files, tmp_path, capsys):
    root, _, _, ckpt = files
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code = main(["colorize", str(root / "odd" / "grey.png"), "--checkpoint", str(ckpt),
                     "--out", str(out)])
    finally:
        out.chmod(0o755)
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and "--out: cannot write to" in line and "Permission denied" in line


def test_debug_flag_shows_the_traceback_anywhere_on_the_line(files, tmp_path, capsys):
    root, _, _, _ = files
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint")
    args = ["colorize", str(root / "odd" / "grey.png"), "--checkpoint", str(bogus),
            "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "bogus.pt" in capsys.readouterr().err
    from colorlib.training.checkpoint import CheckpointError

    for debug_args in (["--debug", *args], [*args, "--debug"]):
        with pytest.raises(CheckpointError):
            main(debug_args)


# ------------------------------------------------------------ train (CLI)
def test_cli_train_skips_broken_images_names_each_and_exits_non_zero(files, tmp_path, capsys):
    root, _, reasons, _ = files
    data = make_training_photos(tmp_path / "photos" / "train", n=8).parent
    make_training_photos(data / "val", n=2)
    make_broken_images(data / "train")
    code = main(["train", "--stage", "baseline", "--data", str(data), "--size", "32",
                 "--batch-size", "4", "--filters", "8", "--epochs", "1", "--device", "cpu",
                 "--checkpoint-dir", str(tmp_path / "ck"), "--weights", "none", "--no-progress"])
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert code == 1, captured.err
    assert len(lines) == len(reasons)  # each broken file once, though drawn in no batch yet
    for name, reason in reasons.items():
        (line,) = [line for line in lines if f"{name}:" in line]
        assert line.startswith("colorlib: warning: skipping unreadable image ") and reason in line
    assert "2 steps" in captured.out and "left out 4 unreadable image(s)" in captured.out
    assert (tmp_path / "ck" / "baseline.pt").is_file()  # the good photos were trained on


def test_cli_train_with_no_usable_images_fails_clearly(files, tmp_path, capsys):
    root, _, reasons, _ = files
    (tmp_path / "empty").mkdir()
    common = ["--stage", "baseline", "--size", "32", "--filters", "8", "--device", "cpu",
              "--checkpoint-dir", str(tmp_path / "ck"), "--no-progress"]
    code = main(["train", "--data", str(tmp_path / "empty"), *common])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and "empty: no images found" in line
    code = main(["train", "--data", str(root / "broken"), *common])
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == len(reasons) + 1
    assert lines[-1] == (f"colorlib: error: {root / 'broken'}: none of the training images "
                         "can be read (each one is named above)")
    assert not (tmp_path / "ck" / "baseline.pt").exists()


def test_cli_train_never_replaces_an_existing_checkpoint_by_accident(files, tmp_path, capsys):
    root, _, _, _ = files
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "baseline.pt").write_bytes(b"weeks of work")
    code = main(["train", "--stage", "baseline", "--data", str(root / "odd"),
                 "--checkpoint-dir", str(ck)])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and "baseline.pt: a checkpoint already exists" in line and "--resume" in line
    assert (ck / "baseline.pt").read_bytes() == b"weeks of work"


# --------------------------------------------------------- evaluate (CLI)
def test_cli_evaluate_reports_broken_files_and_scores_the_rest(files, tmp_path, capsys):
    root, sizes, reasons, ckpt = files
    data = tmp_path / "eval"
    make_odd_images(data)
    make_broken_images(data)
    code = main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--no-progress"])
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    grey = ("grey.png", "grey16.png")  # readable, but no colour to score against
    assert code == 1 and len(lines) == len(reasons) + len(grey)
    for name in reasons:
        assert sum(line.startswith(f"colorlib: error: {data / name}:") for line in lines) == 1
    for name in grey:
        assert f"colorlib: warning: {data / name}: greyscale photo" in lines[-len(grey):][
            grey.index(name)]
    assert f"{len(sizes) - len(grey)} image(s)" in captured.out
    code = main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path / "nope")])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and "nope" in line
