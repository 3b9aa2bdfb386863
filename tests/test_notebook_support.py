"""colorlib.teaching.notebook: settings from the environment, figures, checkpoints, source display."""
from __future__ import annotations

import pytest

from colorlib.teaching import notebook as nb
from colorlib.training.checkpoint import CheckpointError, load_checkpoint


def make(env: dict, **kw) -> nb.Settings:
    return nb.Settings.from_env(env, **kw)


# ------------------------------------------------------------------ settings
def test_full_defaults_follow_the_tutorial():
    s = make({}, epochs=100)
    assert (s.data, s.size, s.batch_size, s.epochs, s.max_steps, s.tiny) == \
        ("coco", 256, 16, 100, None, False)
    assert s.figures.name == "figures" and s.checkpoints.name == "checkpoints"


def test_full_defaults_are_the_run_configs():
    """Issue 21, each setting has one home: a Settings field that the run config also has
    defaults to the run config's value, so the notebooks and ``colorlib train`` agree."""
    from colorlib.data.sources import DataConfig
    from colorlib.training.config import RunConfig, TrainConfig

    s = nb.Settings()
    assert (s.size, s.batch_size) == (DataConfig.size, DataConfig.batch_size)
    assert (s.epochs, s.max_steps, s.seed) == (TrainConfig.epochs, TrainConfig.max_steps,
                                               TrainConfig.seed)
    assert (s.num_filters, s.weights) == (RunConfig.num_filters, RunConfig.weights)
    run = s.run_config("pretrain")
    assert (run.data.size, run.data.batch_size, run.train.epochs, run.num_filters) == \
        (s.size, s.batch_size, s.epochs, s.num_filters)


def test_tiny_switches_to_small_fast_settings():
    s = make({"COLORLIB_TINY": "1"}, epochs=100)
    assert s.tiny and s.data == "tiny" and s.size == nb.TINY_SIZE
    assert s.max_steps == nb.TINY_STEPS and s.epochs >= 100
    assert s.batch_size == nb.TINY_BATCH and s.num_workers == 0


def test_tiny_never_writes_to_the_real_figure_or_checkpoint_folders():
    full, tiny = make({}), make({"COLORLIB_TINY": "1"})
    assert tiny.figures != full.figures and tiny.checkpoints != full.checkpoints
    if nb.repo_root() is not None:
        assert not tiny.figures.resolve().is_relative_to(nb.repo_root())


def test_tiny_size_can_be_chosen_per_notebook_and_separates_checkpoints():
    a = make({"COLORLIB_TINY": "yes"}, tiny_size=32)
    b = make({"COLORLIB_TINY": "yes"})
    assert a.size == 32 and b.size == 64
    assert a.checkpoints != b.checkpoints  # a 32 px run must not resume a 64 px one


@pytest.mark.parametrize("value", ["0", "", "no"])
def test_tiny_flag_off_values(value):
    assert not make({"COLORLIB_TINY": value}).tiny


def test_environment_overrides_win(tmp_path):
    env = {"COLORLIB_TINY": "1", "COLORLIB_DATA": str(tmp_path), "COLORLIB_SIZE": "128",
           "COLORLIB_EPOCHS": "3", "COLORLIB_MAX_STEPS": "5", "COLORLIB_BATCH_SIZE": "4",
           "COLORLIB_CHECKPOINTS": str(tmp_path / "ck"), "COLORLIB_FIGURES": str(tmp_path / "fig")}
    s = make(env)
    assert (s.data, s.size, s.epochs, s.max_steps, s.batch_size) == (str(tmp_path), 128, 3, 5, 4)
    assert s.checkpoints == tmp_path / "ck" and s.figures == tmp_path / "fig"


def test_max_steps_alone_lifts_the_epoch_limit():
    s = make({"COLORLIB_MAX_STEPS": "50"}, epochs=20)
    assert s.max_steps == 50 and s.epochs >= 1000


@pytest.mark.parametrize("env, match", [
    ({"COLORLIB_SIZE": "100"}, "COLORLIB_SIZE.*power of two"),
    ({"COLORLIB_SIZE": "16"}, "COLORLIB_SIZE"),
    ({"COLORLIB_EPOCHS": "many"}, "COLORLIB_EPOCHS.*whole number"),
    ({"COLORLIB_MAX_STEPS": "0"}, "COLORLIB_MAX_STEPS.*>= 1"),
])
def test_bad_environment_values_fail_naming_the_variable(env, match):
    with pytest.raises(ValueError, match=match):
        make(env)


def test_missing_data_folder_fails_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="COLORLIB_DATA.*nowhere"):
        make({"COLORLIB_DATA": str(tmp_path / "nowhere")})


def test_unknown_setting_is_refused():
    with pytest.raises(TypeError, match="epoch"):
        make({}, epoch=3)


def test_data_config_carries_the_settings():
    s = make({"COLORLIB_TINY": "1"})
    cfg = s.data_config()
    assert (cfg.source, cfg.size, cfg.batch_size, cfg.num_workers) == ("tiny", s.size, s.batch_size, 0)
    assert s.data_config(max_images=3).max_images == 3
    run = s.run_config("gan", resume=True)
    assert (run.stage, run.train.max_steps, run.train.epochs, run.checkpoint_dir, run.resume) == \
        ("gan", s.max_steps, s.epochs, s.checkpoints, True)
    assert run.data == s.data_config() and run.num_filters == s.num_filters


def test_settings_prints_which_run_it_is(capsys):
    nb.settings({"COLORLIB_TINY": "1"})
    assert "tiny run" in capsys.readouterr().out
    nb.settings({}, show=False)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------- display
def test_show_source_displays_colorlib_code(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    from colorlib.data.sources import split_paths

    nb.show_source(split_paths)
    assert "`split_paths` from `colorlib/data/sources.py`" in shown[0].data
    assert "def split_paths(" in shown[-1].data
    assert "<div" in shown[-1]._repr_html_()  # highlighted, not plain text


def test_show_source_names_the_file_of_a_decorated_function(monkeypatch):
    """``torch.no_grad`` wraps ``decodings``: the title names colorlib's file, not torch's."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    from colorlib.models.classify import decodings

    nb.show_source(decodings)
    assert "`decodings` from `colorlib/models/classify.py`" in shown[0].data
    assert "def decodings(" in shown[-1].data


def test_show_source_refuses_objects_without_source():
    with pytest.raises(TypeError, match="no source"):
        nb.show_source(len)


def test_save_writes_the_figure_into_the_figure_dir(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = make({"COLORLIB_FIGURES": str(tmp_path / "figs")})
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = nb.save(fig, "01_demo", s)
    assert path == tmp_path / "figs" / "01_demo.png" and path.stat().st_size > 1000
    assert not plt.fignum_exists(fig.number)  # closed: no duplicate inline display
    from IPython.lib.pretty import pretty

    assert pretty(path).startswith("saved ")


# --------------------------------------------------------------- checkpoints
def test_full_run_without_checkpoint_names_the_notebook_to_run(tmp_path):
    s = make({"COLORLIB_CHECKPOINTS": str(tmp_path)})
    with pytest.raises(nb.StageMissing, match="03_pix2pix_baseline.ipynb"):
        nb.ensure_stage("baseline", s)
    with pytest.raises(nb.StageMissing, match="COLORLIB_CHECKPOINTS"):
        nb.ensure_stage("gan", s)


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        nb.ensure_stage("final", make({"COLORLIB_CHECKPOINTS": str(tmp_path)}))


def test_encoder_weights_none_needs_no_download():
    s = make({})
    s.weights = "none"
    assert nb.encoder_weights(s) == "none"


@pytest.mark.slow
def test_ensure_stage_trains_tiny_once_then_full_run_loads_it(tmp_path, capsys):
    env = {"COLORLIB_TINY": "1", "COLORLIB_CHECKPOINTS": str(tmp_path), "COLORLIB_MAX_STEPS": "1"}
    tiny = make(env, tiny_size=32)
    path = nb.ensure_stage("baseline", tiny)
    assert path == tmp_path / "baseline.pt"
    assert load_checkpoint(path, stage="baseline")["step"] == 1
    stamp = path.stat().st_mtime_ns
    nb.ensure_stage("baseline", tiny)  # already done: resumes with nothing left to do
    assert path.stat().st_mtime_ns == stamp
    full = make({"COLORLIB_CHECKPOINTS": str(tmp_path), "COLORLIB_SIZE": "32"})  # must not train
    assert nb.ensure_stage("baseline", full) == path
    assert "loaded" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="COLORLIB_SIZE=32"):  # not for a 256 px run
        nb.ensure_stage("baseline", make({"COLORLIB_CHECKPOINTS": str(tmp_path)}))


@pytest.mark.slow
def test_ensure_stage_replaces_a_stale_tiny_checkpoint(tmp_path):
    """A tiny checkpoint of other settings is trained again; a file colorlib did not write is
    kept (issue 20: the tiny setting never replaces what it did not make)."""
    from colorlib.models.networks import ModelConfig
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    stale = Trainer.build(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                          TrainConfig(stage="baseline"), "cpu", weights=None)
    stale.run_info = {"data": "tiny", "batch_size": 8, "data_seed": 123}
    stale.save(tmp_path / "baseline.pt")
    env = {"COLORLIB_TINY": "1", "COLORLIB_CHECKPOINTS": str(tmp_path), "COLORLIB_MAX_STEPS": "1"}
    path = nb.ensure_stage("baseline", make(env, tiny_size=32))
    ckpt = load_checkpoint(path, stage="baseline")
    assert ckpt["step"] == 1 and ckpt["model"]["num_filters"] == nb.TINY_FILTERS
    (tmp_path / "baseline.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="never replaces a file it did not write"):
        nb.ensure_stage("baseline", make(env, tiny_size=32))
    assert (tmp_path / "baseline.pt").read_bytes() == b"not a checkpoint"
