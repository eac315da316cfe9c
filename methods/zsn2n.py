"""Zero-Shot Noise2Noise (Mansour and Heckel, CVPR 2023): a two-layer network fitted to each image.

    D1, D2: the two diagonal halves of every 2x2 block, averaged (kernels [[0, .5], [.5, 0]] and
            [[.5, 0], [0, .5]], stride 2, per channel): two half-size images with independent noise
    denoise(y) = y - f(y)                                                (f predicts the noise)
    L_res  = 1/2 (||denoise(D1 y) - D2 y||^2 + ||denoise(D2 y) - D1 y||^2)
    L_cons = 1/2 (||denoise(D1 y) - D1 denoise(y)||^2 + ||denoise(D2 y) - D2 denoise(y)||^2)
    L = L_res + L_cons (means)

Nothing is learned from a training set: for every test image a freshly initialised network
(conv3x3 C->48, LeakyReLU 0.2, conv3x3 48->48, LeakyReLU 0.2, conv1x1 48->C) is fitted to the two
half-size images of the noisy image alone, then applied once to the full image:
``clip(y - f(y), 0, 1)``. The two halves see independent noise at pixel-independent noise, so the
residual loss is Noise2Noise between them; the consistency loss ties the full-size estimate to the
half-size ones.

From the authors' reference notebook: Adam at 1e-3, 3000 iterations (the budget's
``per_image_iterations``; ``official_budget``), the rate halved every 1000 iterations (StepLR,
gamma 0.5). Implementation choices:

* Under a smaller per-image budget the rate is halved at the same fractions of it (1/3 and 2/3), the
  notebook's shape at any length; at 3000 iterations this is exactly its StepLR.
* PyTorch's default initialisation of the convolutions, as the notebook (it sets none).
* The noisy image is used unclipped (the benchmark's protocol); the output is clipped to [0, 1] as
  in the notebook. Odd sides: the stride-2 halves drop the last row/column, as the notebook's conv2d.
* Seeding: the initialisation comes from ``setup.seed`` through a forked RNG, so the estimate
  depends only on the noisy image and the seed, and the global random state is left as it was.

Options: ``width`` (48, the notebook's ``chan_embed``), ``lr`` (1e-3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN
from denoise_bench.per_image_fit import fit_per_image
from denoise_bench.supervision import Supervision

LEAKY_SLOPE = 0.2
LR_HALVINGS = 2  # the notebook: 3000 iterations, halved at 1000 and 2000


class NoisePredictor(nn.Module):
    """The notebook's network: two 3x3 convolutions with LeakyReLU and a 1x1 output, predicting the noise."""

    def __init__(self, channels: int, width: int = 48) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, channels, 1)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        x = F.leaky_relu(self.conv2(x), LEAKY_SLOPE)
        return self.conv3(x)


def pair_downsample(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two half-size images: each 2x2 block's anti-diagonal mean and its diagonal mean."""
    channels = image.shape[1]
    anti_diagonal = image.new_tensor([[0.0, 0.5], [0.5, 0.0]]).expand(channels, 1, 2, 2)
    diagonal = image.new_tensor([[0.5, 0.0], [0.0, 0.5]]).expand(channels, 1, 2, 2)
    return (F.conv2d(image, anti_diagonal, stride=2, groups=channels),
            F.conv2d(image, diagonal, stride=2, groups=channels))


def zsn2n_loss(net: nn.Module, noisy: torch.Tensor) -> torch.Tensor:
    """Residual (Noise2Noise between the halves) plus consistency loss of the paper, Eq. (3)-(4)."""
    noisy1, noisy2 = pair_downsample(noisy)
    estimate1 = noisy1 - net(noisy1)
    estimate2 = noisy2 - net(noisy2)
    residual = 0.5 * (F.mse_loss(estimate1, noisy2) + F.mse_loss(estimate2, noisy1))
    full1, full2 = pair_downsample(noisy - net(noisy))
    consistency = 0.5 * (F.mse_loss(estimate1, full1) + F.mse_loss(estimate2, full2))
    return residual + consistency


def lr_factor(step: int, iterations: int) -> float:
    """The notebook's StepLR (halve every 1000 of 3000 steps), at the same fractions of any budget."""
    period = max(1, iterations // (LR_HALVINGS + 1))
    return 0.5 ** min(step // period, LR_HALVINGS)


class ZeroShotNoise2Noise(Method):
    name = "zsn2n"
    description = "Zero-Shot Noise2Noise: fit a two-layer noise predictor to the two half-size images of each noisy image"
    citation = "Mansour and Heckel, Zero-Shot Noise2Noise: Efficient Image Denoising without any Data, CVPR 2023"
    supervision = Supervision.NONE
    # The two halves are two noisy copies of (nearly) one image only if the noise is independent
    # between neighbouring pixels; their mean is the clean image only for zero-mean noise.
    requires = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT})
    trainable = False
    options = {"width": 48, "lr": 1e-3}
    official_budget = {"per_image_iterations": 3000}  # the notebook's max_epoch

    @override
    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG left untouched
            torch.manual_seed(self.setup.seed)
            net = NoisePredictor(noisy.shape[1], width=self.opts["width"]).to(noisy.device)
        image = noisy.float()
        with torch.enable_grad():  # the fit needs gradients even if the caller runs under no_grad
            iterations = self.setup.budget.per_image_iterations
            fit_per_image(net, lambda: zsn2n_loss(net, image), iterations, lr=self.opts["lr"], device=image.device,
                          engine=self.setup.engine, progress=self.setup.progress, desc="zsn2n fit",
                          lr_factor=lambda step: lr_factor(step, iterations))
        net.eval()
        with torch.no_grad():
            estimate = (image - net(image)).clamp(0.0, 1.0)
        return estimate.to(noisy.dtype)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(ZeroShotNoise2Noise)
