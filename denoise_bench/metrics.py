"""PSNR and SSIM on torch tensors (so evaluation can stay on the GPU), checked against scikit-image, and
the built-in plugin that registers them as the first two metrics (``denoise_bench.metric``).

SSIM is the MATLAB-style index of Wang et al. 2004 as Neighbor2Neighbor/Blind2Unblind compute it:
11x11 Gaussian window with sigma 1.5, C1 = (0.01 L)^2, C2 = (0.03 L)^2, population (not sample)
covariance, valid region only, per channel, averaged. That equals
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from denoise_bench.hookspecs import hookimpl
from denoise_bench.metric import Metric

PEAK = 255.0  # the peak of the 0-255 scale EvalProtocol.prepared puts every image on


def psnr(estimate: torch.Tensor, reference: torch.Tensor, data_range: float) -> float:
    """10 log10(L^2 / MSE), the MSE over every pixel and channel of one image."""
    mse = torch.mean((estimate.double() - reference.double()) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(estimate: torch.Tensor, reference: torch.Tensor, data_range: float, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of two (C, H, W) images over channels and the valid window positions."""
    x = estimate.double().unsqueeze(1)  # (C, 1, H, W): channels as a batch
    y = reference.double().unsqueeze(1)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window}, got {tuple(x.shape[-2:])}")
    w = gaussian_window(window, sigma).to(x.device)[None, None]
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    var_x = F.conv2d(x * x, w) - mu_x**2
    var_y = F.conv2d(y * y, w) - mu_y**2
    cov = F.conv2d(x * y, w) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3)).mean().item()


PSNR = Metric("psnr", "peak signal-to-noise ratio in dB, peak 255, MSE over every pixel and channel",
              lambda estimate, clean, protocol: psnr(estimate, clean, PEAK), higher_is_better=True, decimals=2)
SSIM = Metric("ssim", "structural similarity (Wang et al. 2004) with the protocol's Gaussian window, mean over channels",
              lambda estimate, clean, protocol: ssim(estimate, clean, PEAK, protocol.ssim_window, protocol.ssim_sigma),
              higher_is_better=True, decimals=4)


@hookimpl
def register_metrics(register: Callable[[Metric], None]) -> None:
    register(PSNR)
    register(SSIM)
