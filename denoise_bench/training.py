"""The one training loop every network method uses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from denoise_bench.captured_step import eager_form, make_step
from denoise_bench.checkpoints import load_checkpoint, save_checkpoint
from denoise_bench.errors import BenchError
from denoise_bench.method import TrainContext
from denoise_bench.profiles import WARMUP_FRACTION, Budget, LrRule
from denoise_bench.schedules import warmup_cosine
from denoise_bench.supervision import TrainingView

if TYPE_CHECKING:
    from denoise_bench.network_method import NetworkMethod

# Reading the loss back forces a device sync, so the NaN/inf check and progress reporting happen
# only every few steps: each step's loss is copied into a small buffer on the device, and the buffer
# is read back in one go, so a divergence is still named by the step it happened at.
CHECK_EVERY = 25


class TrainingDiverged(BenchError):
    """The loss became NaN or infinite."""


class _LossWindow:
    """The losses of the steps since the last check, kept on the device until :meth:`check` reads them."""

    def __init__(self, name: str, device: torch.device) -> None:
        self.name = name
        self.values = torch.empty(CHECK_EVERY, dtype=torch.float32, device=device)
        self.first = 0  # 1-based step of values[0]
        self.count = 0

    def add(self, step: int, loss: torch.Tensor) -> None:
        """Keep the loss of ``step`` (1-based) without a device sync."""
        if self.count == 0:
            self.first = step
        self.values[self.count].copy_(loss.detach().reshape(()))
        self.count += 1

    def check(self) -> float:
        """The newest loss; raises :class:`TrainingDiverged` naming the first step whose loss was not finite."""
        values = self.values[:self.count].tolist()  # the one sync
        self.count = 0
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise TrainingDiverged(f"{self.name}: loss became {value} at step {self.first + offset}")
        return values[-1]


def make_optimizer(method: NetworkMethod) -> torch.optim.Optimizer:
    """The method's optimiser at the rate its budget's rule gives: both rules start from the method's own
    rate; the short-budget rule may scale it by one factor shared by every method (``Budget.lr_scale``),
    the official rule never does."""
    budget = method.setup.budget
    scale = 1.0 if budget.lr_rule == LrRule.OFFICIAL else budget.lr_scale
    return method.optimizer(method.learning_rate * scale)


def make_schedule(method: NetworkMethod, optimizer: torch.optim.Optimizer, total: int, view: TrainingView) -> Any:
    """The scheduler of ``total`` steps the budget's rule gives: the method's own under the official rule,
    else one warm-up-cosine shape for every method."""
    if method.setup.budget.lr_rule == LrRule.OFFICIAL:
        return method.own_schedule(optimizer, total, view)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step / total, WARMUP_FRACTION))


TRAINING_STATE_FORMAT = 1


def _training_state(method: NetworkMethod, optimizer: torch.optim.Optimizer, scheduler: Any,
                    view: TrainingView, step: int, total: int, seconds: float) -> dict[str, Any]:
    """Everything needed to continue bit for bit: weights, optimiser, schedule, every RNG."""
    state = {
        "format": TRAINING_STATE_FORMAT,
        "step": step,
        "total": total,
        "method": method.state_dict(),
        "optimizer": eager_form(optimizer.state_dict()),
        "scheduler": scheduler.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "rng_view": view.rng_state(),
        "train_seconds": seconds,
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore(method: NetworkMethod, optimizer: torch.optim.Optimizer, scheduler: Any, view: TrainingView,
             state: dict[str, Any], path: Path, total: int) -> int:
    if state.get("format") != TRAINING_STATE_FORMAT or state.get("total") != total:
        raise BenchError(f"{path}: training state is from a different version or budget "
                         f"(format {state.get('format')}, {state.get('total')} steps; expected {total}); delete it to restart")
    method.load_state_dict(state["method"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    view.set_rng_state(state["rng_view"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return int(state["step"])


def train(method: NetworkMethod, view: TrainingView, budget: Budget, context: TrainContext) -> None:
    """Adam on ``method.training_loss`` for ``budget.iterations`` steps, with the method's schedule.

    The method's :class:`~denoise_bench.engine.Engine` decides precision, layout and compilation.

    With ``context.checkpoint_path`` set, the full training state is saved every
    ``context.checkpoint_every`` steps (and at the end), and training continues from it if it exists.
    """
    method.prepare(view)
    optimizer = make_optimizer(method)
    total = budget.iterations
    scheduler = make_schedule(method, optimizer, total, view)
    crop = method.training_crop().side
    path = context.checkpoint_path
    start = 0
    if path is not None and path.exists():
        state = load_checkpoint(path, method.setup.device)
        start = _restore(method, optimizer, scheduler, view, state, path, total)
        context.on_restore(float(state.get("train_seconds", 0.0)))
        context.log(f"{method.name}: resuming from step {start} of {total}")
        context.on_step(start, math.nan)
    engine, device = method.setup.engine, method.setup.device
    losses = _LossWindow(method.name, device)
    with engine.training(method.net, device):
        training_step = make_step(method, view, optimizer, budget.batch_size, crop, context.log)
        for step in range(start, total):
            loss = training_step(step / total)
            save = path is not None and context.checkpoint_every and ((step + 1) % context.checkpoint_every == 0 or step + 1 == total)
            evaluate = context.evaluate_every and (step + 1) % context.evaluate_every == 0
            # Also checked before a state is saved or scored, so that a diverged one is neither.
            check = (step + 1) % CHECK_EVERY == 0 or step + 1 == total or save or evaluate
            # The rate of this step, before the schedule moves on (read only when reported: under a captured
            # step it is a device tensor, and reading it waits for the device).
            lr = float(optimizer.param_groups[0]["lr"]) if check else math.nan
            scheduler.step()
            losses.add(step + 1, loss)
            if check:
                context.on_step(step + 1, losses.check(), lr)
            if save and path is not None:  # (save implies a path; said again for the type checker)
                save_checkpoint(_training_state(method, optimizer, scheduler, view, step + 1, total, context.elapsed()), path)
            if evaluate:
                context.on_evaluate(step + 1)
                method.net.train()  # evaluation put the network in inference mode
                if context.stop_requested():
                    context.log(f"{method.name}: training stopped at step {step + 1} of {total}")
                    break
