"""benchmarks/long_run.py report: a run folder in, the published results file out."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "legacy_baseline_step4.pt"


@pytest.fixture
def long_run():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import long_run

    yield long_run
    sys.path.remove(str(ROOT / "benchmarks"))


def scores(psnr, auc, cf_delta, grey):
    return {"psnr": psnr, "ssim": 0.9, "auc": auc, "colorfulness": 20.0,
            "delta_colorfulness": cf_delta, "grey_fraction": grey}


def fake_run(tmp_path: Path, long_run) -> argparse.Namespace:
    data = tmp_path / "photos"
    for split, n in (("train", 8), ("val", 3)):
        (data / split).mkdir(parents=True)
        for i in range(n):
            (data / split / f"{i}.jpg").write_bytes(b"")
    out = tmp_path / "run"
    (out / "baseline").mkdir(parents=True)
    shutil.copy(FIXTURE, out / "baseline" / "baseline.pt")
    (out / "eval").mkdir()
    for key, model in (("colorlib_baseline", scores(24.0, 90.0, -3.0, 0.4)),
                       ("colorlib_pretrain", scores(25.1, 91.0, -20.0, 0.6)),
                       ("colorlib_gan", scores(24.5, 90.5, -4.0, 0.3))):
        (out / "eval" / f"{key}.json").write_text(json.dumps(
            {"images": 3, "model": model,
             "baselines": {"greyscale": scores(24.0, 89.5, -30.0, 1.0)}}))
    args = long_run.build_parser().parse_args(
        ["report", "--out", str(out), "--data", str(data), "--size", "32", "--batch-size", "2",
         "--threads", "1", "--results", str(tmp_path / "published_results.json"),
         "--plot", str(tmp_path / "ttq.png")])
    (out / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": "baseline/baseline", "commit": "abc", "returncode": 0, "wall_seconds": 60.0,
         "cpu_seconds": 110.0},
        {"step": "baseline/baseline", "commit": "def", "returncode": 0, "wall_seconds": 30.5,
         "cpu_seconds": 50.0},
        {"step": "baseline/baseline", "commit": "def", "returncode": 1, "wall_seconds": 9.0,
         "cpu_seconds": 9.0})))
    return args


def test_report_reads_checkpoints_and_scores(tmp_path, long_run):
    args = fake_run(tmp_path, long_run)
    result = long_run.report(args)
    assert json.loads(args.results.read_text()) == result
    base = result["stages"]["colorlib_baseline"]
    # The fixture is a 4-step baseline run of 2 epochs (its own epoch counter, not a count
    # derived from the photos in the folder): 2 epochs of 10 asked for.
    assert (base["steps"], base["images_seen"], base["epochs"]) == (4, 8, 2.0)
    assert base["complete"] is False and base["target_epochs"] == 10
    assert [e["epoch"] for e in base["epoch_log"]] == sorted({e["epoch"] for e in base["epoch_log"]})
    assert sum(e["steps"] for e in base["epoch_log"]) == 4
    assert result["status"] == "partial"  # most stages were never trained
    assert result["scores"]["greyscale"]["psnr"] == 24.0
    assert result["settings"]["train_photos"] == 8 and result["settings"]["val_photos"] == 3
    # costs summed over the successful calls of the stage, commits from steps.jsonl
    assert base["process"] == {"calls": 2, "wall_seconds": 90.5, "cpu_seconds": 160.0,
                               "commits": ["abc", "def"]}
    assert result["commits"] == ["abc", "def"]
    assert result["command"] == ("nice -n 5 python benchmarks/long_run.py run --size 32 "
                                 "--batch-size 2 --threads 1")


def test_targets_are_judged_from_the_scores(tmp_path, long_run):
    result = long_run.report(fake_run(tmp_path, long_run))
    met = {t["target"]: t["met"] for t in result["targets"]}
    gap = {t["target"]: t["value"] for t in result["targets"]}
    final = "final generator (colorlib_gan)"
    assert met["L1 generator PSNR above greyscale (dB)"] is True        # 25.1 - 24.0 >= 1.0
    assert met[f"{final} |ΔCF|"] is True                                # 4.0 <= 5
    assert met[f"{final} near-grey share"] is True                      # 0.3 <= 0.35
    assert met[f"{final} PSNR minus greyscale (dB)"] is True            # 0.5 >= -0.3
    assert met[f"{final} AuC minus greyscale (points)"] is True         # 90.5 >= 89.5
    assert gap[f"{final} PSNR minus greyscale (dB)"] == pytest.approx(0.5)


def test_targets_can_be_missed(long_run):
    grey = scores(24.0, 90.0, -30.0, 1.0)
    sc = {"greyscale": grey, "colorlib_pretrain": scores(24.5, 90.2, -20.0, 0.6),
          "colorlib_gan": scores(23.0, 89.0, -1.0, 0.3),
          "gan_best_epoch": scores(23.5, 89.9, -6.0, 0.4)}
    met = {t["target"]: t["met"] for t in long_run.targets(sc, {})}
    final = "final generator (gan_best_epoch)"  # the epoch chosen on validation is judged
    assert met["L1 generator PSNR above greyscale (dB)"] is False       # 0.5 < 1.0
    assert met[f"{final} |ΔCF|"] is False and met[f"{final} near-grey share"] is False
    assert met[f"{final} PSNR minus greyscale (dB)"] is False           # -0.5 < -0.3
    assert met[f"{final} AuC minus greyscale (points)"] is False


def test_time_to_quality_interpolates_the_first_crossing(long_run):
    ours = {"val_history": [{"train_minutes": 2.0, "val_l1": 0.20},
                            {"train_minutes": 4.0, "val_l1": 0.10},
                            {"train_minutes": 6.0, "val_l1": 0.12}]}
    seed = {"val_history": [{"train_minutes": 3.0, "val_l1": 0.25},
                            {"train_minutes": 6.0, "val_l1": 0.15}]}
    ttq = long_run.time_to_quality({"colorlib_pretrain": ours, "seed_pretrain": seed})
    # 0.15 is halfway between 0.20 (2 min) and 0.10 (4 min): 3 minutes, against the seed's 6
    assert ttq["colorlib_minutes"] == pytest.approx(3.0) and ttq["ratio"] == pytest.approx(2.0)
    assert long_run.minutes_to_reach(ours["val_history"], 0.05) is None
    assert long_run.minutes_to_reach(ours["val_history"], 0.3) == 2.0


def test_epoch_log_averages_each_epoch_and_joins_validation(long_run):
    history = [{"step": 1, "epoch": 0, "loss_G_L1": 1.0}, {"step": 2, "epoch": 0, "loss_G_L1": 3.0},
               {"step": 3, "epoch": 1, "loss_G_L1": 0.5}]
    val = [{"epoch": 1, "step": 2, "val_l1": 0.25}]
    assert long_run.epoch_log(history, val) == [
        {"epoch": 1, "steps": 2, "loss_G_L1": 2.0, "val_l1": 0.25},
        {"epoch": 2, "steps": 1, "loss_G_L1": 0.5}]
