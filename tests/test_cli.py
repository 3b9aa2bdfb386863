"""The command line: help, clear one-line errors, and train -> colorize end to end."""
import subprocess
import sys

import pytest
from PIL import Image

from colorlib.cli import main


def run_cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "colorlib", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["colorize"]])
def test_help_is_useful(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: colorlib" in out
    if command == ["train"]:
        for flag in ("--stage", "--data", "--size", "--epochs", "--batch-size", "--checkpoint-dir",
                     "--init", "--resume", "--seed", "--device"):
            assert flag in out


@pytest.mark.parametrize("args,needle", [
    (["train", "--stage", "nope", "--checkpoint-dir", "x"], "invalid choice"),
    (["train", "--stage", "baseline", "--checkpoint-dir", "x", "--size", "100"], "power of two"),
    (["train", "--stage", "baseline", "--checkpoint-dir", "x", "--epochs", "0"], ">= 1"),
])
def test_wrong_arguments_exit_non_zero(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err


def test_missing_data_and_init_give_one_line_errors(tmp_path, capsys):
    code = main(["train", "--stage", "baseline", "--data", str(tmp_path / "nowhere"),
                 "--checkpoint-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err
    code = main(["train", "--stage", "gan", "--init", str(tmp_path / "pre.pt"),
                 "--checkpoint-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--init" in err and "pre.pt" in err


@pytest.mark.slow
def test_train_then_colorize_end_to_end(photo_folder, tmp_path):
    ck = tmp_path / "ck"
    code, out, err = run_cli("train", "--stage", "baseline", "--data", photo_folder, "--size", 32,
                             "--epochs", 1, "--batch-size", 4, "--filters", 8,
                             "--checkpoint-dir", ck, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert (ck / "baseline.pt").is_file() and "3 steps" in out
    assert (ck / "val_images" / "baseline_epoch0001.png").is_file()  # validation images
    src = sorted((photo_folder / "val").iterdir())[:2]
    wide = tmp_path / "wide photo.jpg"
    Image.new("RGB", (150, 40), (120, 90, 60)).save(wide)
    code, out, err = run_cli("colorize", *src, wide, "--checkpoint", ck / "baseline.pt",
                             "--out", tmp_path / "out")
    assert code == 0, err
    for path in [*src, wide]:
        with Image.open(tmp_path / "out" / f"{path.stem}.png") as img, Image.open(path) as orig:
            assert img.size == orig.size  # full resolution, same stem
    # A checkpoint of another model is refused with a one-line error.
    code, out, err = run_cli("train", "--stage", "gan", "--init", ck / "baseline.pt", "--data",
                             photo_folder, "--size", 32, "--epochs", 1, "--checkpoint-dir",
                             tmp_path / "ck2", "--weights", "none")
    assert code == 2 and "pix2pix_unet" in err and "resnet18_unet" in err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    # Colorizing with something that is not a checkpoint fails clearly, too.
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    code, out, err = run_cli("colorize", src[0], "--checkpoint", bogus, "--out", tmp_path / "o2")
    assert code == 2 and "bogus.pt" in err and "Traceback" not in err


def test_train_offers_every_gan_loss_of_colorlib():
    from colorlib.cli import build_parser
    from colorlib.models.losses import GAN_MODES

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (action,) = [a for a in train._actions if "--gan-mode" in a.option_strings]
    assert tuple(action.choices) == GAN_MODES


def _subcommand(name: str):
    from colorlib.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices[name]


def _flag(parser, flag: str):
    (action,) = [a for a in parser._actions if flag in a.option_strings]
    return action


def test_train_defaults_are_the_run_configs():
    """Issue 21, each setting has one home: a flag that sets a field of the run config
    defaults to that field's default, and its help prints that number."""
    from colorlib.data.sources import DataConfig
    from colorlib.training.config import RunConfig, TrainConfig

    train = _subcommand("train")
    homes = {"--data": DataConfig.source, "--size": DataConfig.size,
             "--batch-size": DataConfig.batch_size, "--workers": DataConfig.num_workers,
             "--epochs": TrainConfig.epochs, "--seed": TrainConfig.seed,
             "--max-steps": TrainConfig.max_steps, "--save-every": TrainConfig.save_every,
             "--gan-mode": TrainConfig.gan_mode, "--filters": RunConfig.num_filters}
    for flag, default in homes.items():
        assert _flag(train, flag).default == default, flag
    help_text = train.format_help()
    for flag in ("--size", "--epochs", "--batch-size", "--filters"):
        assert f"(default {_flag(train, flag).default}" in " ".join(help_text.split()), flag
    assert f"default {RunConfig.weights};" in " ".join(help_text.split())


@pytest.mark.parametrize("command", ["colorize", "evaluate"])
def test_model_flags_take_their_numbers_from_the_code(command):
    """--arch offers the networks' architectures; the help's 250 megapixels and 0.38 are the
    constants colorlib uses, not copies."""
    from colorlib.models.ab_classes import ZHANG_T
    from colorlib.models.networks import ARCHS, ModelConfig
    from colorlib.photos.image_files import MAX_PIXELS

    parser = _subcommand(command)
    assert tuple(_flag(parser, "--arch").choices) == ARCHS
    assert _flag(parser, "--model-size").default == ModelConfig.size
    help_text = " ".join(parser.format_help().split())
    assert f"(default {MAX_PIXELS // 1_000_000}, or $COLORLIB_MAX_MEGAPIXELS)" in help_text
    assert f"the stored one ({ZHANG_T:g})" in help_text and "(0.38)" in help_text
    assert f"(default {ModelConfig.size})" in help_text


def test_help_reads_the_config_defaults_without_importing_torch():
    """The parser takes its defaults from the run config (one home for each), which must stay
    light: ``colorlib --help`` answers at once instead of loading torch first."""
    code = ("import sys; from colorlib.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'fastai', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
