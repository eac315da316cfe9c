"""The method contract.

A method is a class with a name, a one-line description, a citation and a declared supervision. The
runner creates one instance per training job with a :class:`MethodSetup`, calls :meth:`Method.fit`
once (trainable methods only) with a supervision-limited training view, then :meth:`Method.denoise`
on every noisy test image. Trained state round-trips through :meth:`state_dict` /
:meth:`load_state_dict`.

Noise assumptions: ``requires`` lists the properties of the noise (see ``denoise_bench.noise``) the
method relies on; the runner skips (method, noise) cells whose family lacks one, and says why.
A method that needs the true noise level (BM3D) sets ``uses_noise_level``; only those get it, and
tables mark them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from denoise_bench.engine import Engine
from denoise_bench.errors import BenchError, unknown_name
from denoise_bench.noise import KNOWN_PROPERTIES, Levels, NoiseFamily, NoiseSpec
from denoise_bench.options import parse_option
from denoise_bench.profiles import Budget
from denoise_bench.supervision import Supervision, TrainingView


@dataclass(frozen=True)
class TrainingInfo:
    """What the runner knows of the training data, for recipes whose official settings depend on it.
    Each field is None when unknown (captured noise, weights loaded for evaluation, a bare test setup)."""

    # The training noise (family and levels, never a drawn value): Blind2Unblind's t1.
    noise: NoiseSpec | None = None
    # The shortest side among the training images: Neighbor2Neighbor, cutting crops larger than the
    # budget's, fits them to it.
    shortest_side: int | None = None


@dataclass(frozen=True)
class TrainingCrop:
    """The side of the square crops a method trains on, and what the run log should say where the
    method had to depart from its own rule (Neighbor2Neighbor on training images too small for its
    doubled crop); ``note`` is None otherwise."""

    side: int
    note: str | None = None


@dataclass(frozen=True)
class MethodSetup:
    """Everything a method needs to build itself."""

    channels: int  # 1 gray, 3 colour
    budget: Budget
    device: torch.device = torch.device("cpu")
    seed: int = 0
    options: dict[str, str] = field(default_factory=dict)  # --method-option NAME:KEY=VALUE
    engine: Engine = field(default_factory=Engine)  # precision, layout, compilation of network training
    training: TrainingInfo = TrainingInfo()
    # Whether the method may show progress bars of its own, for long per-image work (DIP's fit to
    # each image): the run's --progress; off outside a run.
    progress: bool = False


@dataclass(frozen=True)
class NoiseInfo:
    """The true noise of one test image, for methods that declare ``uses_noise_level``."""

    spec: NoiseSpec
    levels: dict[str, float]  # this image's drawn parameter values, e.g. {"sigma": 25.0}

    def __post_init__(self) -> None:
        """Each level a finite number in its parameter's range: a NaN level denoises to NaN without a word."""
        params = {p.name: p for p in self.spec.family.params}
        for name, value in self.levels.items():
            param = params.get(name)
            try:
                if not math.isfinite(value):
                    raise BenchError("not finite")
                if param is not None:
                    param.check(value, str(self.spec))
            except BenchError:
                bracket = "(" if param is not None and param.minimum_exclusive else "["
                within = f" in {bracket}{param.minimum:g}, {param.maximum:g}]" if param is not None else ""
                raise BenchError(f"noise level {name}={value:g} of {self.spec.family.name} noise is not a number"
                                 f"{within}") from None

    @staticmethod
    def from_levels(spec: NoiseSpec, levels: Levels) -> "NoiseInfo":
        return NoiseInfo(spec, {k: float(v.reshape(-1)[0]) for k, v in levels.items()})


class StepReport(Protocol):
    def __call__(self, step: int, loss: float, lr: float = math.nan) -> None: ...


@dataclass
class TrainContext:
    """What the runner gives to ``fit``: progress reporting and where to keep a resumable state.

    A method that trains for long should save its full training state (weights, optimiser,
    schedule, RNG) to ``checkpoint_path`` every ``checkpoint_every`` steps and continue from it when
    the file exists; the shared training loop does this for every network method.
    """

    # on_step(step, loss) or on_step(step, loss, lr): the loss of training step ``step`` (1-based) and the
    # learning rate it used, for the progress bar and tracking plugins (hookspecs.training_step); call it
    # every few steps, where the loss is read back anyway. lr may be left out (NaN: not reported).
    on_step: StepReport = lambda step, loss, lr=math.nan: None
    log: Callable[[str], None] = lambda message: None
    checkpoint_path: Path | None = None
    checkpoint_every: int = 0  # 0: never
    # Learning curves: call on_evaluate(step) every evaluate_every steps (0: never); the runner scores
    # the current state on the test images there, without touching the training RNG streams.
    evaluate_every: int = 0
    on_evaluate: Callable[[int], None] = lambda step: None
    # Asked after each on_evaluate: True ends the training there (the divergence guard, --stop-on-divergence).
    stop_requested: Callable[[], bool] = lambda: False
    # Training seconds so far (the runner's clock, evaluations excluded), saved with the training state,
    # and given back through on_restore when a resumed run loads it, so that time is not lost.
    elapsed: Callable[[], float] = lambda: 0.0
    on_restore: Callable[[float], None] = lambda seconds: None


class Method(ABC):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    supervision: ClassVar[Supervision] = Supervision.NONE
    requires: ClassVar[frozenset[str]] = frozenset()
    uses_noise_level: ClassVar[bool] = False
    trainable: ClassVar[bool] = True
    # Whether its results depend on the seed. A method that neither trains nor draws random numbers (BM3D)
    # sets False: a run then scores it under one seed and records that result under each other seed, the
    # test noise being the same for every seed (denoise_bench.run.unit_runner). DIP, per image, is seeded.
    seeded: ClassVar[bool] = True
    # Input sides the method needs; the evaluator pads test images (per the protocol) to a multiple. Not a
    # ClassVar: an instance may set its own (a NetworkMethod takes its network's downsample_factor).
    input_multiple: int = 1
    # Whether the evaluator pads to a square (both sides to the next multiple of the longer one, under the
    # ``reflect-square`` protocols) rather than each side to its own next multiple: the convention the
    # built-in networks were scored under, kept so that their results stay comparable.
    pads_to_square: ClassVar[bool] = False
    # Whether ``denoise`` takes several test images stacked in one batch (each estimate that of the image
    # alone, up to floating-point rounding): the evaluator batches such a method's inputs of one padded shape
    # on a GPU. A method that fits or draws per image (DIP, CVF-SID's transductive fit) leaves it False.
    batch_denoise: ClassVar[bool] = False
    # Tunable options and their defaults; values given as text are converted to the default's type.
    options: ClassVar[dict[str, Any]] = {}
    # Options written into every result's experiment identity even at their default (others only when
    # they differ from it): choices whose default was chosen by measurement and may change again, so that
    # results made under an older default never merge with, or read as, today's. Records made before an
    # option was listed here carry only its non-default values; ``former_defaults`` holds the defaults
    # they were made under, and the leaderboard reads them with those.
    identity_options: ClassVar[tuple[str, ...]] = ()
    former_defaults: ClassVar[dict[str, Any]] = {}
    # Options that take the method beyond its paper (this suite's extensions); each defaults to the value at
    # which it does nothing or at which the paper sets it. A result made with any of them at another value is
    # named for it on every table, board and plot (``iddp+alpha(0.1) (ours)``: denoise_bench.experiment.row_name),
    # so that it can never pass for the paper's method.
    extensions: ClassVar[tuple[str, ...]] = ()
    # A method that is itself a variant of this suite's making (not any paper's): its rows always carry "(ours)".
    ours: ClassVar[bool] = False
    # The published training budget (fields of profiles.OFFICIAL_BUDGET_FIELDS) that the ``official``
    # profile gives this method; empty: the profile's base budget.
    official_budget: ClassVar[dict[str, int]] = {}
    # Options the ``smoke`` profile runs the method with unless the run gives its own (profiles.SMOKE_PROFILE):
    # a smoke job checks the plumbing in seconds, which the budget alone cannot make it where an option sets
    # the cost (a network's own width, passes per test image). Other profiles use ``options``.
    smoke_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, setup: MethodSetup) -> None:
        self.setup = setup
        self.opts: dict[str, Any] = resolve_options(self.name, self.options, setup.options)
        self.check_options(self.opts)

    @classmethod
    def check_options(cls, opts: dict[str, Any]) -> None:
        """Refuse option values out of their range or choices with a BenchError naming them. ``opts`` are the
        method's options resolved (typed, defaults filled in). Called when a run is planned, for every method
        of its grid, so that a bad value stops the run before any job trains, and again when the method is
        built. Override to check; the default accepts every value of the right type."""

    @classmethod
    def incompatibility(cls, family: NoiseFamily) -> str | None:
        """Why this method cannot run on ``family``, or None if it can."""
        missing = sorted(cls.requires - family.properties)
        if missing:
            return f"{cls.name} assumes {', '.join(missing)} noise; {family.name} is not"
        if cls.uses_noise_level and not family.params:
            return f"{cls.name} is told the true noise level; {family.name} noise has none"
        return None

    def training_crop(self) -> TrainingCrop:
        """The training crops the view cuts: the budget's side, unless the method sub-samples them
        (Neighbor2Neighbor cuts twice the side, so that its network sees crops of the budget's size)."""
        return TrainingCrop(self.setup.budget.crop_size)

    def fit(self, view: TrainingView, context: TrainContext) -> None:
        """Train on the view (``setup.budget`` says how long). Per-image methods need not train."""

    @abstractmethod
    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        """Estimate the clean image of a (1, C, H, W) noisy tensor; same shape, same device."""

    def test_fit_budget(self) -> str | None:
        """The budget field that sets how many optimisation steps :meth:`denoise` takes on each test image
        (``per_image_iterations``, or ``iterations`` for a method that trains on each test image instead of
        a training set), or None if it takes none. The time estimate times such a method at a few steps and
        extrapolates, rather than fitting at the whole budget before the first job. Default: the per-image
        methods (not trainable, ``per_image_iterations`` in their published budget: DIP, S2S, ZS-N2N)."""
        if not self.trainable and "per_image_iterations" in self.official_budget:
            return "per_image_iterations"
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.name:
            raise BenchError(f"checkpoint is for method {state.get('method')!r}, not {self.name!r}")


def validate_method_class(obj: object) -> str:
    """Check a registered method class; returns its name or raises BenchError saying what is wrong."""
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise BenchError(f"register_methods expects a Method subclass, got {obj!r}")
    for attr in ("name", "description", "citation"):
        if not isinstance(getattr(obj, attr, None), str) or not getattr(obj, attr):
            raise BenchError(f"method class {obj.__name__} must set a non-empty {attr}")
    try:
        Supervision(obj.supervision)
    except ValueError:
        error = unknown_name("supervision", obj.supervision, (s.value for s in Supervision))
        raise BenchError(f"method {obj.name!r}: {error}") from None
    if Supervision(obj.supervision) is Supervision.PRETRAINED and obj.trainable:
        raise BenchError(f"method {obj.name!r}: supervision 'pretrained' arrives trained; set trainable = False")
    unknown = sorted(set(obj.requires) - KNOWN_PROPERTIES)
    if unknown:
        error = unknown_name("noise property", unknown[0], KNOWN_PROPERTIES, plural="noise properties")
        raise BenchError(f"method {obj.name!r}: {error}")
    resolve_options(obj.name, obj.options, obj.smoke_options)  # smoke_options: options it has, of their types
    return obj.name


def _typed_option(method: str, key: str, raw: Any, default: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return parse_option(raw, like=default)
    except ValueError:
        raise BenchError(f"method {method!r}: option {key}={raw!r} is not a valid {type(default).__name__}") from None


def resolve_options(method: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by the given values, each converted to its default's type."""
    unknown = set(given) - set(defaults)
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise BenchError(f"method {method!r} has no option(s) {', '.join(sorted(unknown))}; options: {valid}")
    return {k: _typed_option(method, k, given.get(k, v), v) for k, v in defaults.items()}
