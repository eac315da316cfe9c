"""Neighbor2Neighbor (Huang et al., CVPR 2021): Noise2Noise between neighbouring pixels of one image.

    L = ||f(g1(y)) - g2(y)||^2 + gamma * ||f(g1(y)) - g2(y) - (g1(sg f(y)) - g2(sg f(y)))||^2

The random neighbour sub-sampler G = (g1, g2) splits the image into 2x2 cells and, in every cell,
picks one of the 8 ordered pairs of horizontally or vertically adjacent positions (never a diagonal
pair). g1 keeps the first pixel of each pair and g2 the second: two half-size images whose noise is
independent while their clean contents nearly agree. The first term is a Noise2Noise loss between
them. The regulariser corrects for the remaining gap g1(x) != g2(x): the network's own estimate
f(y), computed at full resolution without gradient and sub-sampled with the same pairs, should show
the same gap between the two sub-images as its output and the target do. The pairs are drawn afresh
every step, independently for every cell of every image, and shared by the channels of a pixel.
Both terms are plain means of squared differences.

Official settings (TaoHuang2018/Neighbor2Neighbor, ``train.py``): gamma = epoch / n_epoch *
increase_ratio over 100 epochs with increase_ratio = 2, i.e. 0.02 in the first epoch and 2 in the
last; Adam 3e-4, halved every 20 epochs; batch 4 of 256x256 crops; the 48-channel U-Net with
transposed-conv upsampling, LeakyReLU 0.2 and 0.1-scaled Kaiming initialisation (the shared
network's defaults). At test time the network is applied once to the full noisy image: f(y).

Implementation choices: training progress t counts as epoch floor(100 t) + 1 of 100, so gamma takes
exactly the official per-epoch values whatever the number of steps. The pairs are drawn with torch's
global generator on the batch's device, so the training loop's saved RNG state makes a resumed run
draw the same pairs. The network trains on half-size sub-images, so the method cuts training crops
of *twice* the budget's crop side (the official 256x256 crops give 128x128 network inputs): its
network then sees inputs of the same size as every other method's, at the same crop size. The
regulariser's no-gradient estimate f(y) runs on the full double-size crop.

Options: ``increase_ratio`` (default 2.0; 0 drops the regulariser, the paper's gamma = 0 ablation).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from typing_extensions import override

from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method, MethodSetup, TrainingCrop
from denoise_bench.nets.unet import DOWNSAMPLE_FACTOR
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN
from denoise_bench.schedules import epoch_fraction, halve_every_fifth
from denoise_bench.supervision import NoisyBatch, Supervision

# Positions inside a 2x2 cell, row-major (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right), and
# the 8 ordered pairs of 4-neighbours among them in the official order. Diagonal pairs (0, 3) and
# (1, 2) are excluded: they would change the method.
NEIGHBOUR_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 3), (2, 3), (1, 0), (2, 0), (3, 1), (3, 2))


def sample_neighbour_pairs(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one ordered neighbour pair for every 2x2 cell of every image of ``y`` (N, C, H, W).

    Returns the cell positions (0..3, row-major) of the first and of the second pixel of each pair,
    both of shape (N, H/2, W/2): one choice per cell, shared by all channels.
    """
    n, _, h, w = y.shape
    if h % 2 or w % 2:
        raise ValueError(f"the neighbour sub-sampler needs even image sides, got {h}x{w}")
    pairs = torch.tensor(NEIGHBOUR_PAIRS, device=y.device)
    # No explicit generator: the global one is part of the training state that a resumed run restores.
    choice = torch.randint(len(NEIGHBOUR_PAIRS), (n, h // 2, w // 2), device=y.device)
    picked = pairs[choice]
    return picked[..., 0], picked[..., 1]


def subsample(y: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The (N, C, H/2, W/2) image of the pixels at ``positions`` (N, H/2, W/2) of every 2x2 cell."""
    n, c, h, w = y.shape
    cells = y.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    index = positions[:, None, :, :, None].expand(n, c, h // 2, w // 2, 1)
    return cells.gather(-1, index).squeeze(-1)


class Neighbor2Neighbor(NetworkMethod):
    name = "nb2nb"
    description = "Neighbor2Neighbor: Noise2Noise between random neighbour sub-images of one noisy image"
    citation = "Huang et al., Neighbor2Neighbor: Self-Supervised Denoising from Single Noisy Images, CVPR 2021"
    supervision = Supervision.NONE
    # The sub-images are two noisy views of (nearly) the same scene: the target is unbiased only if the
    # noise has zero mean, and independent of the input only if it is independent across pixels.
    requires = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT})
    learning_rate = 3e-4
    options = {"increase_ratio": 2.0}

    # Official: 100 epochs of about 11k iterations, batch 4, 256x256 crops (128x128 network inputs).
    official_budget = {"iterations": 1_108_200, "batch_size": 4, "crop_size": 128}

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        if setup.budget.crop_size % DOWNSAMPLE_FACTOR:
            raise BenchError(f"{self.name}: the network's input (the crop size) must be a multiple of "
                             f"{DOWNSAMPLE_FACTOR}, got {setup.budget.crop_size}")

    @override
    def training_crop(self) -> TrainingCrop:
        """Twice the budget's side, so the sub-images the network trains on are of the budget's size;
        where the training images are too small for that (Train400 is 180x180 against the cpu
        profile's 2 x 128), the largest crop that fits and still halves to a network input."""
        wanted = 2 * self.setup.budget.crop_size
        side = self.setup.training.shortest_side
        if side is None or wanted <= side:
            return TrainingCrop(wanted)
        step = 2 * DOWNSAMPLE_FACTOR
        fitted = side // step * step
        if fitted < step:
            raise BenchError(f"{self.name}: training images of side {side} are too small for crops that halve "
                             f"to a {DOWNSAMPLE_FACTOR}-multiple network input (at least {step}x{step})")
        return TrainingCrop(fitted, f"the shortest training image side is {side}, too small for {wanted}x{wanted} "
                                    f"crops: cutting {fitted}x{fitted}, so the network trains on {fitted // 2}x{fitted // 2} "
                                    "sub-images")

    @override
    def lr_factor(self, progress: float) -> float:
        return halve_every_fifth(progress)

    def gamma(self, progress: float) -> float:
        """Weight of the regulariser: epoch / n_epoch * increase_ratio of the official 100-epoch run."""
        return epoch_fraction(progress) * self.opts["increase_ratio"]

    @override
    def graph_key(self, progress: float) -> Hashable:
        return self.gamma(progress)

    @override
    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        y = batch.noisy
        first, second = sample_neighbour_pairs(y)
        with torch.no_grad():
            estimate = self.net(y)
        diff = self.net(subsample(y, first)) - subsample(y, second)
        estimate_gap = subsample(estimate, first) - subsample(estimate, second)
        reconstruction = torch.mean(diff**2)
        regulariser = torch.mean((diff - estimate_gap) ** 2)
        return reconstruction + self.gamma(progress) * regulariser


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(Neighbor2Neighbor)
