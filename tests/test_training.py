"""The shared training loop: a diverging loss is caught and named by the step it happened at."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from denoise_bench.network_method import NetworkMethod
from denoise_bench.supervision import Supervision
from denoise_bench.testing import TINY_BUDGET, ConformanceSetup
from denoise_bench.training import CHECK_EVERY, TrainingDiverged

NAN_STEP = 8  # well before the first read-back of the loss, at CHECK_EVERY


class DivergesAtStep8(NetworkMethod):
    """Fits noisy crops to themselves until its loss, and with it every weight, turns NaN at step 8."""

    name = "diverges"
    description = "loss becomes NaN at step 8 (test plugin)"
    citation = "none"
    supervision = Supervision.NONE

    def __init__(self, setup):  # type: ignore[no-untyped-def]
        super().__init__(setup)
        self.steps = 0

    def training_loss(self, batch, progress: float) -> torch.Tensor:  # type: ignore[no-untyped-def]
        self.steps += 1
        loss = (self.net(batch.noisy) - batch.noisy).square().mean()
        return self.poison(loss) if self.steps >= NAN_STEP else loss

    def poison(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * float("nan")


class NaNOnceAtStep8(DivergesAtStep8):
    """One NaN loss at step 8 whose gradient stays finite: every later loss is finite again."""

    name = "nan-once"

    def poison(self, loss: torch.Tensor) -> torch.Tensor:
        return loss + torch.tensor(float("nan")) if self.steps == NAN_STEP else loss


@pytest.mark.parametrize("method_class", [DivergesAtStep8, NaNOnceAtStep8])
def test_a_nan_loss_is_reported_at_the_step_it_happened(method_class: type[NetworkMethod]) -> None:
    assert NAN_STEP < CHECK_EVERY
    budget = dataclasses.replace(TINY_BUDGET, iterations=CHECK_EVERY + 5)
    with pytest.raises(TrainingDiverged, match=re.escape(f"{method_class.name}: loss became nan at step {NAN_STEP}")):
        ConformanceSetup(method_class, budget=budget).fitted()
