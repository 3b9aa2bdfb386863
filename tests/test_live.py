"""Live feedback while training: a line per report that stays, and the validation colours."""
import pytest
from robust_helpers import stage_run

from colorlib.data.sources import DataConfig, find_images
from colorlib.teaching.live_feedback import LiveProgress
from colorlib.training.runner import train_stage


@pytest.mark.slow
def test_a_line_per_epoch_and_per_step_budget_with_the_validation_photos(photo_folder, tmp_path, capsys):
    val_paths = find_images(photo_folder / "val")
    live = LiveProgress(val_paths, size=32, every_steps=2, folder=tmp_path / "live", image_every=2)
    data = DataConfig(source=str(photo_folder), size=32, batch_size=4)
    train_stage(stage_run("baseline", data, tmp_path / "ck", epochs=2, num_filters=8,
                          progress=False), callbacks=[live], log=lambda s: None)
    # 12 photos / batch 4: 3 steps an epoch; reports at steps 2, 4, 6 and epochs 1, 2
    printed = capsys.readouterr().out.splitlines()
    assert printed == live.lines
    labels = [line.split(":")[0].split(" (")[0] for line in live.lines]
    assert labels == ["step 2", "epoch 1", "step 4", "step 6", "epoch 2"]
    epoch_line = live.lines[1]
    assert epoch_line.startswith("epoch 1 (step 3): ")
    for part in ("loss_G_L1", "loss_G_GAN", "loss_D", "val L1", "min so far"):
        assert part in epoch_line
    assert "val L1" not in live.lines[0]  # no validation within an epoch
    saved = sorted(p.name for p in (tmp_path / "live").glob("*.png"))
    shown = [label for label in labels if label != "epoch 1"]  # photos every 2nd epoch only
    assert saved == sorted(f"baseline_{kind}{int(n):04d}.png" for kind, n in map(str.split, shown))


@pytest.mark.slow
def test_without_photos_it_only_prints(photo_folder, tmp_path, capsys):
    live = LiveProgress()
    data = DataConfig(source=str(photo_folder), size=32, batch_size=4)
    train_stage(stage_run("pretrain", data, tmp_path / "ck", epochs=1, weights=None,
                          progress=False), callbacks=[live], log=lambda s: None)
    assert len(live.lines) == 1 and live.lines[0].startswith("epoch 1 (step 3): ")
    assert "loss_G_L1" in live.lines[0] and "loss_D" not in live.lines[0]
