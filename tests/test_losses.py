import math

import pytest
import torch

from colorlib.models.losses import GANLoss, l1_term


def test_vanilla_gan_loss_is_bce_on_logits():
    logits = torch.zeros(2, 1, 3, 3)
    assert GANLoss("vanilla")(logits, True).item() == pytest.approx(math.log(2))
    big = torch.full((1, 1, 2, 2), 20.0)
    assert GANLoss("vanilla")(big, True).item() < 1e-6
    assert GANLoss("vanilla")(big, False).item() == pytest.approx(20.0, rel=1e-4)


def test_lsgan_loss_is_mean_squared_distance_to_label():
    preds = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    assert GANLoss("lsgan")(preds, True).item() == pytest.approx((1 + 0.25 + 0) / 3)
    assert GANLoss("lsgan")(preds, False).item() == pytest.approx((0 + 0.25 + 1) / 3)


def test_unknown_gan_mode_fails_clearly():
    with pytest.raises(ValueError, match="wgan"):
        GANLoss("wgan")


def test_l1_term_has_lambda_100_by_default():
    a, b = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 0.1)
    assert l1_term(a, b).item() == pytest.approx(10.0)
    assert l1_term(a, b, lam=1).item() == pytest.approx(0.1)


def test_hinge_discriminator_loss_stops_at_the_margin():
    scores = torch.tensor([-2.0, 0.0, 0.5, 3.0]).view(1, 1, 2, 2)
    hinge = GANLoss("hinge")
    # real: relu(1 - s) -> 3, 1, 0.5, 0 ; fake: relu(1 + s) -> 0, 1, 1.5, 4
    assert hinge(scores, True).item() == pytest.approx((3 + 1 + 0.5 + 0) / 4)
    assert hinge(scores, False).item() == pytest.approx((0 + 1 + 1.5 + 4) / 4)
    # a patch beyond the margin on the right side gives D no gradient
    s = scores.clone().requires_grad_(True)
    hinge(s, True).backward()
    assert s.grad.view(-1)[3].item() == 0.0 and s.grad.view(-1)[0].item() < 0


def test_hinge_generator_loss_is_minus_the_mean_score():
    scores = torch.tensor([-2.0, 0.0, 0.5, 3.0]).view(1, 1, 2, 2)
    assert GANLoss("hinge")(scores, True, for_discriminator=False).item() == pytest.approx(-0.375)
    with pytest.raises(ValueError, match="generator"):
        GANLoss("hinge")(scores, False, for_discriminator=False)


def test_generator_flag_changes_nothing_for_vanilla_and_lsgan():
    scores = torch.randn(2, 1, 3, 3)
    for mode in ("vanilla", "lsgan"):
        loss = GANLoss(mode)
        assert loss(scores, True, for_discriminator=False).item() == loss(scores, True).item()
