"""Noise2Noise (Lehtinen et al., ICML 2018): learn from two independent noisy draws of a scene.

    L = ||f(y1) - y2||^2

As in the official pipeline, both draws are made fresh every iteration and each draws its own noise
level. The network is the shared 48-channel U-Net, as in Neighbor2Neighbor's "Baseline N2N".

The training recipe (:class:`Noise2NoiseRecipe`) is the official code's, which trains its clean-target
("n2c") and noisy-target ("n2n") networks with one configuration: Adam 3e-4 with beta2 = 0.99, the
cosine-squared ramp-down over the last 30 %, 300k iterations of batch 4 on 256x256 crops. The
supervised U-Net (``methods.unet``) uses the same recipe, so the gap between the two is the target's
alone, as in the official README (Kodak sigma=25: 32.38 n2c, 32.39 n2n).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from typing_extensions import override

from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import ZERO_MEAN
from denoise_bench.schedules import cosine_squared_rampdown
from denoise_bench.supervision import NoisyPairBatch, Supervision


class Noise2NoiseRecipe(NetworkMethod):
    """The official Noise2Noise training configuration, shared by its clean- and noisy-target runs."""

    learning_rate = 3e-4
    adam_betas = (0.9, 0.99)
    official_budget = {"iterations": 300_000, "batch_size": 4, "crop_size": 256}

    @override
    def lr_factor(self, progress: float) -> float:
        return cosine_squared_rampdown(progress)


class Noise2Noise(Noise2NoiseRecipe):
    name = "n2n"
    description = "Noise2Noise: regress one noisy draw onto an independent second draw"
    citation = "Lehtinen et al., Noise2Noise: Learning Image Restoration without Clean Data, ICML 2018"
    supervision = Supervision.NOISY_PAIRS
    requires = frozenset({ZERO_MEAN})

    @override
    def training_loss(self, batch: NoisyPairBatch, progress: float) -> torch.Tensor:
        return F.mse_loss(self.net(batch.noisy), batch.noisy2)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(Noise2Noise)
