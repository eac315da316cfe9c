"""IDDP: Implicit Deep Denoiser Prior (Lin et al., AAAI 2023).

    L = alpha * ||F(y) - box(y)||^2 + beta * ||F(y2) - sg(F(y))||^2
    y2 = sg(F(y)) + m * (y - sg(F(y))),   m in {-1, +1} per element, p = 0.5, new every iteration

The network's own current estimate ``F(y)`` (taken before this step's update and detached) is the
implicit prior: re-noising it with the sign-flipped estimated noise gives a fresh noisy observation
of (approximately) the same scene, and the network learns to map it back. The weak box-blur anchor
(alpha = 0.001) makes the identity mapping costly. Adam 2e-4, constant for half the run then
linear decay to zero (the paper: 1M + 1M iterations, batch 1, 128x128 crops). No official code was
released; the box kernel size (3x3, reflect padding) is an implementation choice.

Options: ``stop_gradient`` (default true; false reproduces the paper's ablation, which blurs),
``blur_kernel`` (default 3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN
from denoise_bench.schedules import constant_then_linear_decay
from denoise_bench.supervision import NoisyBatch, Supervision


def box_filter(y: torch.Tensor, kernel: int) -> torch.Tensor:
    """Mean over a ``kernel`` x ``kernel`` window per channel, reflect-padded to keep the size."""
    pad = kernel // 2
    return F.avg_pool2d(F.pad(y, (pad, pad, pad, pad), mode="reflect"), kernel, stride=1)


def random_signs(like: torch.Tensor) -> torch.Tensor:
    """+1 or -1 with probability 1/2 for every element (pixel and channel)."""
    return torch.where(torch.rand_like(like) < 0.5, -1.0, 1.0)


class IDDP(NetworkMethod):
    name = "iddp"
    description = "Implicit Deep Denoiser Prior: re-noise the network's own estimate with sign-flipped residuals"
    citation = "Lin et al., Self-Supervised Image Denoising Using Implicit Deep Denoiser Prior, AAAI 2023"
    supervision = Supervision.NONE
    requires = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT})
    learning_rate = 2e-4
    options = {"stop_gradient": True, "blur_kernel": 3, "alpha": 0.001, "beta": 1.0}
    # The paper: 1M constant + 1M linearly decaying iterations of batch 1 on 128x128 crops.
    official_budget = {"iterations": 2_000_000, "batch_size": 1, "crop_size": 128}

    def lr_factor(self, progress: float) -> float:
        return constant_then_linear_decay(progress)

    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        y = batch.noisy
        estimate = self.net(y)
        prior = estimate.detach() if self.opts["stop_gradient"] else estimate
        renoised = prior + random_signs(y) * (y - prior)
        anchor = F.mse_loss(estimate, box_filter(y, self.opts["blur_kernel"]))
        consistency = F.mse_loss(self.net(renoised), prior)
        return self.opts["alpha"] * anchor + self.opts["beta"] * consistency


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(IDDP)

