"""Training one unit's method: built for its training set, fitted (or loaded) and timed.

The trained weights of a unit are kept under ``checkpoints/`` with its training seconds, so a run
that is continued loads them instead of training again; a training cut short continues from its
last resumable state (``<name>.train.pt``, see ``denoise_bench.training``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from denoise_bench.checkpoints import load_checkpoint, save_checkpoint
from denoise_bench.data import Dataset
from denoise_bench.divergence import DivergenceGuard, above_input
from denoise_bench.errors import BenchError
from denoise_bench.method import Method, MethodSetup, StepReport, TrainContext, TrainingInfo
from denoise_bench.noise import NoiseSetting
from denoise_bench.run.planning import RunPlan
from denoise_bench.results import CHECKPOINTS, weights_stem, write_json
from denoise_bench.run.inputs import RunData
from denoise_bench.run.scoring import curve_points
from denoise_bench.supervision import Supervision
from denoise_bench.models.trained import described_state


StepMetrics = Callable[[int, int, float, float], None]  # (step, total steps, loss, learning rate)


@dataclass(frozen=True)
class TrainedFiles:
    """Where a unit's training is kept: final weights, their training seconds, the resumable state."""

    weights: Path
    timing: Path
    state: Path
    last_good: Path  # under --stop-on-divergence: the last network whose curves were all above the noisy input

    @staticmethod
    def of(p: RunPlan, method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int) -> "TrainedFiles":
        """Under the run's own ``checkpoints/``, or the trained run's for an evaluation (``weights_from``)."""
        name = weights_stem(method_cls.name, p.training_source(dataset).training_set_id(), str(setting.train), seed)
        folder = (p.request.weights_from or p.run_dir) / CHECKPOINTS
        return TrainedFiles(folder / f"{name}.pt", folder / f"{name}.json", folder / f"{name}.train.pt",
                            folder / f"{name}.last-good.pt")


class TrainingClock:
    """Training seconds: this invocation's wall time, less learning-curve evaluations, plus the
    seconds of earlier, interrupted invocations (restored with the training state)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._evaluating = 0.0
        self._earlier = 0.0

    def elapsed(self) -> float:
        return self._earlier + time.perf_counter() - self._start - self._evaluating

    def restore(self, seconds: float) -> None:
        self._earlier = seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside is not training."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self._evaluating += time.perf_counter() - began


def method_setup(p: RunPlan, method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int,
                 data: RunData) -> MethodSetup:
    """What the method is built with. Captured noise has no spec to tell and no crop to fit."""
    captured = setting.train.family.captured
    # An evaluation loads trained weights and has no training images to fit a crop to.
    fits_crop = p.trains(method_cls) and not captured
    return MethodSetup(channels=dataset.channels, budget=p.budget_of(method_cls), device=p.device, seed=seed,
                       options=p.options_of(method_cls), engine=p.engine,
                       training=TrainingInfo(noise=None if captured else setting.train,
                                             shortest_side=data.shortest_train_side(dataset) if fits_crop else None),
                       progress=p.request.progress)


def trained_method(p: RunPlan, method_cls: type[Method], datasets: list[Dataset], setting: NoiseSetting, seed: int,
                   data: RunData, echo: Callable[[str], None], add_curve_point: Callable[[dict], None],
                   on_training_step: StepMetrics = lambda step, total, loss, lr: None) -> tuple[Method, float]:
    """The method trained (or loaded, if an earlier invocation trained it) for ``datasets``, which share a training set.

    ``on_training_step(step, total, loss, lr)`` gets the steps the training reports (for the lifecycle
    hooks). Returns the method and its training seconds (learning-curve evaluations excluded).
    """
    first = datasets[0]
    setup = method_setup(p, method_cls, first, setting, seed, data)
    method = method_cls(setup)
    if not method_cls.trainable:
        return method, 0.0
    files = TrainedFiles.of(p, method_cls, first, setting, seed)
    if files.weights.exists():  # trained before an interruption, or by the run an evaluation tests
        method.load_state_dict(load_checkpoint(files.weights, p.device))
        seconds = json.loads(files.timing.read_text())["train_seconds"] if files.timing.exists() else 0.0
        return method, float(seconds)
    if p.request.weights_from is not None:
        raise BenchError(f"{p.request.weights_from} has no trained weights for {method_cls.name} on {setting.train}, "
                         f"seed {seed} ({files.weights.name}); an evaluation does not train")
    crop = method.training_crop()  # its note is None under captured noise: method_setup gives no side to fit
    if crop.note:
        echo(f"{method_cls.name}: {crop.note}")
    view = data.training_view(Supervision(method_cls.supervision), first, setting.train, crop.side, seed)
    bar = tqdm(total=setup.budget.iterations, desc=f"train {method_cls.name}", disable=not p.request.progress, leave=False)
    clock = TrainingClock()
    guard = DivergenceGuard() if p.request.stop_on_divergence else None

    def on_evaluate(step: int) -> None:
        with clock.paused():
            trained_for = clock.elapsed()  # one instant for every point of this step
            rng = torch.get_rng_state()  # inference draws nothing, but a plugin's denoise might
            points = []
            for point in curve_points(p, method, datasets, setting, seed, step, trained_for, data):
                add_curve_point(point)
                points.append(point)
            torch.set_rng_state(rng)
            if guard is not None:
                for point in points:
                    guard.see(point)
                if guard.divergence is None and all(above_input(pt) for pt in points):
                    save_checkpoint(described_state(method, p.request.protocol), files.last_good)

    def diverged() -> bool:
        if guard is None or guard.divergence is None:
            return False
        kept = f"; its last network above the input: {files.last_good}" if files.last_good.exists() else ""
        echo(f"{guard.divergence.text()}: stopped (--stop-on-divergence){kept}")
        return True

    try:
        method.fit(view, TrainContext(on_step=_progress(bar, setup.budget.iterations, on_training_step), log=echo,
                                      checkpoint_path=files.state,
                                      checkpoint_every=p.request.checkpoint_every,
                                      evaluate_every=p.request.eval_every, on_evaluate=on_evaluate,
                                      stop_requested=diverged,
                                      elapsed=clock.elapsed, on_restore=clock.restore))
    finally:
        bar.close()
    train_seconds = clock.elapsed()
    write_json(files.timing, {"train_seconds": train_seconds})  # before the weights: their presence means "trained"
    # With what it was built from, so that the file alone rebuilds it (denoise_bench.load_trained).
    save_checkpoint(described_state(method, p.request.protocol), files.weights)
    files.state.unlink(missing_ok=True)  # the optimiser state is no longer needed
    if guard is None or guard.divergence is None:
        files.last_good.unlink(missing_ok=True)  # kept only where the training diverged
    return method, train_seconds


def _progress(bar: tqdm, total: int, on_training_step: StepMetrics) -> StepReport:
    """``on_step`` for the training loop: moves ``bar`` to the step reached, shows the loss, passes it on."""
    last = [0]

    def on_step(step: int, loss: float, lr: float = math.nan) -> None:
        bar.update(step - last[0])
        last[0] = step
        bar.set_postfix(loss=f"{loss:.4g}")
        if math.isfinite(loss):  # a resumed training reports its step first, with no loss yet
            on_training_step(step, total, loss, lr)

    return on_step
