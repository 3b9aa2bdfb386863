"""L1 pretraining: the generator alone learns to predict the true colours in L1.

The second strategy of the series (notebook 04) trains the ResNet18 U-Net this way before
any discriminator joins: no GAN loss, no lambda, just the plain mean absolute error of ab.
It is not pix2pix, so it is its own small class; :class:`colorlib.models.pix2pix.Pix2Pix`
then fine-tunes the generator it made (notebook 05).
"""
from __future__ import annotations

from colorlib.models.base_model import BaseModel
from colorlib.models.losses import l1_loss


class L1Pretraining(BaseModel):
    """Generator G: L -> ab, trained on |G(L) - ab| alone. Shown in notebook 04."""

    loss_names = ("loss_G_L1",)

    def forward(self) -> None:
        """The generator's colours for the photo: fake_ab = G(L)."""
        with self.amp.autocast():
            self.fake_ab = self.net_G(self.L)

    def backward_G(self) -> None:
        """The plain L1 error of the colours (no discriminator, no lambda), backpropagated."""
        with self.amp.autocast():
            self.loss_G_L1 = l1_loss(self.fake_ab, self.ab)
        self.check_finite("L1 loss", self.loss_G_L1)
        self.amp.backward(self.loss_G_L1)  # loss_G_L1.backward() (fp16 loss scaling when on)

    # optimize_parameters: BaseModel's, G's step alone (forward, backward_G, Adam).
