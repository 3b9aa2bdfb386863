"""Notebooks 03 -> 04 -> 05 -> 06, each on a machine of its own, as in Colab and on Kaggle.

Each notebook runs (tiny setting) in a fresh kernel with a fresh working
directory, home, temporary folder and figure folder: a new machine. Nothing
is shared between them but what the platform keeps:

* **Colab**: Google Drive. ``tests/fake_colab`` stands in for ``google.colab``
  (imported at start-up, as in Colab); its ``drive.mount`` links
  ``MyDrive`` to one folder that outlives every machine.
* **Kaggle**: a notebook's ``/kaggle/working`` is kept as its output, and
  the next notebook gets that output attached, read-only, under
  ``/kaggle/input/<name>/`` (``KAGGLE_KERNEL_RUN_TYPE`` set, as on Kaggle).

Each notebook must find its predecessor's checkpoint: the checkpoint a later
notebook only loads is byte for byte the one its predecessor wrote (a
notebook that had not found it would have trained a new one in the tiny
setting), and the persistence cell names it. The installed colorlib and
the tiny photo set (derived from installed packages) count as software on
the machine, as a ``pip install`` would be, and are shared.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_COLAB = Path(__file__).parent / "fake_colab"
spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "tools" / "run_notebook.py")
run_notebook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebook)

JOURNEY = [  # notebook, what it must find (written by an earlier one), what it writes
    ("03_pix2pix_baseline.ipynb", [], ["baseline.pt"]),
    ("04_resnet_unet_pretraining.ipynb", ["baseline.pt"], ["pretrain.pt", "classify.pt"]),
    ("05_adversarial_finetuning.ipynb", ["baseline.pt", "pretrain.pt"], ["gan.pt"]),
    ("06_colorize_your_photos.ipynb", ["baseline.pt", "pretrain.pt", "gan.pt"], []),
]
TINY_FOLDER = "checkpoints-tiny-64px"
CLEARED = ("COLORLIB_CHECKPOINTS", "COLORLIB_FIGURES", "COLORLIB_STORE", "COLORLIB_DATA_CACHE",
           "COLORLIB_DATA", "COLORLIB_SIZE", "COLORLIB_EPOCHS", "COLORLIB_MAX_STEPS",
           "COLORLIB_BATCH_SIZE", "COLORLIB_DEVICE", "KAGGLE_KERNEL_RUN_TYPE", "MPLBACKEND")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def machine(root: Path, **env) -> tuple[Path, dict]:
    """A new machine under ``root``: (working directory, kernel environment)."""
    for sub in ("home", "tmp", "figures", "work"):
        (root / sub).mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    software = {  # caches of installed software, as a machine image has them built
        "COLORLIB_CACHE": os.environ.get("COLORLIB_CACHE", str(Path.home() / ".cache" / "colorlib")),
        "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", str(Path.home() / ".config" / "matplotlib"))}
    # Two steps per stage instead of the tiny setting's eight: what is proved here is where
    # the checkpoints go and come from, not what training does (the notebook tests run that).
    base.update(COLORLIB_TINY="1", COLORLIB_MAX_STEPS="2", HOME=str(root / "home"),
                TMPDIR=str(root / "tmp"), COLORLIB_FIGURES=str(root / "figures"), **software, **env)
    return root / "work", base


def run(name: str, cwd: Path, env: dict) -> str:
    """Execute notebook ``name``; fail with its traceback, else return all its text output."""
    lines: list[str] = []
    ok, executed = run_notebook.execute(ROOT / "notebooks" / name, timeout=600, log=lines.append,
                                        cwd=cwd, env=env)
    assert ok, f"{name} failed on its new machine:\n" + "\n".join(lines[-40:])
    return "\n".join(out.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []))


def persist_output(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("checkpoints in "))


@pytest.mark.slow
def test_colab_one_machine_per_notebook_drive_keeps_the_work(tmp_path):
    drive = tmp_path / "google_drive"  # all that survives a Colab machine
    kept = drive / "colorlib" / TINY_FOLDER
    written: dict[str, str] = {}
    for i, (name, needs, writes) in enumerate(JOURNEY):
        vm = tmp_path / f"colab_vm{i}"
        cwd, env = machine(vm, FAKE_COLAB_DRIVE=str(drive),
                           COLORLIB_DRIVE_MOUNT=str(vm / "content" / "drive"),
                           PYTHONPATH=os.pathsep.join(filter(None, [str(FAKE_COLAB),
                                                                    os.environ.get("PYTHONPATH")])))
        text = run(name, cwd, env)
        assert "Google Drive mounted" in text, name
        listed = persist_output(text)
        for ckpt in needs:  # found on Drive, and never retrained or rewritten
            assert ckpt in listed, f"{name}: its persistence cell did not find {ckpt}: {listed}"
            assert digest(kept / ckpt) == written[ckpt], f"{name} rewrote {ckpt}"
        for ckpt in writes:
            assert (kept / ckpt).is_file(), f"{name}: {ckpt} not kept on Drive"
            written[ckpt] = digest(kept / ckpt)
        assert (vm / "content" / "drive" / "MyDrive").is_symlink()  # this machine's own mount
    assert sorted(p.name for p in kept.glob("*.pt")) == sorted(written)  # and nothing else


def _read_only(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): digest(p) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_kaggle_each_notebook_gets_the_previous_output_attached(tmp_path):
    previous: Path | None = None  # the last notebook's /kaggle/working, kept as its output
    written: dict[str, str] = {}
    inputs = []
    try:
        for i, (name, needs, writes) in enumerate(JOURNEY):
            vm = tmp_path / f"kaggle_vm{i}"
            attached = vm / "kaggle" / "input"
            attached.mkdir(parents=True)
            if previous is not None:  # "Add Input > Your Work": the previous notebook's output
                shutil.copytree(previous, attached / JOURNEY[i - 1][0].removesuffix(".ipynb"),
                                symlinks=True)
                _read_only(attached)
                inputs.append(attached)
            before = _tree(attached)
            cwd, env = machine(vm, KAGGLE_KERNEL_RUN_TYPE="Interactive",
                               COLORLIB_KAGGLE_INPUT=str(attached))
            text = run(name, cwd, env)
            kept = cwd / "runs" / TINY_FOLDER  # /kaggle/working/runs/...
            listed = persist_output(text)
            for ckpt in needs:  # copied from the attached output, not retrained
                assert ckpt in listed, f"{name}: did not find the attached {ckpt}: {listed}"
                assert digest(kept / ckpt) == written[ckpt], f"{name}: {ckpt} is not the attached one"
            if needs:
                assert "copied" in text
            for ckpt in writes:
                assert (kept / ckpt).is_file(), f"{name}: {ckpt} not in its output"
                written[ckpt] = digest(kept / ckpt)
            assert _tree(attached) == before, f"{name} wrote into its read-only input"
            previous = cwd
    finally:
        for folder in inputs:
            _writable(folder)
