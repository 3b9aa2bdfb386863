"""A user's files through `colorlib colorize` and `evaluate`: never replaced, never misread.

Photo libraries as people have them: nested albums with repeated camera
file names, macOS sidecars, formats of every kind, outputs written inside
the input folder, second runs, greyscale photos in an evaluation set.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from robust_helpers import error_lines, gradient

from colorlib.cli import main
from colorlib.photos.image_files import (ImageReadError, ImageTooLargeError, SkippedImageWarning,
                                         is_colorlib_output, scan_folder)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def photo(path: Path, h: int = 24, w: int = 32, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient(h, w)).save(path, **kwargs)
    return path


def colorize(*args, ckpt) -> tuple[int, list[str], str]:
    import contextlib
    import io

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["colorize", *map(str, args), "--checkpoint", str(ckpt)])
    return code, error_lines(err.getvalue()), out.getvalue()


def no_destructive_advice(lines: list[str]) -> None:
    for line in lines:
        assert "--overwrite" not in line and "weights_only=False" not in line, line


# ------------------------------------------------------------ inputs are sacred
@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_output_folder_equal_to_the_input_folder_never_replaces_an_input(tmp_path, ckpt, flags):
    album = tmp_path / "album"
    a_jpg, b_jpg = photo(album / "a.jpg"), photo(album / "b.jpg", 20, 20)
    a_png = photo(album / "a.png", 30, 30)  # a.jpg's output would be a.png: an input
    before = {p: p.read_bytes() for p in (a_jpg, b_jpg, a_png)}
    code, lines, out = colorize(album, "--out", album, *flags, ckpt=ckpt)
    assert code == 1 and lines == [
        f"colorlib: error: {a_jpg}: output {a_png} would replace an input photo; "
        "kept it (choose an --out outside the input folders)",
        f"colorlib: error: {a_png}: output {a_png} would replace the photo itself; "
        "kept it (choose an --out outside the input folders)"]
    assert all(p.read_bytes() == data for p, data in before.items())
    assert is_colorlib_output(album / "b.png") and "colorized 1 of 3" in out
    # The next run does not read b.png back as a photo, and still never replaces an input.
    code, lines, out = colorize(album, "--out", album, "--overwrite", ckpt=ckpt)
    assert "of 3 image(s)" in out and all(p.read_bytes() == data for p, data in before.items())


def test_an_output_that_links_back_to_an_input_is_refused(tmp_path, ckpt):
    src = photo(tmp_path / "in" / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.png").symlink_to(src)
    before = src.read_bytes()
    code, lines, _ = colorize(src, "--out", out, "--overwrite", ckpt=ckpt)
    assert code == 1 and "would replace the photo itself" in lines[0]
    assert src.read_bytes() == before


def test_outputs_inside_the_input_folder_are_not_read_back(tmp_path, ckpt):
    album = tmp_path / "album"
    for name in ("a.jpg", "b.jpg", "sub/c.jpg"):
        photo(album / name)
    code, lines, out = colorize(album, "--out", album / "colorized", ckpt=ckpt)
    assert code == 0 and "colorized 3 of 3" in out
    # Same command again: the output folder is not an input; the outputs are already there.
    code, lines, out = colorize(album, "--out", album / "colorized", "--skip-existing", ckpt=ckpt)
    assert code == 0 and "colorized 0 of 3" in out and "3 already done" in out
    # Another output folder: the earlier outputs inside the album are recognised and left out.
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code, lines, out = colorize(album, "--out", tmp_path / "elsewhere", ckpt=ckpt)
    assert code == 0 and "colorized 3 of 3" in out
    assert sorted(p.relative_to(tmp_path / "elsewhere").as_posix()
                  for p in (tmp_path / "elsewhere").rglob("*.png")) == ["a.png", "b.png",
                                                                         "sub/c.png"]


def test_existing_files_are_only_replaced_if_colorlib_wrote_them(tmp_path, ckpt):
    src = photo(tmp_path / "in" / "p.jpg")
    out = tmp_path / "out"
    photo(out / "p.png", 5, 5)  # the user's own file where the output would go
    for flags in ([], ["--overwrite"], ["--skip-existing"]):
        code, lines, _ = colorize(src, "--out", out, *flags, ckpt=ckpt)
        assert code == 1 and "exists and was not written by colorlib; kept it" in lines[0], flags
        assert Image.open(out / "p.png").size == (5, 5)
        no_destructive_advice(lines)


# ------------------------------------------------------------ photo libraries
def test_nested_albums_with_repeated_names_mirror_the_folders(tmp_path, ckpt):
    lib = tmp_path / "Photos"
    photo(lib / "2019" / "IMG_0001.JPG", 20, 30)
    photo(lib / "2020" / "summer" / "IMG_0001.JPG", 30, 20)
    photo(lib / "IMG_0001.jpg", 10, 12)
    code, lines, out = colorize(lib, "--out", tmp_path / "out", ckpt=ckpt)
    assert code == 0, lines
    sizes = {p.relative_to(tmp_path / "out").as_posix(): Image.open(p).size
             for p in (tmp_path / "out").rglob("*.png")}
    assert sizes == {"2019/IMG_0001.png": (30, 20), "2020/summer/IMG_0001.png": (20, 30),
                     "IMG_0001.png": (12, 10)}


def test_sidecars_and_hidden_folders_are_skipped_quietly(tmp_path, ckpt):
    lib = tmp_path / "lib"
    photo(lib / "IMG_0001.jpg")
    (lib / "._IMG_0001.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    photo(lib / ".thumbnails" / "IMG_0001.jpg")
    photo(lib / "__MACOSX" / "IMG_0001.jpg")
    (lib / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    code, lines, out = colorize(lib, "--out", tmp_path / "out", ckpt=ckpt)
    assert code == 0 and lines == [] and "colorized 1 of 1" in out
    scan = scan_folder(lib)
    assert scan.images == [lib / "IMG_0001.jpg"] and scan.hidden == 4


def write_qoi(path: Path, h: int = 24, w: int = 32) -> Path:
    """A QOI file by hand: Pillow reads QOI from 9.5 but writes it only from 11.x (our floor is 10.3)."""
    pixels = gradient(h, w).reshape(-1, 3)
    body = b"".join(b"\xfe" + bytes(int(v) for v in rgb) for rgb in pixels)  # QOI_OP_RGB chunks
    path.write_bytes(b"qoif" + w.to_bytes(4, "big") + h.to_bytes(4, "big") + b"\x03\x00"
                     + body + b"\x00" * 7 + b"\x01")
    return path


def test_every_format_pillow_reads_is_taken_and_the_others_name_their_plugin(tmp_path, ckpt):
    lib = tmp_path / "lib"
    formats = {"a.gif": {}, "b.bmp": {}, "c.ppm": {}, "d.pcx": {}, "e.tga": {}, "f.webp": {},
               "g.tiff": {}, "h.sgi": {}, "i.png": {}, "j.jpeg": {}}
    for name, kwargs in formats.items():
        photo(lib / name, **kwargs)
    formats["k.qoi"] = {}
    write_qoi(lib / "k.qoi")
    assert np.array_equal(np.asarray(Image.open(lib / "k.qoi").convert("RGB")), gradient(24, 32))
    (lib / "DSC_0003.NEF").write_bytes(b"II*\x00 raw sensor data")
    (lib / "notes.txt").write_text("not a photo, not mentioned")
    code, lines, out = colorize(lib, "--out", tmp_path / "out", ckpt=ckpt)
    assert f"colorized {len(formats)} of {len(formats) + 1}" in out
    assert len(list((tmp_path / "out").glob("*.png"))) == len(formats)
    assert code == 1 and len(lines) == 1
    assert "DSC_0003.NEF" in lines[0] and "camera RAW" in lines[0] and "TIFF or JPEG" in lines[0]


# pillow-heif registers itself only when colorlib imports it, so a process that cannot
# import it is a machine without the plugin.
_WITHOUT_HEIF = ("import sys; sys.modules['pillow_heif'] = None; from colorlib.cli import main; "
                 "sys.exit(main(sys.argv[1:]))")


def test_heic_without_its_plugin_gets_one_line_naming_the_plugin(tmp_path, ckpt):
    import subprocess
    import sys

    lib = tmp_path / "lib"
    photo(lib / "IMG_0001.png")
    (lib / "IMG_0002.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # a phone's photo
    for target, done in ((lib, "colorized 1 of 2"), (lib / "IMG_0002.HEIC", None)):
        run = subprocess.run([sys.executable, "-c", _WITHOUT_HEIF, "colorize", str(target),
                              "--out", str(tmp_path / "out"), "--checkpoint", str(ckpt)],
                             capture_output=True, text=True, timeout=300)
        lines = error_lines(run.stderr)
        assert run.returncode == 1 and len(lines) == 1, run.stderr
        assert "IMG_0002.HEIC" in lines[0] and "pip install pillow-heif" in lines[0]
        assert done is None or done in run.stdout


def test_a_phone_s_heic_photo_is_colorized_once_pillow_heif_is_installed(tmp_path, ckpt):
    pillow_heif = pytest.importorskip("pillow_heif")  # in the dev and notebooks extras
    pillow_heif.register_heif_opener()
    lib = tmp_path / "lib"
    lib.mkdir()
    Image.fromarray(gradient(48, 64)).save(lib / "IMG_0001.HEIC", quality=90)
    (lib / "IMG_0002.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # cut off in transfer
    code, lines, out = colorize(lib, "--out", tmp_path / "out", ckpt=ckpt)
    assert "colorized 1 of 2" in out
    assert Image.open(tmp_path / "out" / "IMG_0001.png").size == (64, 48)
    assert code == 1 and len(lines) == 1
    assert "IMG_0002.HEIC" in lines[0] and "pillow-heif" not in lines[0]


def test_skip_existing_redoes_only_what_is_missing(tmp_path, ckpt):
    lib = tmp_path / "lib"
    for i in range(3):
        photo(lib / f"p{i}.png")
    out = tmp_path / "out"
    assert colorize(lib, "--out", out, ckpt=ckpt)[0] == 0
    (out / "p1.png").unlink()
    kept = (out / "p0.png").stat().st_mtime_ns
    code, lines, text = colorize(lib, "--out", out, "--skip-existing", ckpt=ckpt)
    assert code == 0 and "colorized 1 of 3" in text and "2 already done" in text
    assert (out / "p1.png").is_file() and (out / "p0.png").stat().st_mtime_ns == kept


def test_colorize_runs_batches_through_the_network(tmp_path, ckpt, monkeypatch):
    from colorlib.inference import colorizer

    lib = tmp_path / "lib"
    for i, (h, w) in enumerate([(20, 30), (40, 17), (33, 33), (12, 50), (25, 25)]):
        photo(lib / f"p{i}.png", h, w)
    batches = []
    load = colorizer.Colorizer.load.__func__

    def counting_load(cls, *args, **kwargs):
        colorizer = load(cls, *args, **kwargs)
        colorizer.net.register_forward_hook(lambda m, inp, out: batches.append(inp[0].shape[0]))
        return colorizer

    monkeypatch.setattr(colorizer.Colorizer, "load", classmethod(counting_load))
    code, lines, _ = colorize(lib, "--out", tmp_path / "out", "--batch-size", "4", ckpt=ckpt)
    assert code == 0 and batches == [4, 1]  # five photos, two passes
    # Batched outputs are the photos' own: the same as colorizing each alone.
    single = colorizer.Colorizer.load(ckpt, device="cpu")
    for i in range(5):
        alone = np.round(single(lib / f"p{i}.png") * 255)
        got = np.asarray(Image.open(tmp_path / "out" / f"p{i}.png"), dtype=float)
        assert np.abs(got - alone).max() <= 1


# ------------------------------------------------------------ errors as values
def test_read_errors_keep_path_and_reason_apart_and_pickle(tmp_path, ckpt):
    odd = tmp_path / "photo: 1952.jpg"
    odd.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageReadError) as info:
        from colorlib.photos.image_files import load_rgb

        load_rgb(odd)
    err = info.value
    assert err.path == str(odd) and err.reason.startswith("not an image file")
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), again.path, again.reason) == (ImageReadError, err.path, err.reason)
    big = pickle.loads(pickle.dumps(ImageTooLargeError(odd, 400_000_000, 250_000_000)))
    assert (big.path, big.pixels, big.limit) == (str(odd), 400_000_000, 250_000_000)
    note = pickle.loads(pickle.dumps(SkippedImageWarning.from_error(err)))
    assert note.paths == [str(odd)] and note.reason == err.reason
    code, lines, _ = colorize(odd, photo(tmp_path / "ok.png"), "--out", tmp_path / "out",
                              ckpt=ckpt)
    assert code == 1 and lines == [f"colorlib: error: {odd}: {err.reason}"]


def test_a_read_error_crosses_from_a_worker_process_intact(tmp_path):
    from colorlib.data.loading import ColorizationDataset, collate

    odd = tmp_path / "photo: 1952.jpg"
    odd.write_bytes(b"")
    ds = ColorizationDataset([photo(tmp_path / "ok.png"), odd], size=16, lab=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate)
    (batch,) = list(loader)
    (error,) = batch["errors"]
    assert isinstance(error, ImageReadError) and error.path == str(odd)
    assert error.reason == "file is empty (0 bytes)" and batch["rgb"].shape[0] == 1


def test_train_warnings_are_recognised_by_category_not_by_text(tmp_path, capsys):
    from colorlib.cli import _one_line_image_warnings

    skipped: list = []
    with _one_line_image_warnings(skipped):
        warnings.warn(SkippedImageWarning(tmp_path / "photo: 1952.jpg", "file is empty"))
        warnings.warn(SkippedImageWarning(tmp_path / "photo: 1952.jpg", "file is empty"))  # once
        warnings.warn(UserWarning("skipping unreadable image that is not ours"))
    err = capsys.readouterr().err
    assert error_lines(err) == [f"colorlib: warning: skipping unreadable image "
                                f"{tmp_path / 'photo: 1952.jpg'}: file is empty"]
    assert len(skipped) == 1  # other warnings are left to Python (here: pytest's recorder)


# ------------------------------------------------------------ big photos
def test_pixel_limit_flag_and_default(tmp_path, ckpt):
    from robust_helpers import blank_png

    from colorlib.photos.image_files import check_image

    check_image(blank_png(tmp_path / "phone_100mp.png", 12_000, 8_400))  # 100.8 MP: accepted
    bomb = blank_png(tmp_path / "absurd.png", 20_000, 20_000)  # 400 MP: refused unread
    code, lines, _ = colorize(bomb, "--out", tmp_path / "out", ckpt=ckpt)
    assert code == 1 and "400,000,000 pixels" in lines[0] and "--max-megapixels" in lines[0]
    small = photo(tmp_path / "small.png")
    code, lines, _ = colorize(small, "--out", tmp_path / "o2", "--max-megapixels", "0.0001",
                              ckpt=ckpt)
    assert code == 1 and "768 pixels" in lines[0]
    assert colorize(small, "--out", tmp_path / "o3", "--max-megapixels", "0.01", ckpt=ckpt)[0] == 0


# ------------------------------------------------------------ evaluate
def _evaluate(*args, ckpt):
    import contextlib
    import io

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["evaluate", "--checkpoint", str(ckpt), "--no-progress", *map(str, args)])
    return code, error_lines(err.getvalue()), out.getvalue()


def test_evaluate_on_greyscale_photos_says_there_is_no_ground_truth(tmp_path, ckpt):
    grey = tmp_path / "grey"
    for i in range(3):
        grey.mkdir(exist_ok=True)
        Image.fromarray(gradient(24, 32)).convert("L").convert("RGB").save(grey / f"g{i}.jpg")
    code, lines, out = _evaluate("--data", grey, ckpt=ckpt)
    assert code == 2 and "PSNR" not in out
    assert lines[-1].startswith(f"colorlib: error: --data: {grey}: all 3 photo(s) are greyscale")
    assert "no colour ground truth" in lines[-1]


def test_evaluate_skips_an_unusable_photo_by_name_and_scores_the_rest(tmp_path, ckpt):
    data = tmp_path / "data"
    photo(data / "colour1.png")
    photo(data / "colour2.png", 30, 20)
    Image.fromarray(gradient(24, 32)).convert("L").save(data / "grey.png")
    photo(data / "tiny.png", 2, 9)
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, lines, out = _evaluate("--data", data, ckpt=ckpt)
    assert code == 1 and "2 image(s)" in out
    assert len(lines) == 3
    assert any(f"{data / 'grey.png'}: greyscale photo" in line for line in lines)
    assert any(f"{data / 'tiny.png'}: too small to score (9x2 px" in line for line in lines)
    assert any(f"{data / 'broken.jpg'}:" in line and "error" in line for line in lines)


def test_an_unwritable_json_fails_before_the_work(tmp_path, ckpt):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, lines, out = _evaluate("--data", tmp_path / "nowhere", "--json", blocker / "r.json",
                                 ckpt=tmp_path / "no-checkpoint.pt")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("colorlib: error: --json:")
    code, lines, _ = _evaluate("--data", "tiny", "--json", tmp_path, ckpt=ckpt)
    assert code == 2 and "--json" in lines[0] and "is a folder" in lines[0]


# ------------------------------------------------------------ plain state_dicts
def test_a_plain_generator_state_dict_needs_its_architecture(tmp_path):
    from colorlib.models.networks import ModelConfig, build_generator

    torch.manual_seed(0)
    net = build_generator(ModelConfig(arch="pix2pix_unet", size=32), weights=None).eval()
    plain = tmp_path / "generator.pt"
    torch.save(net.state_dict(), plain)
    whole = tmp_path / "final_model_weights.pt"  # the tutorial's MainModel: net_G. and net_D.
    torch.save({**{f"net_G.{k}": v for k, v in net.state_dict().items()},
                "net_D.model.0.weight": torch.zeros(1)}, whole)
    src = photo(tmp_path / "p.png")
    code, lines, _ = colorize(src, "--out", tmp_path / "o1", ckpt=plain)
    assert code == 2 and len(lines) == 1 and "--arch resnet18_unet" in lines[0]
    assert "plain generator weights" in lines[0]
    from colorlib.inference.colorizer import colorize as colorize_with

    expected = np.round(colorize_with(src, net, 32) * 255)  # these weights, used directly
    for weights, out in ((plain, "o2"), (whole, "o3")):
        code, lines, _ = colorize(src, "--out", tmp_path / out, "--arch", "pix2pix_unet",
                                  "--model-size", "32", ckpt=weights)
        assert code == 0, lines
        got = np.asarray(Image.open(tmp_path / out / "p.png"), dtype=float)
        assert np.abs(got - expected).max() <= 1
    pickled = tmp_path / "model.pt"  # a whole pickled module: never unpickled
    torch.save(net, pickled)
    code, lines, _ = colorize(src, "--out", tmp_path / "o4", "--arch", "pix2pix_unet",
                              ckpt=pickled)
    assert code == 2 and "never runs code" in lines[0]
    no_destructive_advice(lines)


# ------------------------------------------------------------ data that cannot teach
def test_a_training_folder_of_greyscale_photos_is_flagged_with_the_share(tmp_path):
    from colorlib.data.sources import GREY_SAMPLE, GreyDataWarning, warn_if_mostly_grey

    folder = tmp_path / "scans"
    paths = []
    for i in range(40):  # 38 greyscale scans (some saved as RGB JPEGs) and 2 colour photos
        path = folder / f"scan{i:02d}.jpg"
        img = Image.fromarray(gradient(30 + i, 40))
        photo_or_scan = img if i in (5, 30) else img.convert("L").convert("RGB" if i % 2 else "L")
        folder.mkdir(exist_ok=True)
        photo_or_scan.save(path, quality=80)
        paths.append(path)
    with pytest.warns(GreyDataWarning) as caught:
        share = warn_if_mostly_grey(paths, str(folder))
    message = str(caught[0].message)
    # 32 of the 40 are looked at, spread evenly (indices i * 40 // 32): both colour ones among them.
    assert GREY_SAMPLE == 32 and {i * 40 // 32 for i in range(32)} >= {5, 30}
    assert message.startswith(f"{folder}: 30 of 32 training photos looked at (94%) are greyscale")
    assert share == pytest.approx(30 / 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # colour photos: no warning
        assert warn_if_mostly_grey([photo(tmp_path / f"c{i}.png") for i in range(3)], "x") == 0


@pytest.mark.slow
def test_train_on_greyscale_photos_warns_in_one_line(tmp_path):
    import contextlib
    import io

    folder = tmp_path / "scans"
    for i in range(6):
        folder.mkdir(exist_ok=True)
        Image.fromarray(gradient(32, 32)[::-1] if i % 2 else gradient(32, 32)).convert("L").save(
            folder / f"s{i}.png")
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["train", "--stage", "baseline", "--data", str(folder), "--size", "32",
                     "--filters", "8", "--batch-size", "2", "--max-steps", "1", "--device", "cpu",
                     "--checkpoint-dir", str(tmp_path / "ck"), "--no-progress"])
    lines = error_lines(err.getvalue())
    assert code == 0 and len(lines) == 1  # a warning, not a failure
    assert lines[0].startswith(f"colorlib: warning: {folder}: 5 of 5 training photos (100%) are "
                               "greyscale; a colorizer learns colour only from colour photos")
