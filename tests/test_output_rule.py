"""One output rule for everything colorlib writes (issue 20, principle 1).

Every writing entry point (``evaluate --json``, ``export --out``,
``colorize --out``, ``train --overwrite``, ``nb.save`` figures,
``nb.save_uploads``) is run three ways from one table: its output aimed at
its own input, at a file colorlib did not write (or another run's resumable
checkpoint), and at an earlier colorlib output on a full file system. Each
must refuse or fail in one line naming the file, and leave the file as it was.
"""
from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from robust_helpers import cli_in_process, gradient, tiny_checkpoint

from colorlib.system import atomic_files
from colorlib.teaching import notebook as nb

ENOSPC = os.strerror(errno.ENOSPC)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient(24, 32)).save(path)
    return path


def full_disk(monkeypatch) -> None:
    """A full file system: fsync fails with ENOSPC, and a plain write truncates, then fails."""
    def no_space(*_a, **_k):
        raise OSError(errno.ENOSPC, ENOSPC)

    def truncating(self, *_a, **_k):
        open(self, "w").close()
        no_space()

    monkeypatch.setattr(os, "fsync", no_space)
    monkeypatch.setattr(Path, "write_text", truncating)
    monkeypatch.setattr(Path, "write_bytes", truncating)


def cli(*args) -> tuple[int, list[str]]:
    return cli_in_process(*args)[:2]


def call(fn: Callable) -> tuple[int, list[str]]:
    """A notebook helper: its exception, as the one line a user reads."""
    try:
        fn()
    except Exception as err:  # noqa: BLE001
        return 2, [f"colorlib: error: {err}"]
    return 0, []


# ----------------------------------------------------------------- the entry points
@dataclass
class Entry:
    """One writing entry point: ``write(target, overwrite)`` writes ``target``."""

    name: str
    write: Callable[[Path, bool], tuple[int, list[str]]]
    own_input: Callable[[Path], Path] | None = None  # a path this command reads


def entries(ckpt: Path, photos: Path, tmp: Path) -> dict[str, Entry]:
    src = photo(tmp / "in" / "photo.png")
    again = ["--overwrite"]

    def evaluate(target, overwrite):
        return cli("evaluate", "--checkpoint", ckpt, "--data", src, "--json", target,
                   "--no-progress", *(again if overwrite else []))

    def export(target, overwrite):
        return cli("export", ckpt, "--out", target, *(again if overwrite else []))

    def colorize(target, overwrite):
        target = target.with_name(src.stem + ".png")
        return cli("colorize", src, "--checkpoint", ckpt, "--out", target.parent,
                   *(again if overwrite else []))

    def train(target, overwrite):
        return cli("train", "--stage", "baseline", "--data", photos, "--size", "32",
                   "--batch-size", "2", "--filters", "8", "--max-steps", "1", "--device", "cpu",
                   "--weights", "none", "--no-progress", "--checkpoint-dir", target.parent,
                   *(again if overwrite else []))

    def figure(target, overwrite):
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(1, 1))
        return call(lambda: nb.save(fig, target.stem, nb.Settings(figures=target.parent)))

    def upload(target, overwrite):
        return call(lambda: nb.save_uploads({target.name: b"an upload"}, target.parent))

    return {
        "evaluate --json": Entry("evaluate --json", evaluate, lambda t: src),
        "evaluate --json (checkpoint)": Entry("evaluate --json", evaluate, lambda t: ckpt),
        "export --out": Entry("export --out", export, lambda t: ckpt),
        "colorize --out": Entry("colorize --out", colorize, lambda t: src),
        "train --overwrite": Entry("train --overwrite", train, None),
        "nb.save": Entry("nb.save", figure, None),
        "nb.save_uploads": Entry("nb.save_uploads", upload, None),
    }


TARGET_NAME = {"evaluate --json": "report.json", "evaluate --json (checkpoint)": "report.json",
               "export --out": "model.pt", "colorize --out": "photo.png",
               "train --overwrite": "baseline.pt", "nb.save": "plot.png",
               "nb.save_uploads": "IMG_0001.jpg"}


@pytest.fixture()
def table(ckpt, photos, tmp_path):
    import shutil

    own = tmp_path / "ckpt" / "baseline.pt"  # this test's copy: a failure here spoils no other
    own.parent.mkdir()
    shutil.copy(ckpt, own)
    return entries(own, photos, tmp_path)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", [n for n in TARGET_NAME if n not in
                                  ("train --overwrite", "nb.save", "nb.save_uploads")])
def test_an_output_aimed_at_its_own_input_is_refused(table, name, tmp_path):
    entry = table[name]
    target = entry.own_input(None)
    if name == "colorize --out":  # the input folder as --out: photo.png would be the photo
        target = target.parent / "photo.png"
    before = target.read_bytes()
    for overwrite in (False, True):
        code, lines = entry.write(target, overwrite)
        assert code != 0 and len(lines) == 1 and str(target) in lines[0], lines
        assert target.read_bytes() == before


FOREIGN = {  # a file colorlib did not write, or another run's resumable checkpoint
    "a user's file": lambda p: p.write_bytes(b"my own file, weeks of work"),
    "a user's photo": lambda p: Image.fromarray(gradient(8, 8)).save(p, format="PNG"),
    "another run's checkpoint": lambda p: tiny_checkpoint(p),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
@pytest.mark.parametrize("name", [n for n in TARGET_NAME if n != "evaluate --json (checkpoint)"])
def test_a_file_colorlib_did_not_write_is_never_replaced(table, name, kind, tmp_path):
    if name == "train --overwrite" and kind == "another run's checkpoint":
        pytest.skip("train --overwrite replacing a colorlib checkpoint with one is its purpose")
    target = tmp_path / "out" / TARGET_NAME[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    FOREIGN[kind](target)
    before = target.read_bytes()
    code, lines = table[name].write(target, True)
    assert target.read_bytes() == before
    if name == "nb.save_uploads":  # kept, and the upload saved beside it under a new name
        assert code == 0 and (target.parent / "IMG_0001 (2).jpg").read_bytes() == b"an upload"
        return
    assert code != 0 and len(lines) == 1 and str(target) in lines[0], lines


@pytest.mark.parametrize("name", [n for n in TARGET_NAME if n != "evaluate --json (checkpoint)"])
def test_a_full_disk_keeps_the_earlier_output_and_names_the_file(table, name, tmp_path,
                                                                 monkeypatch):
    target = tmp_path / "out" / TARGET_NAME[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    if name == "nb.save_uploads":
        target.write_bytes(b"the earlier upload")
    else:
        code, lines = table[name].write(target, False)  # an earlier run's output
        assert code == 0, lines
    before = snapshot(target.parent)
    full_disk(monkeypatch)
    code, lines = table[name].write(target, True)
    monkeypatch.undo()
    assert code != 0 and len(lines) == 1, lines
    assert ENOSPC in lines[0] and (str(target) in lines[0] or str(target.parent) in lines[0]), lines
    after = snapshot(target.parent)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if k.endswith(".tmp")], after  # no debris either


# ----------------------------------------------------------------- the cases
def test_evaluate_json_never_replaces_the_checkpoint_it_evaluates(ckpt, tmp_path):
    """Issue 20: --json naming the checkpoint turned a checkpoint into a 2 KB JSON."""
    import shutil

    ckpt = Path(shutil.copy(ckpt, tmp_path / "baseline.pt"))
    before = ckpt.read_bytes()
    code, lines = cli("evaluate", "--checkpoint", ckpt, "--data", photo(tmp_path / "p.png"),
                      "--json", ckpt, "--overwrite", "--no-progress")
    assert code == 2 and ckpt.read_bytes() == before
    assert lines == [f"colorlib: error: --json: {ckpt} is an input of this command (the "
                     "--checkpoint); kept it (choose another file)"]


def test_evaluate_json_says_when_a_report_is_there_and_replaces_its_own_with_the_flag(
        ckpt, tmp_path):
    src, out = photo(tmp_path / "p.png"), tmp_path / "scores.json"
    args = ["evaluate", "--checkpoint", ckpt, "--data", src, "--json", out, "--no-progress"]
    assert cli(*args)[0] == 0
    first = json.loads(out.read_text())
    assert first["written_by"] == "colorlib evaluate"
    code, lines = cli(*args)
    assert code == 2 and lines == [f"colorlib: error: --json: {out} already exists from an "
                                   "earlier colorlib run; kept it (--overwrite replaces it)"]
    assert cli(*args, "--overwrite")[0] == 0


def test_export_overwrite_never_replaces_a_resumable_checkpoint(ckpt, tmp_path):
    """Issue 20: export --overwrite replaced another run's checkpoint."""
    other = tiny_checkpoint(tmp_path / "other" / "gan.pt")
    before = other.read_bytes()
    code, lines = cli("export", ckpt, "--out", other, "--overwrite")
    assert code == 2 and other.read_bytes() == before
    assert lines == [f"colorlib: error: --out: {other} is a training checkpoint that resumes "
                     "(another run's work); an export never replaces one, even with "
                     "--overwrite; kept it (choose another file)"]


def test_a_resume_refused_from_an_export_names_where_the_checkpoint_is(ckpt, tmp_path):
    """Issue 20: the refusal named the very file it refused."""
    from colorlib.inference.export import export_generator
    from colorlib.training.checkpoint import load_checkpoint, refuse_resume

    out = export_generator(ckpt, tmp_path / "elsewhere" / "baseline.pt")
    with pytest.raises(ValueError) as info:
        refuse_resume(load_checkpoint(out), out)
    assert str(ckpt.resolve()) in str(info.value)


def test_uploads_never_replace_a_same_named_photo(tmp_path):
    """Issue 20: phones name photos IMG_0001.jpg; a second upload replaced the first."""
    first = nb.save_uploads({"IMG_0001.jpg": b"grandma"}, tmp_path)
    second = nb.save_uploads({"IMG_0001.jpg": b"grandpa"}, tmp_path)
    same = nb.save_uploads({"IMG_0001.jpg": b"grandma"}, tmp_path)  # uploaded twice: one file
    assert first[0].read_bytes() == b"grandma" and second[0].read_bytes() == b"grandpa"
    assert second[0].name == "IMG_0001 (2).jpg" and same == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_0001 (2).jpg", "IMG_0001.jpg"]


def test_train_init_is_never_its_own_output(ckpt, photos, tmp_path):
    gan = tmp_path / "ck" / "gan.pt"
    gan.parent.mkdir()
    gan.write_bytes(ckpt.read_bytes())
    code, lines = cli("train", "--stage", "gan", "--data", photos, "--init", gan,
                      "--checkpoint-dir", gan.parent, "--overwrite", "--size", "32")
    assert code == 2 and gan.read_bytes() == ckpt.read_bytes()
    assert len(lines) == 1 and f"--init: {gan}" in lines[0] and "this run writes" in lines[0]


# ----------------------------------------------------------------- atomic writes
def test_temporary_names_fit_the_file_system_name_limit(tmp_path):
    long = tmp_path / ("x" * 250 + ".json")  # 255 bytes: the limit of most file systems
    atomic_files.atomic_write(long, lambda f: f.write(b"{}"))
    assert long.read_bytes() == b"{}"


def test_concurrent_writers_keep_each_others_temporary_files(tmp_path):
    """Issue 20: two colorize runs into one folder deleted each other's temporary files."""
    target = tmp_path / "photo.png"
    seen = []

    def slow_write(f):
        f.write(b"first")
        seen.extend(tmp_path.iterdir())  # our temp file exists now ...
        atomic_files.atomic_write(target, lambda g: g.write(b"second"))  # ... a rival finishes first

    atomic_files.atomic_write(target, slow_write)
    assert target.read_bytes() == b"first" and len(seen) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_a_dead_writers_temporary_file_is_cleared(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    debris = tmp_path / atomic_files.temp_name(tmp_path / "photo.png", pid=dead.pid)
    debris.write_bytes(b"half")
    atomic_files.atomic_write(tmp_path / "photo.png", lambda f: f.write(b"whole"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_a_file_where_an_output_subfolder_should_be_is_one_clear_line(ckpt, tmp_path):
    album = tmp_path / "album"
    photo(album / "2019" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "2019").write_text("a file, not a folder")
    code, lines = cli("colorize", album, "--checkpoint", ckpt, "--out", out)
    assert code == 1 and len(lines) == 1, lines
    assert "File exists" not in lines[0] and f"{out / '2019'} is a file" in lines[0]


def test_a_dangling_symlink_as_out_is_one_clear_line(ckpt, tmp_path):
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone")
    code, lines = cli("colorize", photo(tmp_path / "a.png"), "--checkpoint", ckpt, "--out", out)
    assert code == 2 and lines == [f"colorlib: error: --out: {out} is a symbolic link to "
                                   f"{tmp_path / 'gone'}, which does not exist"]


def test_a_folder_holding_only_the_users_report_is_not_called_an_earlier_demo(tmp_path):
    from colorlib.demo import _make_room, demo_files

    (tmp_path / "report.md").write_text("my quarterly report")
    with pytest.raises(FileExistsError) as info:
        _make_room(tmp_path, demo_files(tmp_path, []), overwrite=False)
    assert "earlier demo" not in str(info.value).split(";")[0]
    assert "not written by colorlib" in str(info.value)
    assert (tmp_path / "report.md").read_text() == "my quarterly report"


def test_training_never_reads_its_own_checkpoint_folder_as_photos(photos, tmp_path):
    """Principle 2: validation figures in a checkpoint folder inside --data are not photos."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(photos, data)
    ck = data / "ck"
    args = ["train", "--stage", "baseline", "--data", data, "--size", "32", "--batch-size", "2",
            "--filters", "8", "--max-steps", "1", "--device", "cpu", "--weights", "none",
            "--no-progress", "--checkpoint-dir", ck]
    assert cli(*args)[0] == 0
    (ck / "val_images").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(ck / "val_images" / "extra.png")
    from colorlib.data.sources import DataConfig
    from colorlib.training.config import RunConfig, TrainConfig
    from colorlib.training.runner import training_paths

    run = RunConfig(TrainConfig(stage="baseline"), DataConfig(source=str(data), size=32),
                    checkpoint_dir=ck)
    train, val = training_paths(run)
    assert not any(ck in p.parents for p in [*train, *val])


# ----------------------------------------------------------------- more of the rule
def test_evaluate_json_never_replaces_a_photo_of_its_data_folder(ckpt, tmp_path):
    folder = tmp_path / "colour"
    first = photo(folder / "a.png")
    photo(folder / "b.png")
    before = first.read_bytes()
    code, lines = cli("evaluate", "--checkpoint", ckpt, "--data", folder, "--json", first,
                      "--overwrite", "--no-progress")
    assert code == 2 and first.read_bytes() == before
    assert lines == [f"colorlib: error: --json: {first} is an input of this command (a photo "
                     "of --data); kept it (choose another file)"]


def test_another_machines_temporary_file_is_kept_for_a_day(tmp_path):
    """A temp file on a shared drive may be another machine's write in progress: its pid means
    nothing here, so only a day without a touch makes it debris."""
    import time

    theirs = tmp_path / f".photo.png.{os.getpid()}-0123abcd-x1y2z3.tmp"  # another host's tag
    assert atomic_files._host_tag() != "0123abcd"
    theirs.write_bytes(b"in progress elsewhere")
    atomic_files.atomic_write(tmp_path / "photo.png", lambda f: f.write(b"ours"))
    assert theirs.exists()
    old = time.time() - atomic_files.FOREIGN_TEMP_STALE_S - 60
    os.utime(theirs, (old, old))
    atomic_files.atomic_write(tmp_path / "photo.png", lambda f: f.write(b"ours again"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_a_write_that_must_not_replace_keeps_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "report.json"

    def racing(f):
        f.write(b"ours")
        target.write_bytes(b"someone else's, written meanwhile")

    with pytest.raises(FileExistsError, match="appeared while this one was written"):
        atomic_files.atomic_write(target, racing, replace=False)
    assert target.read_bytes() == b"someone else's, written meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_figures_replace_only_what_colorlib_drew(tmp_path):
    """Principle 1 for figures: a plot the user made with matplotlib is theirs, except in a
    folder only colorlib writes (a run's val_images/), where it is an older colorlib's figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colorlib.photos.image_files import is_colorlib_output
    from colorlib.teaching.figures import save_figure

    mine = tmp_path / "plot.png"
    users = plt.figure(figsize=(1, 1))
    users.savefig(mine)  # made by the user with matplotlib
    plt.close(users)
    before = mine.read_bytes()
    figures = [plt.figure(figsize=(1, 1)) for _ in range(3)]
    with pytest.raises(FileExistsError, match="not written by colorlib"):
        save_figure(figures[0], mine)
    assert mine.read_bytes() == before
    save_figure(figures[1], mine, legacy_ok=True)  # e.g. in val_images/
    assert is_colorlib_output(mine)  # marked now, and left out of photo scans
    save_figure(figures[2], mine)  # its own figure: replaced without a flag
    assert not any(plt.fignum_exists(f.number) for f in figures)  # closed, refused or saved


def test_an_older_unmarked_jpeg_figure_is_replaced_only_in_colorlibs_own_folder(tmp_path):
    """matplotlib's JPEGs carry no Software field: before the marker, colorlib's JPEG figures
    (figures/07_*.jpg) had none either. They are replaced in colorlib's folders only, and a
    text file there is still nobody's figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colorlib.teaching.figures import save_figure

    old = tmp_path / "07_best_worst.jpg"
    fig = plt.figure(figsize=(1, 1))
    fig.savefig(old)
    plt.close(fig)
    before = old.read_bytes()
    with pytest.raises(FileExistsError, match="not written by colorlib"):
        save_figure(plt.figure(figsize=(1, 1)), old)
    assert old.read_bytes() == before
    save_figure(plt.figure(figsize=(1, 1)), old, legacy_ok=True)
    assert old.read_bytes() != before
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    with pytest.raises(FileExistsError, match="not written by colorlib"):
        save_figure(plt.figure(figsize=(1, 1)), notes, legacy_ok=True)
    assert notes.read_text() == "not an image"


def test_the_comparison_gif_follows_the_figure_rule(tmp_path):
    """A GIF is a figure too: marked, written atomically, and never over a file colorlib did
    not draw (an older unmarked one only in colorlib's own folders)."""
    import numpy as np

    from colorlib.teaching.figures import is_colorlib_figure, save_comparison_gif

    frames, labels = [np.zeros((8, 8, 3)), np.ones((8, 8, 3))], ["a", "b"]
    users = tmp_path / "holiday.gif"
    users.write_bytes(b"GIF89a not really")
    with pytest.raises(FileExistsError, match="not written by colorlib"):
        save_comparison_gif(frames, labels, users)
    assert users.read_bytes() == b"GIF89a not really"
    ours = save_comparison_gif(frames, labels, tmp_path / "cmp.gif")
    assert is_colorlib_figure(ours)  # marked, so the next run replaces it without a flag
    save_comparison_gif(frames, labels, ours)
    assert not [p for p in tmp_path.iterdir() if p.name not in ("holiday.gif", "cmp.gif")]
