"""Supervised U-Net (the clean-target "n2c" network of Noise2Noise; "Baseline N2C" of Neighbor2Neighbor).

    L = ||f(y) - x||^2, fresh noise every iteration.

The shared U-Net trained with exactly the Noise2Noise recipe (``methods.n2n.Noise2NoiseRecipe``:
Adam 3e-4, beta2 = 0.99, cosine-squared ramp-down, 300k iterations of batch 4 on 256x256 crops), as
the official Noise2Noise code trains its clean-target baseline: the supervised U-Net and Noise2Noise
differ by their training target alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from typing_extensions import override

from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method
from denoise_bench.supervision import CleanBatch, Supervision

# Relative: installed, this package is denoise_bench.methods; the type checker reads it from the source tree as methods.
from .n2n import Noise2NoiseRecipe


class SupervisedUNet(Noise2NoiseRecipe):
    name = "unet"
    description = "supervised U-Net trained on clean targets (upper reference)"
    citation = "Ronneberger et al., MICCAI 2015; trained as the clean-target baseline of Lehtinen et al., ICML 2018"
    supervision = Supervision.CLEAN

    @override
    def training_loss(self, batch: CleanBatch, progress: float) -> torch.Tensor:
        return F.mse_loss(self.net(batch.noisy), batch.clean)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(SupervisedUNet)
