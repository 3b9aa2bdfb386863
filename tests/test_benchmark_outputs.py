"""The output rule of issue 20 in the benchmark scripts (benchmarks/*.py).

Every file a benchmark script writes is decided before any work (one line naming the flag
when the path is unusable), written atomically (a full disk keeps the earlier file and
names it) and never over an input of the command or a file colorlib did not write; a
results file the script wrote itself (``published_results.json``, ``benchmarks/results.json``,
``RESULTS.md``, the plots) is replaced, which is its purpose. Nothing here trains or
measures: the scripts' work is faked or never reached.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image
from robust_helpers import gradient
from test_long_run_report import fake_run
from test_output_rule import ENOSPC, full_disk

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def load(name: str):
    """A benchmark script as a module (benchmarks/ on the path, as when it runs)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    key = f"bench_script_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture(scope="module")
def long_run():
    return load("long_run")


def call(main, *argv) -> tuple[int, list[str]]:
    """Run a script's ``main``; its exit status and what it printed on stderr, line by line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv]) or 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    text = err.getvalue()
    assert "Traceback" not in text, text
    return code, [line for line in text.splitlines() if line.strip()]


def refused(code: int, lines: list[str], flag: str, path: Path | None = None) -> str:
    """One line, exit 2, naming the flag (and the file)."""
    assert code == 2 and len(lines) == 1, lines
    assert f"{flag}:" in lines[0], lines
    assert path is None or str(path) in lines[0], lines
    return lines[0]


def user_plot(path: Path) -> Path:
    """A plot the user made with matplotlib (not marked as colorlib's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def no_debris(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------- long_run.py report
def report_argv(args, **change) -> list:
    flags = {"--out": args.out, "--data": args.data, "--size": 32, "--batch-size": 2,
             "--threads": 1, "--results": args.results, "--plot": args.plot}
    flags.update({f"--{k}": v for k, v in change.items()})
    return ["report", *[x for kv in flags.items() for x in kv]]


@pytest.fixture()
def run_folder(tmp_path, long_run):
    return fake_run(tmp_path, long_run)


def no_work(monkeypatch, module, *names) -> None:
    """Reading the run (or measuring) fails the test: a refusal must come before it."""
    def started(*_a, **_k):
        raise AssertionError("work started before the outputs were decided")

    for name in names:
        monkeypatch.setattr(module, name, started)


INPUTS = {  # the run's own inputs, relative to the fake run's tmp_path
    "steps log": "run/steps.jsonl",
    "checkpoint": "run/baseline/baseline.pt",
    "score": "run/eval/colorlib_gan.json",
    "photo": "photos/train/0.jpg",
}


@pytest.mark.parametrize("flag", ["results", "plot"])
@pytest.mark.parametrize("what", list(INPUTS))
def test_long_run_report_never_writes_over_the_run_it_reads(run_folder, long_run, tmp_path,
                                                            monkeypatch, flag, what):
    target = tmp_path / INPUTS[what]
    before = target.read_bytes()
    no_work(monkeypatch, long_run, "step_log", "stage_record", "scores")
    code, lines = call(long_run.main, *report_argv(run_folder, **{flag: target}))
    line = refused(code, lines, f"--{flag}", target)
    assert "is an input of this command" in line
    assert target.read_bytes() == before


FOREIGN = {
    "a user's JSON": lambda p: p.write_text('{"my": "own numbers"}'),
    "a user's notes": lambda p: p.write_text("notes from weeks of work"),
    "another script's results": lambda p: shutil.copy(BENCH / "results.json", p),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_long_run_report_never_replaces_a_file_colorlib_did_not_write(run_folder, long_run,
                                                                      tmp_path, kind):
    target = tmp_path / "mine.json"
    FOREIGN[kind](target)
    before = target.read_bytes()
    code, lines = call(long_run.main, *report_argv(run_folder, results=target))
    line = refused(code, lines, "--results", target)
    assert "not a results file of benchmarks/long_run.py" in line
    assert target.read_bytes() == before


def test_long_run_report_plot_never_replaces_a_users_plot(run_folder, long_run, tmp_path):
    mine = user_plot(tmp_path / "my_plot.png")
    before = mine.read_bytes()
    code, lines = call(long_run.main, *report_argv(run_folder, plot=mine))
    refused(code, lines, "--plot", mine)
    assert mine.read_bytes() == before and not run_folder.results.exists()


def test_long_run_report_replaces_the_published_results_it_wrote(run_folder, long_run,
                                                                 tmp_path):
    """The committed published_results.json (copied, not touched) counts as its own: a
    report replaces it, which is its purpose, without a flag."""
    target = tmp_path / "published.json"
    shutil.copy(ROOT / "colorlib" / "teaching" / "published_results.json", target)
    code, lines = call(long_run.main, *report_argv(run_folder, results=target))
    assert code == 0, lines
    assert json.loads(target.read_text())["status"] == "partial"  # the fake run's
    code, lines = call(long_run.main, *report_argv(run_folder, results=target))
    assert code == 0, lines  # and again: its own file now
    no_debris(tmp_path)


def test_long_run_report_on_a_full_disk_keeps_the_earlier_results(run_folder, long_run,
                                                                  tmp_path, monkeypatch):
    target = tmp_path / "published.json"
    shutil.copy(ROOT / "colorlib" / "teaching" / "published_results.json", target)
    before = target.read_bytes()
    full_disk(monkeypatch)
    code, lines = call(long_run.main, *report_argv(run_folder, results=target))
    monkeypatch.undo()
    line = refused(code, lines, "", target)
    assert ENOSPC in line and target.read_bytes() == before
    no_debris(tmp_path)


def _parent_is_a_file(tmp_path):
    (tmp_path / "blocker").write_text("a file")
    return tmp_path / "blocker" / "results.json"


def _dangling(tmp_path):
    (tmp_path / "link.json").symlink_to(tmp_path / "gone" / "x.json")
    return tmp_path / "link.json"


def _folder(tmp_path):
    (tmp_path / "a_folder").mkdir()
    return tmp_path / "a_folder"


UNUSABLE = {"a folder": (_folder, "is a folder"),
            "a file where a folder goes": (_parent_is_a_file, "exists and is not a folder"),
            "a dangling symbolic link": (_dangling, "symbolic link"),
            "an unwritable folder": (lambda t: t / "ro" / "results.json", "Permission denied")}


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_long_run_report_refuses_an_unusable_results_path_before_any_work(
        run_folder, long_run, tmp_path, monkeypatch, case):
    make, words = UNUSABLE[case]
    target = make(tmp_path)
    if case == "an unwritable folder":  # root writes anywhere: the system says no instead
        import colorlib.cli

        real = colorlib.cli.tempfile.TemporaryFile

        def denied(*a, dir=None, **k):
            if Path(dir) == tmp_path / "ro":
                raise PermissionError(13, os.strerror(13))
            return real(*a, dir=dir, **k)

        monkeypatch.setattr(colorlib.cli.tempfile, "TemporaryFile", denied)
    no_work(monkeypatch, long_run, "step_log", "stage_record", "scores")
    code, lines = call(long_run.main, *report_argv(run_folder, results=target))
    line = refused(code, lines, "--results")
    assert words in line and "File exists" not in line


def test_long_run_report_results_and_plot_are_two_files(run_folder, long_run, tmp_path):
    code, lines = call(long_run.main, *report_argv(run_folder, plot=run_folder.results))
    refused(code, lines, "--plot", run_folder.results)


def test_long_run_report_needs_the_run_folder(run_folder, long_run, tmp_path):
    """A mistyped --out used to report an empty 'partial' run over the published results."""
    target = tmp_path / "published.json"
    shutil.copy(ROOT / "colorlib" / "teaching" / "published_results.json", target)
    before = target.read_bytes()
    code, lines = call(long_run.main, *report_argv(run_folder, out=tmp_path / "typo",
                                                   results=target))
    refused(code, lines, "--out", tmp_path / "typo")
    assert target.read_bytes() == before and not (tmp_path / "typo").exists()


def test_long_run_time_to_quality_plot_replaces_its_own_and_is_marked(long_run, tmp_path):
    from colorlib.photos.image_files import FIGURE_MARKER, software_of

    result = {"time_to_quality": {"seed_final_val_l1": 0.2, "colorlib_minutes": 1.0,
                                  "seed_minutes": 2.0, "ratio": 2.0},
              "settings": {"precision": "colorlib: fp32; seed tutorial: fp32"},
              "stages": {k: {"val_history": [{"train_minutes": 1.0, "val_l1": 0.2}]}
                         for k in ("colorlib_pretrain", "seed_pretrain")}}
    plot = tmp_path / "ttq.png"
    long_run.plot_time_to_quality(result, plot)
    assert software_of(plot) == FIGURE_MARKER
    long_run.plot_time_to_quality(result, plot)  # its own: replaced
    no_debris(tmp_path)


def test_the_committed_plots_count_as_colorlibs_own(long_run):
    """benchmarks/ holds only what colorlib writes: its plots from before the figure marker
    are replaced by the next report (checked, not written)."""
    from bench_outputs import plot_output

    for name in ("results.png", "time_to_quality.png"):
        assert plot_output(BENCH / name, "--png") == BENCH / name


def test_the_steps_log_survives_a_full_disk(long_run, tmp_path, monkeypatch):
    import argparse

    args = argparse.Namespace(out=tmp_path, threads=1)
    log = tmp_path / "steps.jsonl"
    log.write_text('{"step": "earlier"}\n')
    full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        long_run.logged_run(args, "x", [sys.executable, "-c", "pass"])
    monkeypatch.undo()
    assert ENOSPC in str(info.value) and str(log) in str(info.value)
    assert log.read_text() == '{"step": "earlier"}\n'
    long_run.logged_run(args, "x", [sys.executable, "-c", "pass"])
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == ["earlier",
                                                                                  "x"]
    no_debris(tmp_path)


def test_re_evaluating_a_newer_checkpoint_replaces_this_runs_own_score(long_run, tmp_path,
                                                                       monkeypatch):
    """colorlib evaluate keeps an earlier report without --overwrite: the run passes it when
    the report is older than the checkpoint, and only then."""
    import argparse

    seen = []
    monkeypatch.setattr(long_run, "logged_run", lambda args, name, cmd, done: seen.append(cmd))
    args = argparse.Namespace(out=tmp_path, data=tmp_path / "photos", device="cpu")
    ckpt = tmp_path / "gan.pt"
    ckpt.write_bytes(b"checkpoint")
    long_run.evaluate(args, "colorlib_gan", ckpt)
    (tmp_path / "eval").mkdir()
    old = tmp_path / "eval" / "colorlib_gan.json"
    old.write_text("{}")
    os.utime(old, (ckpt.stat().st_mtime - 60,) * 2)
    long_run.evaluate(args, "colorlib_gan", ckpt)
    assert "--overwrite" not in seen[0] and "--overwrite" in seen[1]


def test_kept_epochs_are_copied_atomically_with_their_times(long_run, tmp_path, monkeypatch):
    src = tmp_path / "gan.pt"
    src.write_bytes(b"epoch 3")
    os.utime(src, (1_000_000_000, 1_000_000_000))
    snap = tmp_path / "gan_epochs" / "gan_e3.pt"
    long_run.keep_copy(src, snap)
    assert snap.read_bytes() == b"epoch 3" and snap.stat().st_mtime == 1_000_000_000
    src.write_bytes(b"epoch 4")
    full_disk(monkeypatch)
    with pytest.raises(OSError, match=ENOSPC):
        long_run.keep_copy(src, snap)
    monkeypatch.undo()
    assert snap.read_bytes() == b"epoch 3"
    no_debris(snap.parent)


# ----------------------------------------------------------------- report.py
@pytest.fixture()
def speed(tmp_path):
    """benchmarks/results.json and RESULTS.md as an earlier run left them (copies)."""
    shutil.copy(BENCH / "results.json", tmp_path / "results.json")
    shutil.copy(BENCH / "RESULTS.md", tmp_path / "RESULTS.md")
    return tmp_path


def test_report_py_replaces_its_own_table_and_keeps_the_hand_written_part(speed):
    report = load("report")
    md, png = speed / "RESULTS.md", speed / "ratios.png"
    tail = md.read_text()[md.read_text().index(report.KEEP_MARKER):]
    code, lines = call(report.main, speed / "results.json", "--md", md, "--png", png)
    assert code == 0, lines
    assert md.read_text().rstrip().endswith(tail.rstrip()) and png.is_file()
    code, lines = call(report.main, speed / "results.json", "--md", md, "--png", png)
    assert code == 0, lines  # the plot it drew is its own: replaced
    no_debris(speed)


@pytest.mark.parametrize("flag", ["--md", "--png"])
def test_report_py_never_writes_over_its_input(speed, monkeypatch, flag):
    report = load("report")
    source = speed / "results.json"
    before = source.read_bytes()
    no_work(monkeypatch, report, "plot", "markdown")
    argv = {"--md": speed / "RESULTS.md", "--png": speed / "ratios.png", flag: source}
    code, lines = call(report.main, source, *[x for kv in argv.items() for x in kv])
    line = refused(code, lines, flag, source)
    assert "is an input of this command" in line and source.read_bytes() == before


@pytest.mark.parametrize("flag,name,make", [
    ("--md", "notes.md", lambda p: p.write_text("# My notes\n")), ("--png", "mine.png", user_plot)])
def test_report_py_never_replaces_a_file_colorlib_did_not_write(speed, monkeypatch, flag, name,
                                                                make):
    report = load("report")
    mine = speed / name
    make(mine)
    before = mine.read_bytes()
    no_work(monkeypatch, report, "plot", "markdown")
    argv = {"--md": speed / "RESULTS.md", "--png": speed / "ratios.png", flag: mine}
    code, lines = call(report.main, speed / "results.json",
                       *[x for kv in argv.items() for x in kv])
    refused(code, lines, flag, mine)
    assert mine.read_bytes() == before


def test_report_py_on_a_full_disk_keeps_the_earlier_files(speed, monkeypatch):
    report = load("report")
    md, png = speed / "RESULTS.md", speed / "ratios.png"
    assert call(report.main, speed / "results.json", "--md", md, "--png", png)[0] == 0
    before = {p: p.read_bytes() for p in (md, png)}
    full_disk(monkeypatch)
    code, lines = call(report.main, speed / "results.json", "--md", md, "--png", png)
    monkeypatch.undo()
    line = refused(code, lines, "")
    assert ENOSPC in line and (str(png) in line or str(md) in line)
    assert {p: p.read_bytes() for p in (md, png)} == before
    no_debris(speed)


def test_report_py_names_a_missing_input(tmp_path):
    report = load("report")
    code, lines = call(report.main, tmp_path / "nope.json", "--png", tmp_path / "r.png")
    refused(code, lines, "json", tmp_path / "nope.json")


# ----------------------------------------------------------------- run.py
@pytest.fixture()
def fake_speed(tmp_path, monkeypatch):
    """run.py with its measures faked: photos in tmp_path, one made-up data measure."""
    run = load("run")
    photos = []
    for i in range(3):
        photos.append(tmp_path / "photos" / f"{i}.png")
        photos[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(gradient(8, 8)).save(photos[-1])
    monkeypatch.setattr(run, "seed_module", lambda: None)
    monkeypatch.setattr(run, "photo_list", lambda n: (photos, "fake photos"))
    monkeypatch.setattr(run, "measure_lab_conversion", lambda paths, s: {})
    monkeypatch.setattr(run, "measure_data_pipeline", lambda seed, paths, s: {
        "data_pipeline": run.entry([1.0, 1.0], [2.0, 2.0], "images/s")})
    monkeypatch.setattr(sys, "argv", [str(BENCH / "run.py")])  # meta.command names run.py
    return run, photos


def run_py(run, target):
    return call(run.main, "--only", "data", "--device", "cpu", "--workers", "0", "--threads",
                "1", "--json", target)


def test_run_py_replaces_its_own_results(fake_speed, tmp_path):
    run, _ = fake_speed
    target = tmp_path / "results.json"
    shutil.copy(BENCH / "results.json", target)  # as the committed one
    code, lines = run_py(run, target)
    assert code == 0, lines
    assert json.loads(target.read_text())["data_pipeline"]["ratio"] == 2.0
    assert run_py(run, target)[0] == 0
    no_debris(tmp_path)


def test_run_py_never_writes_over_a_photo_it_measures(fake_speed, monkeypatch):
    run, photos = fake_speed
    before = photos[1].read_bytes()
    no_work(monkeypatch, run, "measure_lab_conversion", "measure_data_pipeline")
    code, lines = run_py(run, photos[1])
    line = refused(code, lines, "--json", photos[1])
    assert "is an input of this command" in line and photos[1].read_bytes() == before


@pytest.mark.parametrize("kind", list(FOREIGN)[:2] + ["long_run's results"])
def test_run_py_never_replaces_a_file_colorlib_did_not_write(fake_speed, tmp_path,
                                                             monkeypatch, kind):
    run, _ = fake_speed
    target = tmp_path / "mine.json"
    if kind == "long_run's results":
        shutil.copy(ROOT / "colorlib" / "teaching" / "published_results.json", target)
    else:
        FOREIGN[kind](target)
    before = target.read_bytes()
    no_work(monkeypatch, run, "measure_lab_conversion", "measure_data_pipeline")
    code, lines = run_py(run, target)
    refused(code, lines, "--json", target)
    assert target.read_bytes() == before


def test_run_py_on_a_full_disk_keeps_the_earlier_results(fake_speed, tmp_path, monkeypatch):
    run, _ = fake_speed
    target = tmp_path / "results.json"
    shutil.copy(BENCH / "results.json", target)
    before = target.read_bytes()
    full_disk(monkeypatch)
    code, lines = run_py(run, target)
    monkeypatch.undo()
    line = refused(code, lines, "", target)
    assert ENOSPC in line and target.read_bytes() == before
    no_debris(tmp_path)


@pytest.mark.parametrize("case", ["a folder", "a dangling symbolic link"])
def test_run_py_refuses_an_unusable_json_path_before_measuring(fake_speed, tmp_path,
                                                               monkeypatch, case):
    run, _ = fake_speed
    make, words = UNUSABLE[case]
    no_work(monkeypatch, run, "measure_lab_conversion", "measure_data_pipeline")
    code, lines = run_py(run, make(tmp_path))
    assert words in refused(code, lines, "--json")


# ----------------------------------------------------------------- the other scripts
def test_classify_step_and_gpu_check_decide_json_before_any_work(tmp_path, monkeypatch):
    mine = tmp_path / "mine.json"
    mine.write_text('{"meta": {"command": "my own"}}')
    before = mine.read_bytes()
    classify = load("classify_step")
    no_work(monkeypatch, classify, "batches", "step_blocks", "loss_blocks")
    refused(*call(classify.main, "--json", mine), "--json", mine)
    gpu = load("gpu_check")
    no_work(monkeypatch, gpu, "run", "train_stages")
    refused(*call(gpu.main, "--tiny", "--json", mine), "--json", mine)
    refused(*call(gpu.main, "--tiny", "--json", _folder(tmp_path)), "--json")
    assert mine.read_bytes() == before


def test_before_after_names_a_checkout_without_colorlib_and_decides_json_first(tmp_path,
                                                                               monkeypatch):
    ba = load("before_after")
    no_work(monkeypatch, ba, "measure")
    monkeypatch.setattr(ba.run, "photo_list", lambda n: ([tmp_path / "photo.png"], "fake"))
    refused(*call(ba.main, "--before", tmp_path, "--json", tmp_path / "x.json"), "--before",
            tmp_path)
    mine = tmp_path / "mine.json"
    mine.write_text('{"meta": {"command": "my own"}}')
    refused(*call(ba.main, "--before", ROOT, "--json", mine), "--json", mine)
    assert mine.read_text() == '{"meta": {"command": "my own"}}'
    assert not (tmp_path / "x.json").exists()


@pytest.fixture()
def quality_run_folder(tmp_path):
    data = tmp_path / "photos"
    (data / "train").mkdir(parents=True)
    out = tmp_path / "run"
    (out / "eval").mkdir(parents=True)
    model = {"psnr": 20.0, "ssim": 0.9, "auc": 90.0, "colorfulness": 20.0,
             "delta_colorfulness": -3.0, "grey_fraction": 0.4}
    (out / "eval" / "colorlib_gan.json").write_text(json.dumps(
        {"written_by": "colorlib evaluate", "images": 2, "model": model, "baselines": {}}))
    return data, out


@pytest.mark.parametrize("target", ["a user's file", "a score of the run", "its own summary"])
def test_quality_run_publish_follows_the_rule(quality_run_folder, tmp_path, target):
    quality = load("quality_run")
    data, out = quality_run_folder
    path = {"a user's file": tmp_path / "figures_run.json",
            "a score of the run": out / "eval" / "colorlib_gan.json",
            "its own summary": out / "results.json"}[target]
    if target == "a user's file":
        path.write_text('{"mine": 1}')
    before = path.read_bytes() if path.exists() else None
    code, lines = call(quality.main, "report", "--out", out, "--data", data, "--publish", path)
    refused(code, lines, "--publish", path)
    assert (path.read_bytes() if path.exists() else None) == before
    assert not (out / "results.json").exists()  # refused before anything was written


def test_quality_run_replaces_its_own_summary_and_published_numbers(quality_run_folder,
                                                                    tmp_path):
    quality = load("quality_run")
    data, out = quality_run_folder
    publish = tmp_path / "published_numbers.json"
    for _ in range(2):  # the second report replaces what the first published
        code, lines = call(quality.main, "report", "--out", out, "--data", data, "--publish",
                           publish)
        assert code == 0, lines
    assert json.loads(publish.read_text())["scores"]["colorlib_gan"]["psnr"] == 20.0
    (out / "results.md").write_text("my table\n")  # the user's now
    code, lines = call(quality.main, "report", "--out", out, "--data", data)
    refused(code, lines, "--out", out / "results.md")
    assert (out / "results.md").read_text() == "my table\n"


# ----------------------------------------------------------------- bad flags
BAD_FLAGS = [
    ("long_run", ["report", "--size", "48"], "--size"),
    ("long_run", ["run", "--threads", "0"], "--threads"),
    ("long_run", ["run", "--batch-size", "-2"], "--batch-size"),
    ("long_run", ["run", "--save-every", "-1"], "--save-every"),
    ("long_run", ["run", "--gan-epochs", "0"], "--gan-epochs"),
    ("run", ["--only", "gpu"], "--only"),
    ("run", ["--workers", "-1"], "--workers"),
    ("run", ["--threads", "0"], "--threads"),
    ("quality_run", ["colorlib", "--stage", "pretrain", "--minutes", "nan"], "--minutes"),
    ("quality_run", ["all", "--pretrain-min", "-5"], "--pretrain-min"),
    ("quality_run", ["evaluate-part", "--only", "colorlib_gam"], "--only"),
    ("gpu_check", ["--tiny", "--skip", "tset"], "--skip"),
    ("gpu_check", ["--tiny", "--steps", "0"], "--steps"),
    ("classify_step", ["--rounds", "0"], "--rounds"),
    ("classify_step", ["--size", "50"], "--size"),
    ("before_after", ["--before", ".", "--rounds", "0"], "--rounds"),
    ("before_after", ["--before", ".", "--stages", "pretrain,baseline"], "--stages"),
]
# What each script would start if a bad flag got through: faked to fail, so that without
# the checks a test fails instead of training or measuring for real.
WORK = {"long_run": ("run", "evaluate_all", "report", "logged_run"),
        "run": ("seed_module", "photo_list"),
        "quality_run": ("run_all", "train_colorlib", "train_seed", "evaluate", "evaluate_part",
                        "report"),
        "gpu_check": ("run", "train_stages"),
        "classify_step": ("batches", "step_blocks", "loss_blocks"),
        "before_after": ("measure",)}


@pytest.mark.parametrize("script,argv,flag", BAD_FLAGS,
                         ids=[f"{s} {f}" for s, _, f in BAD_FLAGS])
def test_bad_flags_are_named_before_any_work(script, argv, flag, tmp_path, monkeypatch):
    module = load(script)
    no_work(monkeypatch, module, *WORK[script])
    (tmp_path / "photos" / "train").mkdir(parents=True)
    places = {"long_run": ["--out", tmp_path / "out", "--data", tmp_path / "photos"],
              "quality_run": ["--out", tmp_path / "out", "--data", tmp_path / "photos"]}
    json_flag = [] if script in places else ["--json", tmp_path / "x.json"]
    code, lines = call(module.main, *argv, *places.get(script, []), *json_flag)
    assert code == 2 and lines[-1].split(": error: ")[1].startswith(f"argument {flag}"), lines
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "out").exists()


def test_run_py_names_a_bad_device(fake_speed, tmp_path):
    run, _ = fake_speed
    code, lines = call(run.main, "--device", "gpu0", "--json", tmp_path / "x.json")
    refused(code, lines, "--device")
