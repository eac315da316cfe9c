"""How long the units of a grid will take on this machine, from a short timed probe, before anything runs.

A unit costs its training plus its tests, and both are timed here on the run's own data, method
setup, engine and device, so that the estimate holds whatever the machine (an AMX CPU, a loaded
2-core box, a GPU):

* training: the real training loop (``Method.fit``) for ``PROBE_WARMUP + PROBE_STEPS`` steps, the
  warm-up ones untimed (allocation, Adam's state); a step costs the same all through a training
  (fixed batch and crops), so the seconds per step times the budget's iterations. Steps are timed
  through the learning-curve hook called after every step; a method whose ``fit`` does not call it
  is timed as a whole (its setup counted in, so on the high side).
* tests: :func:`denoise_bench.evaluate.evaluate` (denoising, padding, metrics, noisy and floor rows)
  on the centre of the first test image, then scaled by pixels to every test case the unit scores, and to its
  learning-curve evaluations. A method that optimises on each test image (``Method.test_fit_budget``:
  DIP, S2S, ZS-N2N per image, a transductive CVF-SID for the training budget) is timed at 1 and
  ``1 + PROBE_STEPS`` such steps and extrapolated to its budget.

One probe per distinct training (method, options, channels, budget, training noise) and per
method's test, so a grid of seeds probes once. What the probe cannot see: load that arrives later,
data loading and checkpoint writes (small next to training). ``GridProgress`` corrects the estimates
of the units left by how far the finished ones were off.

The probe's seconds are this machine's at the load it ran under, and on a CPU that load moves them most:
the same quick grid was estimated at ~40 min at a 1-minute load average of 10 and ~4 min at 4 on a 2-core
machine. So the estimate says the load it was taken at (:class:`ProbeLoad`), and where
the cores were shared, the time were they free: the threads got about ``cores / (load + threads)`` of them.
"""

from __future__ import annotations

import os
import time
from statistics import median
from collections.abc import Callable
from dataclasses import dataclass, replace

from denoise_bench.data import Dataset
from denoise_bench.errors import PLUGIN_FAILURES
from denoise_bench.evaluate import TestCase, centre_crop, evaluate
from denoise_bench.global_state import kept_state
from denoise_bench.plugins import source_of
from denoise_bench.run.fitting import method_setup
from denoise_bench.run.grid import Unit, setting_of
from denoise_bench.method import Method, TrainContext
from denoise_bench.noise import NoiseSetting
from denoise_bench.run.planning import RunPlan
from denoise_bench.run.inputs import RunData
from denoise_bench.supervision import Supervision
from denoise_bench.threads import usable_cores

PROBE_WARMUP = 2  # untimed training steps: the first ones allocate
PROBE_STEPS = 5  # timed training steps (and the extra per-image steps of a per-image optimiser)
# Tests are timed on the centre of the first test image, at most this side: BM3D takes seconds for a
# 512x512 image on a CPU, and costs per pixel alike at this size (within the factor the estimate claims).
PROBE_SIDE = 192

Clock = Callable[[], float]


@dataclass(frozen=True)
class ProbeLoad:
    """The load a CPU probe ran under: the 1-minute load average just before it (the other work), the cores this
    process may use, and the torch threads it computes with."""

    load: float
    cores: int
    threads: int

    @property
    def share(self) -> float:
        """The part of the time the run's threads got a core, the cores shared evenly among all that ran: 1 where
        the other work left them enough."""
        return min(1.0, self.cores / (max(self.load, 0.0) + self.threads))


def probe_load(p: RunPlan, load: Callable[[], float] = lambda: os.getloadavg()[0]) -> ProbeLoad | None:
    """The load a probe of ``p`` is about to run under; None off the CPU (a GPU's time is not the cores') or
    where the system keeps no load average."""
    if p.device.type != "cpu":
        return None
    try:
        busy = load()
    except (AttributeError, OSError):  # os.getloadavg: not on Windows
        return None
    return ProbeLoad(busy, usable_cores(), p.threads.count)


@dataclass(frozen=True)
class UnitCost:
    """A unit's estimated seconds, and the test images it scores (per dataset, each test noise)."""

    train_s: float
    test_s: float
    images: dict[str, int]
    timed: bool = True  # False: its method failed the probe (its job will tell why), cost unknown, counted as 0

    @property
    def seconds(self) -> float:
        return self.train_s + self.test_s

    @property
    def images_text(self) -> str:
        """``68 bsd68, 12 set12``: the test images it scores, per dataset."""
        return ", ".join(f"{n} {dataset}" for dataset, n in self.images.items())


@dataclass(frozen=True)
class TestCost:
    """A test case's seconds: a part that does not depend on the image's size, and one per pixel of it."""

    __test__ = False  # not a pytest class, despite its name
    per_case: float
    per_pixel: float


def estimate_units(p: RunPlan, grid: list[Unit], data: RunData | None = None,
                   clock: Clock = time.perf_counter) -> dict[Unit, UnitCost]:
    """Each unit's cost on this machine (a skipped cell costs nothing). Loads every split the units use,
    so an unreadable or empty image folder fails here as a BenchError, before the first job."""
    data = data or RunData(p)
    methods = {m.name: m for m in p.methods}
    probes = _Probes(p, data, clock)
    costs = {}
    for unit in grid:
        method_cls, setting = methods[unit.method], setting_of(p, unit)
        datasets = [d for d in p.datasets if d.name in unit.datasets]
        cases = unit_cases(p, unit, data)
        images = {name: len({c.image_id for c in dataset_cases}) for name, dataset_cases in cases.items()}
        if method_cls.incompatibility(setting.family) is not None:
            costs[unit] = UnitCost(0.0, 0.0, images)
            continue
        all_cases = [c for dataset_cases in cases.values() for c in dataset_cases]
        try:
            with kept_state(source_of("method", method_cls.name)):  # a probe leaves the next one as it found it
                train_s = probes.training(method_cls, datasets[0], setting, unit.seed) if p.trains(method_cls) else 0.0
                test = probes.test_cost(method_cls, datasets[0], setting, unit.seed, all_cases[0])
        except PLUGIN_FAILURES:  # the job will fail the same way, recorded as failed; its cost is unknown
            costs[unit] = UnitCost(0.0, 0.0, images, timed=False)
            continue
        test_s = test.per_case * len(all_cases) + test.per_pixel * (_pixels(all_cases) + _curve_pixels(p, method_cls, cases))
        costs[unit] = UnitCost(train_s, test_s, images)
    return costs


def unit_cases(p: RunPlan, unit: Unit, data: RunData) -> dict[str, list[TestCase]]:
    """The test cases a unit scores, per dataset (every test noise); its training set loaded and checked too,
    so that an empty or unreadable folder is refused before the first job rather than failing as one."""
    setting = setting_of(p, unit)
    datasets = [d for d in p.datasets if d.name in unit.datasets]
    method_cls = next(m for m in p.methods if m.name == unit.method)
    if p.trains(method_cls) and not setting.train.family.captured:
        data.shortest_train_side(datasets[0])
    return {d.name: [c for spec in setting.tests for c in data.test_cases(d, spec)] for d in datasets}


def timed_estimate(p: RunPlan, grid: list[Unit], clock: Clock = time.perf_counter) -> tuple[dict[Unit, UnitCost], float]:
    """:func:`estimate_units`, and the seconds its probe took."""
    start = clock()
    costs = estimate_units(p, grid, clock=clock)
    return costs, clock() - start


class _Probes:
    """The timed probes, each made once and remembered by what decides its cost."""

    def __init__(self, p: RunPlan, data: RunData, clock: Clock) -> None:
        self.p, self.data, self.clock = p, data, clock
        self._train: dict[tuple, float] = {}
        self._test: dict[tuple, TestCost] = {}

    def _key(self, method_cls: type[Method], dataset: Dataset, setting: NoiseSetting) -> tuple:
        options = sorted(self.p.options_of(method_cls).items())
        return (method_cls.name, tuple(options), dataset.channels, str(setting.train))

    def training(self, method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int) -> float:
        """Seconds of the whole training of ``method_cls`` for ``dataset``."""
        key = (*self._key(method_cls, dataset, setting), self.p.training_source(dataset).training_set_id())
        if key not in self._train:
            self._train[key] = self._step_seconds(method_cls, dataset, setting, seed) * self.p.budget_of(method_cls).iterations
        return self._train[key]

    def _step_seconds(self, method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int) -> float:
        setup = method_setup(self.p, method_cls, dataset, setting, seed, self.data)
        steps = PROBE_WARMUP + PROBE_STEPS
        method = method_cls(replace(setup, budget=setup.budget.override(iterations=steps), progress=False))
        view = self.data.training_view(Supervision(method_cls.supervision), dataset, setting.train,
                                       method.training_crop().side, seed)
        stamps: list[float] = []
        start = self.clock()
        method.fit(view, TrainContext(evaluate_every=1, on_evaluate=lambda step: stamps.append(self.clock())))
        end = self.clock()
        if len(stamps) == steps:  # one stamp after each step: the median timed step, which a burst of other load moves least
            return median(b - a for a, b in zip(stamps[PROBE_WARMUP - 1:], stamps[PROBE_WARMUP:]))
        return (end - start) / steps

    def test_cost(self, method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int,
                  case: TestCase) -> TestCost:
        """What one test case scored by ``method_cls`` costs, at its budget."""
        budget = self.p.budget_of(method_cls)
        key = (*self._key(method_cls, dataset, setting), budget.per_image_iterations, budget.iterations)
        if key not in self._test:
            case = _cropped(case, PROBE_SIDE)
            setup = replace(method_setup(self.p, method_cls, dataset, setting, seed, self.data), progress=False)
            method = method_cls(setup)
            field = method.test_fit_budget()
            per_case = 0.0
            if field is None:
                seconds = self._time_test(method, case)
            else:  # fixed cost + cost per step, from two short fits to the image
                def timed(steps: int) -> float:
                    return self._time_test(method_cls(replace(setup, budget=setup.budget.override(**{field: steps}))), case)
                # The first fit in a process pays one-off costs (oneDNN primitives, allocator pools) that can
                # exceed the whole difference below: untimed, or the cost per step comes out as nothing.
                timed(1)
                one, more = timed(1), timed(1 + PROBE_STEPS)
                per_step = max(more - one, 0.0) / PROBE_STEPS
                fitting = per_step * (getattr(setup.budget, field) - 1)
                # A per-image fit takes steps on the whole image, so its cost grows with the pixels; a transductive
                # training takes them on crops of the budget's size, whatever the image's.
                seconds, per_case = (one + fitting, 0.0) if field == "per_image_iterations" else (one, fitting)
            self._test[key] = TestCost(per_case, seconds / _pixels([case]))
        return self._test[key]

    def _time_test(self, method: Method, case: TestCase) -> float:
        start = self.clock()
        list(evaluate(method, [case], self.p.protocol, self.p.device))
        return self.clock() - start


def _cropped(case: TestCase, side: int) -> TestCase:
    """The centre ``side`` x ``side`` of a test case (all of a smaller one)."""
    return replace(case, clean_u8=centre_crop(case.clean_u8, side), noisy=centre_crop(case.noisy, side))


def _pixels(cases: list[TestCase]) -> int:
    return sum(c.noisy.shape[-1] * c.noisy.shape[-2] for c in cases)


def _curve_pixels(p: RunPlan, method_cls: type[Method], cases: dict[str, list[TestCase]]) -> int:
    """Pixels the learning-curve evaluations score over the training (``--eval-every``, ``--curve-images``)."""
    every = p.request.eval_every
    if not every or not method_cls.trainable:
        return 0
    points = p.budget_of(method_cls).iterations // every
    limit = p.request.curve_images
    per_point = 0
    for dataset_cases in cases.values():
        ids = list(dict.fromkeys(c.image_id for c in dataset_cases))[:limit]
        per_point += _pixels([c for c in dataset_cases if c.image_id in ids])
    return points * per_point
