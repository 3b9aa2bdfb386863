"""Cost before you start: counted FLOPs, measured checkpoint sizes, and where the CPU figures come from."""
import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from colorlib.models.algorithms import build_model
from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
from colorlib.training import cost
from colorlib.training.checkpoint import checkpoint_path

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_throughput_constants_are_the_benchmark_file_s():
    measured = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    for stage, images_per_s in cost.CPU_MEASURED_IMAGES_PER_S.items():
        entry = measured[f"{stage}_step"]
        assert entry["colorlib"] == pytest.approx(images_per_s)
        assert entry["size_px"] == cost.CPU_MEASURED_SIZE
    assert measured["meta"]["batch"] == 16 and measured["meta"]["threads"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["baseline", "pretrain", "gan"])
def test_counted_flops_match_one_real_training_step(stage):
    from colorlib.models.stages import get_stage

    size, filters = 64, 8  # batch 2: BatchNorm in train mode needs more than one value
    cfg = ModelConfig(arch=get_stage(stage).arch, size=size, num_filters=filters)
    net_D = build_discriminator(cfg) if get_stage(stage).adversarial else None
    model = build_model(stage, cost.without_type_casts(build_generator(cfg, None)), net_D)
    L, ab = torch.randn(2, 1, size, size), torch.rand(2, 2, size, size) - 0.5
    with FlopCounterMode(display=False) as counter:
        model.train_step(L, ab)
    assert counter.get_total_flops() / 2 == cost.training_flops_per_image(stage, size, filters)


def test_counting_leaves_out_only_the_output_s_type_cast():
    from fastai.layers import ToTensorBase

    cfg = ModelConfig(arch="resnet18_unet", size=32, num_filters=8)
    torch.manual_seed(0)
    net = build_generator(cfg, None).eval()
    L = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        before = net(L)
        assert any(isinstance(m, ToTensorBase) for m in net.modules())
        after = cost.without_type_casts(net)(L)
    assert not any(isinstance(m, ToTensorBase) for m in net.modules())
    assert type(after) is torch.Tensor and torch.equal(before.as_subclass(torch.Tensor), after)


@pytest.mark.slow
def test_flops_grow_with_the_image_area():
    small = cost.training_flops_per_image("pretrain", 64)
    big = cost.training_flops_per_image("pretrain", 128)
    assert 3.5 < big / small < 4.5


def test_checkpoint_size_is_what_a_saved_checkpoint_takes(tmp_path):
    from colorlib.training.config import TrainConfig
    from colorlib.training.loop import Trainer

    size, filters = 32, 8
    measured = cost.checkpoint_bytes("baseline", size, filters)
    torch.manual_seed(0)
    trainer = Trainer.build(ModelConfig(size=size, num_filters=filters), TrainConfig(stage="baseline"),
                            device="cpu", weights=None)
    L, ab = torch.randn(2, 1, size, size), torch.rand(2, 2, size, size) - 0.5
    trainer.model.train_step(L, ab)  # fills the optimisers' moments
    path = trainer.save(checkpoint_path(tmp_path, "baseline"))
    assert abs(path.stat().st_size - measured) / measured < 0.02


def test_cost_table_says_which_numbers_are_derived():
    costs = [cost.stage_cost("baseline", images=800, size=64, epochs=2, num_filters=8,
                             measure_checkpoint=False)]
    table = cost.cost_table(costs)
    assert "derived" in table and "assumption, not a measurement" in table and "counted" in table
    c = costs[0]
    assert c.t4_minutes_range[0] < c.t4_minutes_per_epoch < c.t4_minutes_range[1]
    assert c.cpu_minutes_per_epoch > c.t4_minutes_per_epoch


@pytest.mark.slow
def test_drive_space_adds_the_measured_checkpoints_and_bounds_the_data_copy():
    costs = [cost.stage_cost(stage, size=64, num_filters=8) for stage in ("baseline", "pretrain")]
    rows = cost.drive_space(costs)
    sizes = {name: mb for name, mb, _ in rows}
    assert sizes["checkpoints/baseline.pt"] == cost.checkpoint_bytes("baseline", 64, 8) / 1e6
    assert sizes["checkpoints/pretrain.pt"] == cost.checkpoint_bytes("pretrain", 64, 8) / 1e6
    download = cost.coco_download_bytes()
    assert download is not None and download > 1e9  # fastai's own size check of the sample
    assert sizes["data/coco_sample_seed123.tar"] == download / 1e6
    total = sum(sizes.values()) / 1e3
    assert f"**{total:.1f} GB**" in cost.drive_table(rows)
