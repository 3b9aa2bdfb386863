"""nb.persist(): work kept beyond the machine, in Colab (Drive) and on Kaggle (attached outputs).

Colab is simulated by the stand-in ``google.colab`` of ``tests/fake_colab``
(``drive.mount`` links ``MyDrive`` to a temporary folder), Kaggle by
``KAGGLE_KERNEL_RUN_TYPE`` and an input folder. The whole journey, notebook
after notebook in fresh kernels, is ``tests/test_fresh_machines.py``.
"""
from __future__ import annotations

import importlib
import os
import stat
import sys
from pathlib import Path

import pytest

from colorlib.teaching import notebook as nb

FAKE_COLAB = Path(__file__).parent / "fake_colab"


@pytest.fixture()
def colab(monkeypatch, tmp_path):
    """Inside 'Colab': google.colab imported, Drive at tmp/drive_contents."""
    monkeypatch.syspath_prepend(str(FAKE_COLAB))
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    importlib.import_module("google.colab")
    drive = tmp_path / "drive_contents"
    monkeypatch.setenv("FAKE_COLAB_DRIVE", str(drive))
    yield drive
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        sys.modules.pop(name, None)


def kaggle_env(tmp_path, **extra) -> dict:
    return {"KAGGLE_KERNEL_RUN_TYPE": "Interactive",
            nb.KAGGLE_INPUT_ENV: str(tmp_path / "input"), **extra}


def fake_checkpoint(path: Path, content: bytes = b"weights") -> Path:
    """A small but intact colorlib file (persist skips damaged ones) that says ``content``."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "colorlib-checkpoint", "format_version": 1, "kind": "generator",
                "model": {}, "generator": {}, "note": content.decode()}, path)
    return path


def note_of(path: Path) -> str:
    import torch

    return torch.load(path, weights_only=True)["note"]


@pytest.fixture()
def read_only():
    """Make a folder read-only, as Kaggle's inputs are (and writable again afterwards)."""
    done = []

    def make(folder: Path) -> None:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            done.append(p)

    yield make
    for p in done:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in folder.rglob("*")}


# ---------------------------------------------------------------------- local
def test_elsewhere_nothing_changes(tmp_path, capsys):
    env: dict = {}
    store = nb.persist(env)
    assert store.platform == "local" and store.folder is None and env == {}
    assert "not on Colab or Kaggle" in capsys.readouterr().out


def test_a_store_named_by_hand_is_used_anywhere(tmp_path):
    env = {nb.STORE_ENV: str(tmp_path / "keep")}
    store = nb.persist(env, show=False)
    assert store.folder == tmp_path / "keep" and store.folder.is_dir()
    s = nb.Settings.from_env(env)
    assert s.checkpoints == tmp_path / "keep" / "checkpoints"
    assert s.data_cache == (tmp_path / "keep" / "data",)


# ---------------------------------------------------------------------- Colab
def test_colab_mounts_drive_and_keeps_work_there(colab, tmp_path, capsys):
    env = {nb.DRIVE_MOUNT_ENV: str(tmp_path / "content" / "drive")}
    store = nb.persist(env)
    out = capsys.readouterr().out
    assert store.platform == "colab" and "Google Drive mounted" in out
    assert store.folder == tmp_path / "content" / "drive" / "MyDrive" / "colorlib"
    assert store.folder.resolve() == (colab / "colorlib").resolve()  # really on 'Drive'
    assert env[nb.STORE_ENV] == str(store.folder)
    full, tiny = nb.Settings.from_env(env), nb.Settings.from_env({**env, "COLORLIB_TINY": "1"})
    assert full.checkpoints == store.folder / "checkpoints"
    assert tiny.checkpoints == store.folder / "checkpoints-tiny-64px"  # never mixed with full
    assert full.data_config().cache == (str(store.folder / "data"),)
    assert "data cache" in full.describe()


def test_colab_lists_what_an_earlier_machine_left_on_drive(colab, tmp_path, capsys):
    fake_checkpoint(colab / "colorlib" / "checkpoints" / "pretrain.pt", b"x" * 3 * 2**20)
    env = {nb.DRIVE_MOUNT_ENV: str(tmp_path / "mnt")}
    store = nb.persist(env)
    assert [p.name for p in store.checkpoints] == ["pretrain.pt"]
    assert "pretrain.pt (3 MB)" in capsys.readouterr().out


def test_a_checkpoint_folder_set_by_hand_wins_over_the_store(colab, tmp_path):
    env = {nb.DRIVE_MOUNT_ENV: str(tmp_path / "mnt"), "COLORLIB_CHECKPOINTS": str(tmp_path / "mine")}
    nb.persist(env, show=False)
    assert nb.Settings.from_env(env).checkpoints == tmp_path / "mine"


def test_colab_without_drive_permission_fails_in_one_line(colab, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_COLAB_REFUSE", "1")
    env = {nb.DRIVE_MOUNT_ENV: str(tmp_path / "mnt")}
    with pytest.raises(nb.PersistError, match=r"Google Drive was not mounted.*mount failed.*"
                                              r"drive=False") as err:
        nb.persist(env)
    assert "\n" not in str(err.value) and nb.STORE_ENV not in env
    store = nb.persist(env, drive=False, show=False)  # the way out the message names
    assert store.folder is None


# --------------------------------------------------------------------- Kaggle
def test_kaggle_copies_attached_checkpoints_before_any_stage_writes(tmp_path, monkeypatch, capsys,
                                                                    read_only):
    work = tmp_path / "working"
    work.mkdir()
    monkeypatch.chdir(work)
    attached = tmp_path / "input" / "colorize-04-pretraining" / "runs" / "checkpoints"
    fake_checkpoint(attached / "baseline.pt", b"baseline")
    fake_checkpoint(attached / "pretrain.pt", b"pretrain")
    read_only(tmp_path / "input")
    before = snapshot(tmp_path / "input")
    env = kaggle_env(tmp_path)
    store = nb.persist(env)
    assert store.platform == "kaggle" and store.folder == work / "runs"
    assert [d.name for _, d in store.copied] == ["baseline.pt", "pretrain.pt"]
    assert note_of(work / "runs" / "checkpoints" / "pretrain.pt") == "pretrain"
    assert (work / "runs" / "checkpoints" / "pretrain.pt").stat().st_mode & stat.S_IWUSR
    assert snapshot(tmp_path / "input") == before  # inputs are only read
    assert nb.Settings.from_env(env).checkpoints == work / "runs" / "checkpoints"
    assert "copied" in capsys.readouterr().out
    # Run again (or after training): same files are skipped, own newer work is kept.
    fake_checkpoint(work / "runs" / "checkpoints" / "pretrain.pt", b"trained further here")
    again = nb.persist(env)
    assert again.copied == []
    assert note_of(work / "runs" / "checkpoints" / "pretrain.pt") == "trained further here"
    assert "kept" in capsys.readouterr().out


def test_kaggle_keeps_tiny_and_full_checkpoints_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_checkpoint(tmp_path / "input" / "nb05" / "runs" / "checkpoints-tiny-64px" / "gan.pt")
    fake_checkpoint(tmp_path / "input" / "nb05" / "my_ckpts" / "gan.pt", b"full")
    env = kaggle_env(tmp_path, COLORLIB_TINY="1")
    store = nb.persist(env, show=False)
    assert sorted(str(d.relative_to(tmp_path)) for _, d in store.copied) == \
        ["runs/checkpoints-tiny-64px/gan.pt", "runs/checkpoints/gan.pt"]
    assert [p.parent.name for p in store.checkpoints] == ["checkpoints-tiny-64px"]


def test_kaggle_takes_the_newest_of_several_attached_copies(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    old = fake_checkpoint(tmp_path / "input" / "v1" / "runs" / "checkpoints" / "gan.pt", b"old")
    new = fake_checkpoint(tmp_path / "input" / "v2" / "runs" / "checkpoints" / "gan.pt", b"new")
    os.utime(old, (1_000_000, 1_000_000))
    nb.persist(kaggle_env(tmp_path))
    assert note_of(tmp_path / "runs" / "checkpoints" / "gan.pt") == "new"
    assert str(old) in capsys.readouterr().out  # the other copy is named, not silently dropped
    del new


def test_kaggle_with_nothing_attached_says_how_to_attach(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    store = nb.persist(kaggle_env(tmp_path))
    assert store.copied == [] and store.checkpoints == []
    assert "Add Input" in capsys.readouterr().out


def test_kaggle_finds_an_attached_prepared_data_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "input" / "nb02" / "runs" / "data"
    data.mkdir(parents=True)
    (data / "coco_sample_seed123.tar").write_bytes(b"")
    env = kaggle_env(tmp_path)
    nb.persist(env, show=False)
    assert nb.Settings.from_env(env).data_cache == (tmp_path / "runs" / "data", data)


def test_a_failed_copy_leaves_no_half_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_checkpoint(tmp_path / "input" / "nb" / "runs" / "checkpoints" / "gan.pt")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(nb.PersistError, match="cannot copy .*gan.pt"):
        nb.persist(kaggle_env(tmp_path), show=False)
    assert not list(tmp_path.glob("runs/**/*.pt"))
