"""`colorlib demo`: the main job writes everything the README promises, and only that."""
import json
from pathlib import Path

import pytest

from colorlib.cli import main
from colorlib.demo import _make_room, demo_files
from colorlib.inference.output_rule import Manifest


@pytest.mark.slow
def test_demo_writes_checkpoints_colorized_figures_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--size", "32"]) == 0
    for stage in ("baseline", "pretrain", "gan"):
        assert (out / "checkpoints" / f"{stage}.pt").is_file()
        assert len(list((out / "colorized" / stage).glob("*.png"))) == 2
        assert (out / "figures" / f"losses_{stage}.png").is_file()
    assert len(list((out / "figures").glob("compare_*.png"))) == 2
    report = (out / "report.md").read_text()
    for needle in ("baseline", "pretrain", "gan", "Total wall time", "32 px"):
        assert needle in report
    # The manifest lists every file the demo wrote, and nothing else.
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and p.name != Manifest.NAME)
    manifest = json.loads((out / Manifest.NAME).read_text())
    assert sorted(manifest["files"]) == written and len(written) == 3 * 4 + 2 + 1
    # A second run refuses to clobber the first unless asked to.
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--steps", "1", "--size", "32"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def _earlier_demo(out: Path) -> list[Path]:
    """The files of an earlier demo (contents faked), recorded in its manifest."""
    photos = [Path("coffee.png"), Path("china.png")]
    files = demo_files(out, photos)
    manifest = Manifest(out, "demo")
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"demo output")
        manifest.record(f)
    return files


def test_demo_overwrite_removes_its_own_files_and_nothing_else(tmp_path):
    out = tmp_path / "demo"
    files = _earlier_demo(out)
    mine = {out / "notes.txt": b"my notes", out / "checkpoints" / "my_model.pt": b"weeks of work",
            out / "colorized" / "baseline" / "grandma.png": b"a family photo"}
    for path, data in mine.items():
        path.write_bytes(data)
    with pytest.raises(FileExistsError, match="--overwrite to replace that demo's own files"):
        _make_room(out, files, overwrite=False)
    assert all(f.exists() for f in files)
    fresh = _make_room(out, files, overwrite=True)
    assert not any(f.exists() for f in files) and fresh.files == {}
    assert all(path.read_bytes() == data for path, data in mine.items())
    assert not (out / "figures").exists()  # emptied folders of the demo's go too
    assert (out / "colorized" / "baseline").is_dir()  # ... but not one holding a user's file


def test_demo_never_removes_a_file_it_did_not_write_or_that_changed(tmp_path):
    out = tmp_path / "demo"
    files = _earlier_demo(out)
    files[0].write_text("# my edited report\n")  # report.md, changed since the demo wrote it
    with pytest.raises(FileExistsError) as info:
        _make_room(out, files, overwrite=True)
    assert "report.md" in str(info.value) and "kept" in str(info.value)
    assert files[0].read_text() == "# my edited report\n"
    # No manifest at all (someone's folder that happens to hold a report.md): kept too.
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.md").write_text("quarterly report")
    with pytest.raises(FileExistsError):
        _make_room(other, demo_files(other, []), overwrite=True)
    assert (other / "report.md").read_text() == "quarterly report"
