"""Supervised U-Net ("Baseline N2C" of Neighbor2Neighbor): the same network trained on clean targets.

    L = ||f(y) - x||^2, fresh noise every iteration.

Adam 3e-4, halved after each fifth of training, as Neighbor2Neighbor trains it, so the only
difference with the self-supervised methods is the loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method
from denoise_bench.network_method import NetworkMethod
from denoise_bench.schedules import halve_every_fifth
from denoise_bench.supervision import CleanBatch, Supervision


class SupervisedUNet(NetworkMethod):
    name = "unet"
    description = "supervised U-Net trained on clean targets (upper reference)"
    citation = "Ronneberger et al., MICCAI 2015; trained as the N2C baseline of Huang et al., CVPR 2021"
    supervision = Supervision.CLEAN
    learning_rate = 3e-4

    def lr_factor(self, progress: float) -> float:
        return halve_every_fifth(progress)

    def training_loss(self, batch: CleanBatch, progress: float) -> torch.Tensor:
        return F.mse_loss(self.net(batch.noisy), batch.clean)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(SupervisedUNet)
