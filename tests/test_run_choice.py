"""The RUN switch of the settings cells: quick, medium, full; their folders and their estimates."""
from __future__ import annotations

import pytest

from colorlib.teaching import notebook as nb
from colorlib.teaching import run_choice
from colorlib.training import cost


def make(env: dict, run: str | None = None, **kw) -> nb.Settings:
    return nb.Settings.from_env(env, run=run, **kw)


def test_full_is_the_default_and_the_tutorial_s_run():
    s = make({}, epochs=100)
    assert (s.run, s.data, s.size, s.epochs, s.tiny) == ("full", "coco", 256, 100, False)


def test_quick_is_the_tiny_setting():
    quick, tiny = make({}, "quick", epochs=100), make({"COLORLIB_TINY": "1"}, epochs=100)
    assert quick == tiny and quick.tiny and quick.run == "quick" and quick.size == nb.TINY_SIZE


def test_medium_is_the_full_run_at_half_the_size_in_folders_of_its_own():
    full, medium = make({}, "full", epochs=100), make({}, "medium", epochs=100)
    assert (medium.data, medium.epochs, medium.batch_size) == (full.data, full.epochs, full.batch_size)
    assert medium.size == full.size // 2 and not medium.tiny
    assert medium.checkpoints != full.checkpoints and medium.figures != full.figures


def test_environment_wins_over_the_cell_and_tiny_wins_over_both():
    assert make({"COLORLIB_RUN": "medium"}, "full").run == "medium"
    assert make({"COLORLIB_RUN": "full", "COLORLIB_TINY": "1"}, "medium").run == "quick"


@pytest.mark.parametrize("env, run, match", [({}, "big", "RUN = 'big'"),
                                             ({"COLORLIB_RUN": "huge"}, "full", "COLORLIB_RUN")])
def test_an_unknown_run_is_refused_in_words(env, run, match):
    with pytest.raises(ValueError, match=match):
        make(env, run)


def test_a_store_keeps_checkpoints_and_figures_of_real_runs(tmp_path):
    env = {"COLORLIB_STORE": str(tmp_path)}
    full, medium, quick = (make(env, run) for run in ("full", "medium", "quick"))
    assert (full.checkpoints, full.figures) == (tmp_path / "checkpoints", tmp_path / "figures")
    assert (medium.checkpoints, medium.figures) == (tmp_path / "checkpoints-medium",
                                                    tmp_path / "figures-medium")
    assert quick.checkpoints == tmp_path / "checkpoints-tiny-64px"
    assert tmp_path not in quick.figures.parents  # a check run leaves the store's figures alone
    mine = make({**env, "COLORLIB_FIGURES": str(tmp_path / "mine")}, "full")
    assert mine.figures == tmp_path / "mine"


def test_durations_read_as_people_write_them():
    assert [run_choice.duration(m) for m in (0.4, 17.2, 200, 5000)] == \
        ["< 1 min", "17 min", "3.3 h", "3.5 days"]


@pytest.mark.slow
def test_the_settings_cell_prints_the_three_runs_from_the_cost_code(capsys):
    nb.settings({}, run="medium", stage="baseline", epochs=100)
    out = capsys.readouterr().out
    for name in run_choice.RUNS:
        assert f"\n{name}" in out
    assert "medium <-" in out and "WARNING: no GPU" in out  # this machine has no GPU in CI
    medium = make({}, "medium", epochs=100)
    c = cost.stage_cost("baseline", images=8000 * 100, size=128, epochs=1,
                        measure_checkpoint=False)
    assert f"  {run_choice.duration(c.t4_minutes_per_epoch)}  " in out
    assert run_choice.duration(c.cpu_minutes_per_epoch) in out
    assert run_choice.minutes("baseline", medium, 8000 * 100) == \
        (c.t4_minutes_per_epoch, c.cpu_minutes_per_epoch)


def test_notebooks_that_train_nothing_get_no_estimates(capsys):
    nb.settings({}, run="full")
    out = capsys.readouterr().out
    assert "trains nothing" in out and "WARNING" not in out
