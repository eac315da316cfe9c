"""The one training loop every network method uses."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from denoise_bench.errors import BenchError
from denoise_bench.method import TrainContext
from denoise_bench.profiles import Budget
from denoise_bench.supervision import TrainingView

if TYPE_CHECKING:
    from denoise_bench.network_method import NetworkMethod

# Reading the loss back forces a device sync, so the NaN/inf check and progress reporting happen
# only every few steps.
CHECK_EVERY = 25


class TrainingDiverged(BenchError):
    """The loss became NaN or infinite."""


def train(method: NetworkMethod, view: TrainingView, budget: Budget, context: TrainContext) -> None:
    """Adam on ``method.training_loss`` for ``budget.iterations`` steps, with the method's schedule."""
    optimizer = method.make_optimizer()
    total = budget.iterations
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: method.lr_factor(step / total))
    for step in range(total):
        batch = view.sample(budget.batch_size, budget.crop_size)
        loss = method.training_loss(batch, step / total)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == total:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(f"{method.name}: loss became {value} at step {step + 1}")
            context.on_step(step + 1, value)
