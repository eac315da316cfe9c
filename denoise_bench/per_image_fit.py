"""The Adam loop of the methods that fit a fresh network to each test image (Self2Self, Zero-Shot Noise2Noise).

Deep Image Prior keeps a loop of its own: its backtracking guard and moving average act inside it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from denoise_bench.engine import Engine


def fit_per_image(net: nn.Module, step_loss: Callable[[], torch.Tensor], iterations: int, *, lr: float,
                  device: torch.device, engine: Engine | None = None, progress: bool = False, desc: str = "fit",
                  lr_factor: Callable[[int], float] = lambda step: 1.0) -> None:
    """``iterations`` Adam steps on ``step_loss()`` (a fresh draw of the method's loss each call, computed
    under the training ``engine``'s autocast), the rate ``lr * lr_factor(step)``."""
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    engine = engine or Engine()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    with engine.training(net, device):
        for step in tqdm(range(iterations), desc=desc, unit="it", leave=False, disable=not progress):
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step)
            with engine.autocast(device):
                loss = step_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.float().backward()
            optimizer.step()
