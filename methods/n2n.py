"""Noise2Noise (Lehtinen et al., ICML 2018): learn from two independent noisy draws of a scene.

    L = ||f(y1) - y2||^2

As in the official pipeline, both draws are made fresh every iteration and each draws its own noise
level. Adam 3e-4 with beta2 = 0.99 and the official cosine-squared ramp-down over the last 30 %.
The network is the shared 48-channel U-Net, as in Neighbor2Neighbor's "Baseline N2N".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import ZERO_MEAN
from denoise_bench.schedules import cosine_squared_rampdown
from denoise_bench.supervision import NoisyPairBatch, Supervision


class Noise2Noise(NetworkMethod):
    name = "n2n"
    description = "Noise2Noise: regress one noisy draw onto an independent second draw"
    citation = "Lehtinen et al., Noise2Noise: Learning Image Restoration without Clean Data, ICML 2018"
    supervision = Supervision.NOISY_PAIRS
    requires = frozenset({ZERO_MEAN})
    learning_rate = 3e-4
    adam_betas = (0.9, 0.99)

    def lr_factor(self, progress: float) -> float:
        return cosine_squared_rampdown(progress)

    def training_loss(self, batch: NoisyPairBatch, progress: float) -> torch.Tensor:
        return F.mse_loss(self.net(batch.noisy), batch.noisy2)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(Noise2Noise)
