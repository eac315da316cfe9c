"""Blind2Unblind (Wang et al., CVPR 2022): blind-spot training with a re-visible loss.

    diff     = h(f(Omega_y)) - y                 blind-spot prediction, with gradient
    exp_diff = sg f(y) - y                       visible prediction, no gradient
    L        = eta * mean(diff^2) + mean((diff + lambda * exp_diff)^2)

Global-aware mask mapper: with a cell width of 4, mask k (0..15) marks position k (row-major) of
every 4x4 cell, the same position in every cell, image and channel. The masked input Omega_k(y)
replaces the marked pixels by the average of their 8 neighbours, weights [[0.5, 1, 0.5], [1, 0, 1],
[0.5, 1, 0.5]] / 6, per channel with zero padding (so border pixels see zeros, as in the official
code). The 16 masked versions go through the network in one batch, and h keeps from output k only
the pixels of mask k: every pixel of h(f(Omega_y)) is predicted from an input in which it was
hidden. The blind-spot term alone would learn the blind-spot denoiser; the re-visible term, whose
target mixes in the network's own visible output f(y) (stop-gradient), lets the network use the
pixel itself at test time. lambda grows during training so the visible output takes over.

Official settings (zejinwang/Blind2Unblind, ``train_b2u.py``): eta = Lambda1 = 1; lambda = Lambda2
= 2 while epoch / n_epoch <= T1, then linear to increase_ratio = 20 at the last of 100 epochs, with
T1 = 0.8 for fixed-level training noise (gauss25, poisson30) and T1 = 0.4 for noise-level ranges;
Adam 3e-4 with weight decay 1e-8, halved every 20 epochs; batch 4 of 128x128 crops (64 network
inputs per step); the 48-channel U-Net with nearest-neighbour upsampling, LeakyReLU 0.1 and
PyTorch's default initialisation. The reported result is the visible output f(y) of the full image,
one forward pass without masks.

Implementation choices: training progress t counts as epoch floor(100 t) + 1 of 100, so lambda
takes exactly the official per-epoch values whatever the number of steps. T1 follows the official
rule by default (``t1=auto``): 0.8 when the training noise has one fixed level, 0.4 when it draws
from a range (the suite's paper presets) or is unknown.

Options: ``lambda_start`` (2.0), ``lambda_end`` (20.0), ``t1`` (``auto``, or a fraction), ``eta`` (1.0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import torch
import torch.nn.functional as F
from typing_extensions import override

from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method, MethodSetup
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN, NoiseSpec
from denoise_bench.schedules import constant_then_linear_ramp, epoch_fraction, halve_every_fifth
from denoise_bench.supervision import NoisyBatch, Supervision

CELL = 4  # cell width of the mask mapper: CELL ** 2 masks

# Replacement of a masked pixel: its 8 neighbours, edge neighbours weighted twice the corner ones.
INTERPOLATION_KERNEL: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 0.5), (1.0, 0.0, 1.0), (0.5, 1.0, 0.5))


def cell_masks(height: int, width: int, cell: int = CELL, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (cell**2, H, W) masks; mask k marks position k (row-major) of every cell x cell cell."""
    rows = torch.arange(height, device=device) % cell
    cols = torch.arange(width, device=device) % cell
    position = rows[:, None] * cell + cols[None, :]
    return position[None] == torch.arange(cell * cell, device=device)[:, None, None]


def interpolate_neighbours(y: torch.Tensor) -> torch.Tensor:
    """Every pixel of ``y`` (N, C, H, W) replaced by the kernel average of its neighbours, per channel."""
    n, c, h, w = y.shape
    kernel = torch.tensor(INTERPOLATION_KERNEL, dtype=y.dtype, device=y.device)
    kernel = (kernel / kernel.sum())[None, None]
    return F.conv2d(y.reshape(n * c, 1, h, w), kernel, padding=1).view(n, c, h, w)


def masked_inputs(y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Omega(y): the K masked versions of every image of ``y`` (N, C, H, W) for masks (K, H, W).

    Returns (N * K, C, H, W), the K versions of image 0 first, so that one forward pass covers all.
    """
    n, c, h, w = y.shape
    k = masks.shape[0]
    replaced = interpolate_neighbours(y)
    return torch.where(masks[None, :, None], replaced[:, None], y[:, None]).reshape(n * k, c, h, w)


def gather_blind_spot(output: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """h: from the network output for :func:`masked_inputs`, keep output k at the pixels of mask k."""
    k, h, w = masks.shape
    output = output.view(-1, k, output.shape[1], h, w)
    return (output * masks[None, :, None].to(output.dtype)).sum(dim=1)


T1_FIXED_LEVEL = 0.8  # train_b2u.py for gauss25 / poisson30
T1_LEVEL_RANGE = 0.4  # for gauss5_50 / poisson5_50


def official_t1(train_noise: NoiseSpec | None) -> float:
    """The official T1: 0.8 for one fixed training level, 0.4 for a range (or unknown noise)."""
    return T1_FIXED_LEVEL if train_noise is not None and train_noise.values and not train_noise.is_range else T1_LEVEL_RANGE


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise BenchError(f"b2u: t1 is 'auto' or a fraction of training in [0, 1], got {text!r}")
    return value


class Blind2Unblind(NetworkMethod):
    name = "b2u"
    description = "Blind2Unblind: blind-spot prediction over 16 masked copies, made visible by a re-visible loss"
    citation = "Wang et al., Blind2Unblind: Self-Supervised Image Denoising with Visible Blind Spots, CVPR 2022"
    supervision = Supervision.NONE
    # Both terms regress onto the noisy pixel: a blind-spot prediction from the neighbours can only
    # learn its clean value if the noise there is independent of the neighbours' and has zero mean.
    requires = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT})
    learning_rate = 3e-4
    weight_decay = 1e-8
    unet_options = {"upsample": "nearest", "slope": 0.1, "ne2ne_init": False}
    options = {"lambda_start": 2.0, "lambda_end": 20.0, "t1": "auto", "eta": 1.0}
    # Official: 100 epochs of about 11k iterations, batch 4, 128x128 crops.
    official_budget = {"iterations": 1_108_200, "batch_size": 4, "crop_size": 128}

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        self.t1 = official_t1(setup.training.noise) if self.opts["t1"] == "auto" else _fraction(self.opts["t1"])

    @override
    def lr_factor(self, progress: float) -> float:
        return halve_every_fifth(progress)

    def lam(self, progress: float) -> float:
        """Weight of the visible term: constant until t1, then linear to ``lambda_end`` at the last epoch."""
        o = self.opts
        return constant_then_linear_ramp(epoch_fraction(progress), o["lambda_start"], o["lambda_end"], self.t1)

    @override
    def graph_key(self, progress: float) -> Hashable:
        return self.lam(progress)

    @override
    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        y = batch.noisy
        masks = cell_masks(y.shape[-2], y.shape[-1], device=y.device)
        diff = gather_blind_spot(self.net(masked_inputs(y, masks)), masks) - y
        with torch.no_grad():
            exp_diff = self.net(y) - y
        blind_spot = torch.mean(diff**2)
        revisible = torch.mean((diff + self.lam(progress) * exp_diff) ** 2)
        return self.opts["eta"] * blind_spot + revisible


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(Blind2Unblind)
