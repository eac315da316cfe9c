"""The plugin passes denoise-bench's conformance kit and denoises a real photograph."""

from __future__ import annotations

import skimage.data
import torch

from denoise_bench.method import MethodSetup
from denoise_bench.metrics import psnr
from denoise_bench.profiles import get_profile
from denoise_bench.testing import MethodConformance
from denoise_bench_tv import TotalVariation


class TestTotalVariationConforms(MethodConformance):
    method_class = TotalVariation


def test_tv_beats_the_noisy_input() -> None:
    clean = torch.from_numpy(skimage.data.camera()[128:384, 128:384]).float().div(255).view(1, 1, 256, 256)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 25 / 255
    method = TotalVariation(MethodSetup(channels=1, budget=get_profile("smoke")))
    gain = psnr(method.denoise(noisy), clean, 1.0) - psnr(noisy, clean, 1.0)
    assert gain > 5.0, f"TV gained only {gain:.2f} dB"  # measured: 7.5 dB
