"""`colorlib demo`: the main job writes everything the README promises."""
import pytest

from colorlib.cli import main


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
    # A second run refuses to clobber the first unless asked to.
    assert main(["demo", "--out", str(out), "--steps", "1", "--size", "32"]) == 2
    assert "--overwrite" in capsys.readouterr().err
