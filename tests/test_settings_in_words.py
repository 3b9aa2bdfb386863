"""Every setting checked before work, in words (issue 20, principles 6 and 7, unclear messages).

Each flag and environment variable is range-checked and named when wrong;
an impossible size or batch is refused with a memory estimate; a multi-page
or animated file says which frame was used; a library's warning never
precedes colorlib's one-line error.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image
from robust_helpers import cli_in_process, gradient

from colorlib.teaching import notebook as nb

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def cli(*args) -> tuple[int, list[str], str]:
    return cli_in_process(*args, forbidden=("Traceback", "OverflowError"))


def photo(path):
    Image.fromarray(gradient(24, 32)).save(path)
    return path


# ------------------------------------------------------------------ flags
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_max_megapixels_must_be_a_finite_number(tmp_path, ckpt, value):
    """Issue 20: --max-megapixels inf gave a bare OverflowError."""
    # "--max-megapixels=-inf": given apart, argparse reads "-inf" as an option of its own
    code, _, text = cli("colorize", photo(tmp_path / "a.png"), "--checkpoint", ckpt, "--out",
                        tmp_path / "out", f"--max-megapixels={value}")
    assert code == 2 and "--max-megapixels" in text and "finite" in text


def test_the_megapixel_variable_must_be_finite(tmp_path, ckpt, monkeypatch):
    monkeypatch.setenv("COLORLIB_MAX_MEGAPIXELS", "inf")
    code, lines, _ = cli("colorize", photo(tmp_path / "a.png"), "--checkpoint", ckpt, "--out",
                         tmp_path / "out")
    assert code == 2 and lines == ["colorlib: error: COLORLIB_MAX_MEGAPIXELS: expected a finite "
                                   "number > 0, got 'inf'"]


@pytest.mark.parametrize("flag,value", [("--lr-g", "-1"), ("--lr-g", "0"), ("--lr-g", "nan"),
                                        ("--lr-g", "fast"), ("--workers", "-1"),
                                        ("--save-every", "-3")])
def test_training_numbers_are_checked_naming_the_flag(tmp_path, flag, value):
    """Issue 20: --lr-g -1 gave "Invalid learning rate" with the flag not named."""
    code, _, text = cli("train", "--stage", "baseline", "--checkpoint-dir", tmp_path / "ck",
                        flag, value)
    assert code == 2 and f"argument {flag}" in text and "Invalid learning rate" not in text
    assert not (tmp_path / "ck").exists()


def test_colorlib_size_in_words_also_when_persist_reads_it():
    """Issue 20: COLORLIB_SIZE=abc gave "invalid literal for int()" with the variable not named."""
    with pytest.raises(ValueError) as info:
        nb.persist({"COLORLIB_TINY": "1", "COLORLIB_SIZE": "abc"}, show=False)
    assert str(info.value) == "COLORLIB_SIZE: expected a whole number, got 'abc'"


@pytest.mark.parametrize("args", [["--size", "65536"], ["--size", "4096", "--batch-size", "4096"]])
def test_an_impossible_size_is_refused_with_a_memory_estimate(tmp_path, photos, args):
    """Issue 20: --size 65536 was killed by the kernel (22 GB) without a line."""
    code, lines, _ = cli("train", "--stage", "baseline", "--data", photos, "--device", "cpu",
                         "--weights", "none", "--checkpoint-dir", tmp_path / "ck", *args)
    assert code == 2 and len(lines) == 1, lines
    assert "memory" in lines[0] and "GB" in lines[0] and "--size" in lines[0]
    assert "--batch-size" in lines[0] and not (tmp_path / "ck" / "baseline.pt").exists()


def test_the_memory_estimate_grows_with_size_and_batch():
    """Weights, gradients and Adam's moments are a fixed part; activations grow with the pixels
    and the batch, so the whole grows far less than the 4x of the pixels (the measured peaks
    are in benchmarks/RESULTS.md, "Other measurements")."""
    from colorlib.training.cost import training_memory, training_memory_bytes

    small = training_memory_bytes("baseline", 64, 16)
    assert training_memory_bytes("baseline", 128, 16) > 1.5 * small
    assert training_memory_bytes("baseline", 64, 32) > small
    per_image = training_memory("pretrain", 64).per_image_bytes
    assert training_memory("pretrain", 128).per_image_bytes == 4 * per_image
    assert (training_memory_bytes("pretrain", 64, 32)
            - training_memory_bytes("pretrain", 64, 16)) == 16 * per_image
    assert 0.05e9 < training_memory_bytes("pretrain", 256, 16) < 40e9


# ------------------------------------------------------------------ plain weights
def test_a_plain_state_dict_of_another_width_is_read_at_its_own_width(tmp_path):
    """Issue 20: refused with no reason and no flag to give the width."""
    from colorlib.models.networks import ModelConfig, build_generator

    net = build_generator(ModelConfig(arch="pix2pix_unet", size=32, num_filters=16), weights=None)
    plain = tmp_path / "plain.pt"
    torch.save(net.state_dict(), plain)
    code, lines, _ = cli("colorize", photo(tmp_path / "a.png"), "--checkpoint", plain,
                         "--arch", "pix2pix_unet", "--model-size", "32", "--out", tmp_path / "o")
    assert code == 0, lines
    code, lines, _ = cli("colorize", tmp_path / "a.png", "--checkpoint", plain, "--arch",
                         "resnet18_unet", "--out", tmp_path / "o2")
    assert code == 2 and len(lines) == 1 and "--arch" in lines[0]
    assert "shape" in lines[0] and not lines[0].endswith(":)")


# ------------------------------------------------------------------ multi-frame files
def test_a_multi_page_tiff_and_an_animated_gif_say_which_frame_was_used(tmp_path, ckpt):
    """Issue 20: a multi-page TIFF or animated GIF gave one frame, with no note."""
    pages = [Image.fromarray(gradient(24, 32)), Image.fromarray(255 - gradient(24, 32))]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    # Three distinct frames: Pillow merges identical consecutive GIF frames into one.
    pages[0].save(tmp_path / "anim.gif", save_all=True, append_images=[pages[1], pages[0]])
    code, lines, _ = cli("colorize", tmp_path / "scan.tif", tmp_path / "anim.gif",
                         "--checkpoint", ckpt, "--out", tmp_path / "out")
    assert code == 0
    assert f"colorlib: warning: {tmp_path / 'scan.tif'}: has 2 pages; colorlib used the " \
           "first" in lines[1] + lines[0]
    assert any(f"{tmp_path / 'anim.gif'}: has 3 frames; colorlib used the first" in line
               for line in lines)


def test_load_rgb_warns_once_per_multi_frame_file(tmp_path):
    from colorlib.photos.image_files import MultiFrameWarning, load_rgb

    frames = [Image.fromarray(gradient(8, 8))] * 3
    frames[0].save(tmp_path / "a.tif", save_all=True, append_images=frames[1:])
    with pytest.warns(MultiFrameWarning, match="has 3 pages"):
        load_rgb(tmp_path / "a.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_rgb(photo(tmp_path / "one.png"))  # a single frame: no note


# ------------------------------------------------------------------ library warnings
def test_a_library_warning_never_comes_before_the_error(tmp_path):
    """Issue 20: a raw torch UserWarning with a site-packages path came before a good line.
    Run as a user runs it, in a process of its own: inside pytest, warnings are recorded
    rather than printed, and the bug could not show."""
    import subprocess
    import sys

    from robust_helpers import CHILD_ENV

    script = (
        "import sys, warnings\n"
        "import colorlib.cli as cli\n"
        "def load(args):\n"
        "    warnings.warn_explicit('TypedStorage is deprecated', UserWarning,\n"
        "                           '/usr/lib/python3/site-packages/torch/storage.py', 414)\n"
        "    raise ValueError(f'{args.checkpoint}: not a readable colorlib checkpoint')\n"
        "cli._load_colorizer = load\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", script, "colorize", str(photo(tmp_path / "a.png")),
                           "--checkpoint", str(tmp_path / "x.pt"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300, env=CHILD_ENV)
    text = proc.stderr
    assert proc.returncode == 2 and "site-packages" not in text and "UserWarning" not in text
    assert text.strip().splitlines() == [f"colorlib: error: {tmp_path / 'x.pt'}: not a readable "
                                         "colorlib checkpoint"]


def test_a_library_warning_on_success_is_one_plain_line(tmp_path, ckpt, monkeypatch):
    import colorlib.cli as cli_module

    real = cli_module._load_colorizer

    def load(args):
        warnings.warn_explicit("something changed in a library", FutureWarning,
                               "/usr/lib/python3/site-packages/torch/x.py", 1)
        return real(args)

    monkeypatch.setattr(cli_module, "_load_colorizer", load)
    code, lines, text = cli("colorize", photo(tmp_path / "a.png"), "--checkpoint", ckpt,
                            "--out", tmp_path / "o")
    assert code == 0 and "site-packages" not in text
    assert lines == ["colorlib: warning: something changed in a library (FutureWarning from torch)"]
