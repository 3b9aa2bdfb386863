"""Odd settings fail in words: one line naming the flag or variable, no library text, no unsafe advice."""
from __future__ import annotations

import socket
import urllib.error

import pytest
import torch
from robust_helpers import cli_in_process

UNSAFE = ("weights_only=False", "Traceback", "urlopen", "could not convert")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def cli(*args) -> tuple[int, list[str], str]:
    code, lines, text = cli_in_process(*args, forbidden=UNSAFE)
    assert not any("--overwrite" in line for line in lines), lines  # never advised
    return code, lines, text


# ------------------------------------------------------------ COLORLIB_* variables
@pytest.mark.parametrize("name,value,needle", [
    ("COLORLIB_CACHE_GB", "abc", "COLORLIB_CACHE_GB: expected a number, got 'abc'"),
    ("COLORLIB_CACHE_GB", "-2", "COLORLIB_CACHE_GB: expected a number >= 0, got '-2'"),
    ("COLORLIB_KEEP_FREED_MEMORY", "perhaps", "COLORLIB_KEEP_FREED_MEMORY: expected 1 or 0"),
    ("COLORLIB_MAX_MEGAPIXELS", "0", "COLORLIB_MAX_MEGAPIXELS: expected a number > 0"),
])
def test_bad_variable_values_are_one_line_naming_the_variable(monkeypatch, tmp_path, ckpt, name,
                                                              value, needle):
    monkeypatch.setenv(name, value)
    code, lines, _ = cli("colorize", tmp_path / "x.png", "--checkpoint", ckpt, "--out", tmp_path)
    assert code == 2 and lines == [f"colorlib: error: {needle}" + lines[0].split(needle)[1]]


def test_a_misspelt_variable_is_pointed_out(monkeypatch, tmp_path, ckpt):
    monkeypatch.setenv("COLORLIB_EPOCH", "5")
    code, lines, _ = cli("evaluate", "--checkpoint", ckpt, "--data", tmp_path / "none")
    assert lines[0] == ("colorlib: warning: COLORLIB_EPOCH is not a colorlib setting (did you "
                        "mean COLORLIB_EPOCHS?); it has no effect")


def test_notebook_flags_accept_only_yes_or_no(monkeypatch):
    from colorlib.teaching import notebook

    with pytest.raises(ValueError, match="COLORLIB_TINY: expected 1 or 0"):
        notebook.Settings.from_env({"COLORLIB_TINY": "maybe"})
    assert notebook.Settings.from_env({"COLORLIB_TINY": "Yes"}).tiny


# ------------------------------------------------------------ flags
@pytest.mark.parametrize("seed", ["-1", str(2**32), "seven"])
def test_seed_out_of_range_names_the_flag(tmp_path, seed):
    code, _, text = cli("train", "--stage", "baseline", "--checkpoint-dir", tmp_path, "--seed", seed)
    assert code == 2 and "--seed" in text and ("4294967295" in text or "whole number" in text)


def test_weights_that_are_not_resnet18_weights(tmp_path, ckpt, photos):
    junk = tmp_path / "junk.pt"
    junk.write_text("not weights")
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole pickled module
    common = ["train", "--stage", "pretrain", "--data", photos, "--size", "32",
              "--checkpoint-dir", tmp_path / "ck", "--device", "cpu"]
    expected = {junk: "not a PyTorch checkpoint", pickled: "never runs code from a checkpoint",
                ckpt: "is a colorlib checkpoint (stage 'baseline'), not ResNet18 encoder weights"}
    for weights, needle in expected.items():
        code, lines, _ = cli(*common, "--weights", weights)
        assert code == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"colorlib: error: --weights: {weights}: ") and needle in lines[0]
    assert not (tmp_path / "ck" / "pretrain.pt").exists()


def test_imagenet_weights_offline_stop_train_naming_the_way_forward(tmp_path, photos,
                                                                    monkeypatch):
    """What the README says: train stops (one line); the demo and notebooks go on without."""
    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    code, lines, _ = cli("train", "--stage", "pretrain", "--data", photos, "--size", "32",
                         "--checkpoint-dir", tmp_path / "ck", "--device", "cpu")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("colorlib: error: --weights imagenet: ImageNet ResNet18 weights "
                               "could not be downloaded")
    assert "--weights none" in lines[0] and "--weights PATH" in lines[0]
    from colorlib.models.networks import available_encoder_weights

    said = []
    assert available_encoder_weights("imagenet", said.append) == "none"  # demo, notebooks
    assert "randomly initialised encoder" in said[0]


@pytest.mark.slow  # imports fastai (5 s)
def test_coco_offline_is_one_line_naming_the_flag(tmp_path, monkeypatch):
    import fastai.data.external as external

    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(external, "untar_data", offline)
    monkeypatch.delenv("COLORLIB_DATA_CACHE", raising=False)
    code, lines, _ = cli("train", "--stage", "baseline", "--data", "coco", "--size", "32",
                         "--checkpoint-dir", tmp_path / "ck", "--device", "cpu")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("colorlib: error: --data coco (COLORLIB_DATA=coco): the COCO "
                               "sample (about 3 GB) could not be downloaded (no network")
    assert "--data tiny" in lines[0]


def test_a_batch_too_small_for_batchnorm_is_refused_before_training(tmp_path, photos):
    code, lines, _ = cli("train", "--stage", "pretrain", "--data", photos, "--size", "32",
                         "--batch-size", "1", "--weights", "none", "--checkpoint-dir",
                         tmp_path / "ck", "--device", "cpu")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("colorlib: error: --batch-size 1: batches of 1 photo per process")
    assert "--batch-size 2 or more" in lines[0] and "--size 64" in lines[0]
    assert not (tmp_path / "ck" / "pretrain.pt").exists()
