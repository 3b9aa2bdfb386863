"""Training: the pix2pix algorithm, the loop around it, and train_stage (tiny real data, CPU)."""
import math

import pytest
import torch
from robust_helpers import stage_run

from colorlib.data.loading import ColorizationDataset, make_loader, prepare_batch
from colorlib.data.sources import DataConfig
from colorlib.inference.colorizer import Colorizer
from colorlib.models.losses import l1_loss
from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
from colorlib.models.pix2pix import Pix2Pix
from colorlib.models.pretrain import L1Pretraining
from colorlib.models.stages import STAGES, AdamSettings
from colorlib.system import malloc
from colorlib.training.checkpoint import load_checkpoint
from colorlib.training.config import TrainConfig
from colorlib.training.loop import Callback, EveryEpoch, Trainer
from colorlib.training.runner import train_stage

GAN_LOSSES = {"loss_D_fake", "loss_D_real", "loss_D", "loss_G_GAN", "loss_G_L1", "loss_G"}


def _data(folder, size=32):
    return DataConfig(source=str(folder), size=size, batch_size=4)


def _batch(n=4, size=32, seed=0):
    """A learnable (L, ab) batch: ab is a fixed function of L."""
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    return L, (L * 0.3).repeat(1, 2, 1, 1)


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


# ------------------------------------------------------------- the algorithm
def test_a_minimal_loop_needs_only_the_algorithm(photo_folder):
    """What notebooks 03-05 show: Pix2Pix, a loader, prepare_batch, train_step."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="pix2pix_unet", size=32, num_filters=8, disc_filters=8)
    model = Pix2Pix(build_generator(cfg), build_discriminator(cfg))
    G0, D0 = _params(model.net_G), _params(model.net_D)
    loader = make_loader(ColorizationDataset(sorted((photo_folder / "train").glob("*.png")), 32,
                                             lab=False), 4, train=True)
    history = []
    for batch in loader:
        L, ab = prepare_batch(batch, "cpu")
        history.append(model.train_step(L, ab))
    assert len(history) == 3 and all(set(h) == GAN_LOSSES for h in history)
    assert all(math.isfinite(v) for h in history for v in h.values())
    h = history[-1]
    assert h["loss_D"] == pytest.approx((h["loss_D_fake"] + h["loss_D_real"]) / 2, rel=1e-6)
    assert h["loss_G"] == pytest.approx(h["loss_G_GAN"] + h["loss_G_L1"], rel=1e-6)
    assert all(not torch.equal(a, b) for a, b in zip(G0, _params(model.net_G)))  # both learned
    assert any(not torch.equal(a, b) for a, b in zip(D0, _params(model.net_D)))


def test_each_half_of_the_gan_step_updates_only_its_own_network():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="pix2pix_unet", size=32, num_filters=8, disc_filters=8)
    model = Pix2Pix(build_generator(cfg), build_discriminator(cfg))
    model.set_input(*_batch())
    model.forward()
    model.backward_D()  # the fake is detached: G gets no gradient from D's loss
    assert all(p.grad is None for p in model.net_G.parameters())
    assert all(p.grad is not None for p in model.net_D.parameters())
    model.opt_D.zero_grad(set_to_none=True)
    for p in model.net_D.parameters():  # frozen, as optimize_parameters does
        p.requires_grad_(False)
    model.backward_G()
    assert all(p.grad is None for p in model.net_D.parameters())
    assert all(p.grad is not None for p in model.net_G.parameters())
    # The L1 term is lambda times the plain L1 of the generated colours.
    assert model.loss_G_L1.item() == pytest.approx(
        100 * l1_loss(model.fake_ab, model.ab).item(), rel=1e-6)


def test_the_loop_runs_the_algorithm_unchanged():
    """Trainer.train_step = Pix2Pix.train_step (+ layout, + averaging over ranks): same numbers."""
    cfg = ModelConfig(arch="pix2pix_unet", size=32, num_filters=8, disc_filters=8)
    torch.manual_seed(3)
    trainer = Trainer.build(cfg, TrainConfig(stage="baseline"), "cpu")
    torch.manual_seed(3)
    model = Pix2Pix(build_generator(cfg), build_discriminator(cfg))
    for seed in range(2):
        L, ab = _batch(seed=seed)
        assert trainer.train_step(L, ab) == model.train_step(L, ab)


def test_l1_steps_reduce_the_loss_on_a_fixed_batch():
    """The L1-only step of pretraining (a small generator: the step is the same for any)."""
    torch.manual_seed(0)
    model = L1Pretraining(build_generator(ModelConfig(arch="pix2pix_unet", size=32,
                                                     num_filters=8)),
                          adam=AdamSettings(lr_g=1e-3))
    L, ab = _batch()
    first = model.train_step(L, ab)["loss_G_L1"]
    assert first == pytest.approx(l1_loss(model.fake_ab, ab).item())
    for _ in range(15):
        last = model.train_step(L, ab)["loss_G_L1"]
    assert last < 0.7 * first
    assert model.discriminator is None and not hasattr(model, "net_D")  # no discriminator
    assert model.state_dict()["discriminator"] is None  # checkpoints keep their keys


@pytest.mark.slow
def test_the_pretrain_stage_is_the_resnet_unet_with_l1_alone():
    trainer = Trainer.build(ModelConfig(arch="resnet18_unet", size=32),
                            TrainConfig(stage="pretrain"), device="cpu", weights=None)
    assert trainer.net_D is None and type(trainer.model) is L1Pretraining  # not pix2pix
    assert set(trainer.train_step(*_batch())) == {"loss_G_L1"}


def test_each_stage_gets_the_optimiser_settings_of_its_table_row():
    for name, stage in STAGES.items():
        cfg = TrainConfig(stage=name)
        assert cfg.generator_lr == stage.lr_g
        assert cfg.generator_betas == (stage.betas_g or (0.5, 0.999))
    assert TrainConfig(stage="pretrain").generator_betas == (0.9, 0.999)  # the tutorial's
    assert TrainConfig(stage="gan", lr_g=5e-5).generator_lr == 5e-5
    trainer = Trainer.build(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                            TrainConfig(stage="baseline", lr_d=1e-5), "cpu")
    (group_G,), (group_D,) = trainer.model.opt_G.param_groups, trainer.model.opt_D.param_groups
    assert (group_G["lr"], group_G["betas"]) == (2e-4, (0.5, 0.999))
    assert (group_D["lr"], group_D["betas"]) == (1e-5, (0.5, 0.999))


def test_stage_and_architecture_must_match():
    with pytest.raises(ValueError, match="pix2pix_unet"):
        Trainer.build(ModelConfig(arch="resnet18_unet", size=32), TrainConfig(stage="baseline"))
    with pytest.raises(ValueError, match="unknown stage 'finetune'"):
        TrainConfig(stage="finetune")


# ------------------------------------------------------------------ the loop
def test_baseline_trains_one_epoch_and_saves_a_checkpoint(photo_folder, tmp_path):
    res = train_stage(stage_run("baseline", _data(photo_folder), tmp_path / "ck", epochs=1,
                                num_filters=8, progress=False), log=lambda s: None)
    t = res.trainer
    assert t.epoch == 1 and t.step == 3  # 12 photos / batch 4
    assert [h["step"] for h in t.history] == [1, 2, 3]
    assert set(t.history[-1]) == GAN_LOSSES | {"step", "epoch"}
    # Validation L1 is the generator's error on the first val photos, in eval mode.
    val = make_loader(ColorizationDataset(res.val_paths[:4], 32, lab=False), 4, train=False)
    L, ab = prepare_batch(next(iter(val)), "cpu")
    (record,) = t.val_history
    assert record == {"epoch": 1, "step": 3, "train_seconds": round(t.train_seconds, 2),
                      "val_l1": pytest.approx(l1_loss(t.predict(L), ab).item(), rel=1e-6)}
    ckpt = load_checkpoint(res.checkpoint, arch="pix2pix_unet", stage="baseline")
    assert res.checkpoint.name == "baseline.pt"
    assert (ckpt["model"]["size"], ckpt["epoch"], ckpt["step"]) == (32, 1, 3)
    for key, value in t.net_D.state_dict().items():
        assert torch.equal(ckpt["discriminator"][key], value)


@pytest.mark.slow
def test_callbacks_see_every_step_and_can_stop_the_run(photo_folder, tmp_path):
    seen = []

    class StopAfter2(Callback):
        def on_step_end(self, trainer, losses):
            seen.append(("step", trainer.step, sorted(losses) == sorted(GAN_LOSSES)))

        def should_stop(self, trainer):
            return trainer.step >= 2

    res = train_stage(stage_run("baseline", _data(photo_folder), tmp_path, epochs=5,
                                num_filters=8, progress=False),
                      callbacks=[StopAfter2(), EveryEpoch(lambda t: seen.append(("epoch",)))],
                      log=lambda s: None)
    assert seen == [("step", 1, True), ("step", 2, True)]  # stopped mid-epoch: no epoch end
    assert load_checkpoint(res.checkpoint)["step"] == 2  # the last step is saved
    seen.clear()
    res = train_stage(stage_run("baseline", _data(photo_folder), tmp_path, epochs=2,
                                num_filters=8, progress=False, resume=True),
                      callbacks=[EveryEpoch(lambda t: seen.append((t.epoch, t.step)))],
                      log=lambda s: None)
    assert seen == [(1, 3), (2, 6)]


@pytest.mark.slow
def test_gan_stage_starts_from_the_pretrain_checkpoint(photo_folder, tmp_path):
    ck = tmp_path / "ck"
    pre = train_stage(stage_run("pretrain", _data(photo_folder), ck, epochs=1, weights=None,
                                max_steps=1, progress=False), log=lambda s: None)
    gan = Trainer.build(ModelConfig(arch="resnet18_unet", size=32), TrainConfig(stage="gan"),
                        device="cpu", init=pre.checkpoint)
    for key, value in pre.trainer.net_G.state_dict().items():
        assert torch.equal(value, gan.net_G.state_dict()[key])
    assert gan.net_D is not None and gan.started_from == "init from pretrain.pt"


# ------------------------------------------- process-wide state: entry points only
def test_constructors_leave_the_random_state_and_malloc_alone(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(malloc, "keep_freed_memory", lambda: calls.append(1) or True)
    cfg = ModelConfig(arch="pix2pix_unet", size=32, num_filters=8)
    torch.manual_seed(5)
    a = Trainer.build(cfg, TrainConfig(stage="baseline", seed=0), "cpu")
    b = Trainer.build(cfg, TrainConfig(stage="baseline", seed=0), "cpu")
    # Not re-seeded from cfg.seed: the second build draws on from where the first stopped.
    assert not torch.equal(next(a.net_G.parameters()), next(b.net_G.parameters()))
    Colorizer.load(a.save(tmp_path / "baseline.pt"), device="cpu")
    assert calls == []


def test_train_stage_seeds_and_sets_up_the_process(photo_folder, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(malloc, "keep_freed_memory", lambda: calls.append(1) or True)
    runs = [train_stage(stage_run("baseline", _data(photo_folder), tmp_path / str(i), epochs=1,
                                  num_filters=8, max_steps=1, seed=4, progress=False),
                        log=lambda s: None) for i in range(2)]
    assert calls == [1, 1]
    a, b = (load_checkpoint(r.checkpoint)["generator"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same run
