"""Colour as classification, trained: the ``classify`` stage (taught in notebook 04).

:mod:`colorlib.models.ab_classes` shows Zhang, Isola & Efros's ideas (*Colorful Image
Colorization*, ECCV 2016) on small numpy examples. This module holds the same
pieces in torch, for whole batches on the training device, so the series can
train the classifier and compare it with L1 regression on the same photos:

* :class:`ClassUnet`: the ResNet18 U-Net of the ``pretrain`` stage with a
  Q-channel head instead of the 2-channel one (a score per a*b* class for
  every pixel, at the input's resolution). Its forward pass still maps L to
  normalised ab, decoded with the annealed mean, so inference, evaluation,
  export and the notebooks use it like any other generator; training asks
  for the scores (``logits=True``);
* :func:`soft_encode`: each true a*b* as its 5 nearest classes, Gaussian
  weights with sigma = 5 (a soft target: neighbouring classes are nearly
  right, too);
* :func:`rebalanced_cross_entropy`: the loss, vectorised over the batch;
* :func:`decode_ab`: mode (T = 0), annealed mean (0 < T < 1), mean (T = 1);
  :func:`decodings`: one pass of the network decoded all three ways;
* :func:`measure_class_prior`: the share of training pixels per class, measured
  once before training; the class weights made from it
  (:func:`colorlib.models.ab_classes.rebalancing_weights`) live in the generator, so
  the checkpoint stores them.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from colorlib.models.ab_classes import (ZHANG_LAMBDA, ZHANG_SIGMA, ZHANG_T, in_gamut_centres,
                                        rebalancing_weights)
from colorlib.models.base_model import BaseModel
from colorlib.photos.lab import AB_SCALE

ZHANG_Q = 313  # the number of classes in Zhang et al.'s paper (our grid keeps fewer: see class_centres)
SOFT_K = 5  # soft encoding: the nearest classes a true colour is spread over
SOFT_SIGMA = 5.0  # ... with Gaussian weights of this width (Lab units)


@functools.lru_cache(maxsize=None)
def class_centres() -> np.ndarray:
    """The classes of the ``classify`` stage: the in-gamut 10x10 squares' centres, (Q, 2) Lab units.

    Q = 226 here against Zhang et al.'s 313: we keep a square only if its
    *centre* is displayable at some lightness, they kept every square that
    real (ImageNet) colours fall into, which adds the partly displayable
    squares along the gamut's border.
    """
    centres = in_gamut_centres()
    centres.setflags(write=False)  # cached: shared by every caller
    return centres


# soft_encode looks up each colour's candidate classes in a table over the a*b* plane instead of
# measuring its distance to all Q classes: a square of TABLE_STEP Lab units per entry, covering
# |a*|, |b*| <= TABLE_LIMIT (every sRGB colour has |a*|, |b*| < 110).
TABLE_STEP = 2.0
TABLE_LIMIT = 128.0


@functools.lru_cache(maxsize=8)
def _candidate_table(key: bytes, k: int) -> torch.Tensor:
    """For each square of the table, every class that can be among the ``k`` nearest of a
    colour inside it: (squares, K) class indices, K = 12 for our 226 classes and k = 5.

    A colour x in a square with centre c is at most r = TABLE_STEP / sqrt(2) from c, so by
    the triangle inequality its k nearest classes lie within d_k(c) + 2r of c, where d_k(c)
    is the distance from c to its own k-th nearest class. The table keeps, for every square,
    as many of c's nearest classes as that bound needs in the worst square: the k nearest
    found among them are exactly the k nearest among all classes.
    """
    centres = torch.from_numpy(np.frombuffer(key, dtype=np.float32).reshape(-1, 2).astype(np.float64))
    axis = torch.arange(-TABLE_LIMIT, TABLE_LIMIT + TABLE_STEP / 2, TABLE_STEP, dtype=torch.float64)
    squares = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    reach = TABLE_STEP * 2 ** 0.5  # 2r
    orders, needed = [], k
    for start in range(0, len(squares), 4096):  # in chunks: all squares x all classes is large
        dist, order = torch.cdist(squares[start:start + 4096], centres).sort(-1)
        needed = max(needed, int((dist <= dist[:, k - 1:k] + reach + 1e-9).sum(-1).max()))
        orders.append(order)
    return torch.cat(orders)[:, :needed].contiguous()


def candidate_classes(ab: torch.Tensor, centres: torch.Tensor, k: int = SOFT_K) -> torch.Tensor:
    """The classes that can be among the ``k`` nearest of each colour (..., 2, Lab units):
    (..., K) indices into ``centres``, from :func:`_candidate_table`."""
    key = centres.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    table = _candidate_table(key, k).to(ab.device)
    side = int(round(2 * TABLE_LIMIT / TABLE_STEP)) + 1
    cell = ((ab.clamp(-TABLE_LIMIT, TABLE_LIMIT) + TABLE_LIMIT) / TABLE_STEP).round().long()
    return table[cell[..., 0] * side + cell[..., 1]]


def soft_encode(ab: torch.Tensor, centres: torch.Tensor, k: int = SOFT_K,
                sigma: float = SOFT_SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
    """Each a*b* value (..., 2, Lab units) as its ``k`` nearest classes and their weights.

    Returns ``(index, weight)``, both (..., k): the nearest class first, weights
    exp(-d^2 / 2 sigma^2) normalised to sum to 1. The dense target
    (:func:`dense_targets`) is zero for every other class; keeping only
    ``k`` of Q values per pixel makes the loss a gather instead of a Q-wide product.
    Distances are measured to each colour's 12 candidate classes
    (:func:`candidate_classes`), not to all Q: the same k nearest, found much
    faster (``benchmarks/RESULTS.md``, "The classify stage's step").

    Shown in notebook 04.
    """
    ab = ab.float()
    centres = centres.to(ab.device, torch.float32)
    candidates = candidate_classes(ab, centres, k)  # (..., K)
    d2 = (ab.unsqueeze(-2) - centres[candidates]).square().sum(-1)
    d2, nearest = d2.topk(k, dim=-1, largest=False)  # sorted: nearest first
    weight = torch.softmax(-d2 / (2 * sigma ** 2), dim=-1)
    return candidates.gather(-1, nearest), weight


def dense_targets(index: torch.Tensor, weight: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The soft targets of :func:`soft_encode` as (..., Q) distributions (for showing and testing)."""
    out = torch.zeros(*index.shape[:-1], n_classes, dtype=weight.dtype, device=weight.device)
    return out.scatter_(-1, index, weight)


def nearest_class(ab: torch.Tensor, centres: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """The index of the nearest class for every a*b* row of ``ab`` (N, 2, Lab units), in chunks."""
    centres = centres.to(ab.device, torch.float32)
    out = torch.empty(len(ab), dtype=torch.long, device=ab.device)
    for start in range(0, len(ab), chunk):
        part = ab[start:start + chunk].float()
        d2 = -2 * part @ centres.T + (centres * centres).sum(-1)  # |x|^2 cannot change the argmin
        out[start:start + chunk] = d2.argmin(-1)
    return out


def rebalanced_cross_entropy(logits: torch.Tensor, ab: torch.Tensor, centres: torch.Tensor,
                             class_weights: torch.Tensor, k: int = SOFT_K,
                             sigma: float = SOFT_SIGMA) -> torch.Tensor:
    """Zhang et al.'s loss for a batch: class-rebalanced cross-entropy against soft-encoded ab.

    ``logits``: (B, Q, H, W) scores; ``ab``: (B, 2, H, W) normalised true
    colours; ``class_weights``: (Q,) weight of each class (all ones: plain
    cross-entropy). Each pixel's cross-entropy with its soft target is
    weighted by the weight of its nearest class, and the mean is taken over
    all pixels, so with weights that average 1 per pixel the loss has the
    scale of a plain cross-entropy. Computed in float32 whatever the
    autocast dtype: a log-softmax over Q classes in bf16 loses the small
    probabilities the rare colours live on.

    Shown in notebook 04.
    """
    # Classes last: (B, H, W, Q). In channels_last memory (how colorlib trains) this is
    # the tensor's own layout, so the softmax and the gather run over contiguous rows.
    z = logits.float().permute(0, 2, 3, 1)
    with torch.no_grad():
        index, weight = soft_encode(ab.float().permute(0, 2, 3, 1) * AB_SCALE, centres, k, sigma)
        pixel_weight = class_weights.to(z.device, torch.float32)[index[..., 0]]
    log_p = torch.log_softmax(z, dim=-1)
    ce = -(weight * log_p.gather(-1, index)).sum(-1)
    return (pixel_weight * ce).mean()


def decode_ab(logits: torch.Tensor, centres: torch.Tensor, temperature: float = ZHANG_T
              ) -> torch.Tensor:
    """Class scores (B, Q, H, W) -> a*b* (B, 2, H, W, Lab units).

    ``temperature`` 0: the mode (the centre of the most likely class);
    1: the mean of the distribution; in between, the annealed mean: the mean
    of the distribution re-tempered to p^(1/T) (normalised), which for
    p = softmax(z) is simply softmax(z / T). Zhang et al. use T = 0.38.
    The same rule as :func:`colorlib.models.ab_classes.annealed_mean`, for batches.

    Shown in notebook 04.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: the mode), got {temperature}")
    z = logits.float().permute(0, 2, 3, 1)  # classes last, as in rebalanced_cross_entropy
    centres = centres.to(z.device, torch.float32)
    if temperature == 0:
        ab = centres[z.argmax(-1)]
    else:
        ab = torch.softmax(z / temperature, dim=-1) @ centres
    return ab.permute(0, 3, 1, 2)


DECODINGS = {"mode (T = 0)": 0.0, "mean (T = 1)": 1.0, f"annealed mean (T = {ZHANG_T:g})": ZHANG_T}


@torch.no_grad()
def decodings(net: "ClassUnet", L: torch.Tensor,
              temperatures: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """One batch of L decoded at several temperatures, from one pass of the network.

    Returns ``{name: ab}`` (normalised ab, float32, on the CPU), by default the
    three decodings notebook 04 puts side by side (:data:`DECODINGS`): the
    mode, the mean and Zhang et al.'s annealed mean. The network runs in eval
    mode (BatchNorm's running statistics) and is put back into the mode it
    was in, as :meth:`colorlib.models.pix2pix.Pix2Pix.predict` does.

    Shown in notebook 04.
    """
    temperatures = DECODINGS if temperatures is None else temperatures
    was_training = net.training
    net.eval()
    try:
        scores = net(L.to(net.centres.device), logits=True)
    finally:
        net.train(was_training)
    return {name: (decode_ab(scores, net.centres, t) / AB_SCALE).cpu()
            for name, t in temperatures.items()}


# ClassUnet's buffers: what the classes are and how often the training photos used them. Not
# weights: an export keeps them at full precision (colorlib.inference.export).
CLASS_BUFFERS = ("centres", "class_weights", "class_prior")


class ClassUnet(nn.Module):
    """The ``classify`` stage's generator: a U-Net scoring Q a*b* classes per pixel.

    ``body`` is :func:`colorlib.models.networks.build_res_unet` with ``n_out = Q``.
    ``forward(L)`` returns normalised ab like every colorlib generator (decoded
    at ``temperature``, which the loading code may change); ``forward(L,
    logits=True)`` the raw scores the loss needs. Buffers (saved with the
    weights, so checkpoints and exports carry them): ``centres`` (Q, 2),
    ``class_weights`` (Q,) and ``class_prior`` (Q,), the latter two measured
    on the training photos before the first step (ones and zeros until then).

    Shown in notebook 04.
    """

    def __init__(self, body: nn.Module, centres: np.ndarray, temperature: float = ZHANG_T):
        super().__init__()
        self.body = body
        centres = torch.tensor(np.array(centres, dtype=np.float32))  # a copy of its own
        self.register_buffer("centres", centres)
        self.register_buffer("class_weights", torch.ones(len(centres)))
        self.register_buffer("class_prior", torch.zeros(len(centres)))
        self.temperature = float(temperature)

    @property
    def classes(self) -> int:
        return len(self.centres)

    def forward(self, L: torch.Tensor, logits: bool = False) -> torch.Tensor:
        # fastai's U-Net returns its own tensor subclass; plain tensors keep the loss cheap
        out = self.body(L).as_subclass(torch.Tensor)
        if logits:
            return out
        return decode_ab(out, self.centres, self.temperature) / AB_SCALE

    def set_class_weights(self, prior: np.ndarray, rebalance: bool = True,
                          lam: float = ZHANG_LAMBDA, sigma: float = ZHANG_SIGMA) -> None:
        """Store the training photos' class shares and the weights made from them.

        ``rebalance=False`` (the ablation) keeps every weight at 1: plain cross-entropy.
        """
        centres = self.centres.cpu().double().numpy()
        weights = rebalancing_weights(prior, centres, lam, sigma) if rebalance \
            else np.ones(len(centres))
        self.class_prior.copy_(torch.as_tensor(prior, dtype=torch.float32))
        self.class_weights.copy_(torch.as_tensor(weights, dtype=torch.float32))


class ClassifyTraining(BaseModel):
    """The ``classify`` stage's algorithm: score a*b* classes, follow the rebalanced
    cross-entropy. The generator is a :class:`ClassUnet`; its class centres and weights travel
    with it (buffers), so nothing else is needed. Shown in notebook 04."""

    loss_names = ("loss_G_class",)

    def forward(self) -> None:
        """The generator's class scores for the photo (through a data-parallel wrapper, if any)."""
        with self.amp.autocast():
            self.logits = self.net_G(self.L, logits=True)

    def backward_G(self) -> None:
        net = self.generator
        self.loss_G_class = rebalanced_cross_entropy(self.logits, self.ab, net.centres,
                                                     net.class_weights)
        self.check_finite("classification loss", self.loss_G_class)
        self.amp.backward(self.loss_G_class)


@torch.no_grad()
def measure_class_prior(dataset, centres: torch.Tensor | np.ndarray,
                        device: torch.device | str = "cpu", batch_size: int = 64,
                        log=None) -> np.ndarray:
    """The share of the training photos' pixels in each class (Q,), summing to 1.

    Reads the photos through the training data path (the same
    :class:`~colorlib.data.loading.ColorizationDataset`, so its decoded pixels are
    cached for the first epoch too), at the training size, without
    augmentation (a mirror image has the same colours). Unreadable photos are
    skipped quietly here; training names them.
    """
    import warnings

    from colorlib.data.loading import make_loader, prepare_batch

    centres = (centres.to(device, torch.float32) if isinstance(centres, torch.Tensor)
               else torch.tensor(np.array(centres, dtype=np.float32), device=device))
    counts = torch.zeros(len(centres), dtype=torch.float64, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreadable files: reported once, by training
        for batch in make_loader(dataset, batch_size, train=False):
            prepared = prepare_batch(batch, device)
            if prepared is None:
                continue
            ab = prepared[1].float().permute(0, 2, 3, 1).reshape(-1, 2) * AB_SCALE
            counts += torch.bincount(nearest_class(ab, centres), minlength=len(centres))
    if counts.sum() == 0:
        raise ValueError("no training photo could be read to measure the colour classes")
    prior = (counts / counts.sum()).cpu().numpy()
    if log is not None:
        log(f"classify: measured the a*b* class shares of {int(counts.sum()):,} training pixels "
            f"({int((prior > 0).sum())} of {len(prior)} classes occur)")
    return prior
