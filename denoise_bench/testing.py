"""Conformance checks for method plugins: run them against your own method class.

A method that passes them can be dropped into any ``bench run``: it declares itself correctly, keeps
the shape, dtype and device of its input, gives the same answer for the same seed, survives a
checkpoint round trip (through the same weights-only loader the runner uses) and trains only on the
kind of batches its declared supervision allows. Every built-in method passes them.

In a plugin package's tests::

    from denoise_bench.testing import MethodConformance
    from my_package import MyMethod

    class TestMyMethod(MethodConformance):
        method_class = MyMethod

pytest then runs one test per check (``test_declaration``, ``test_denoise_keeps_shape_dtype_device``,
...). Class attributes tune the set-up: ``channels`` (which of gray/colour the method supports),
``noise`` (a spec the method is compatible with), ``options`` (``--method-option`` values) and
``budget`` (kept tiny: the checks are about the contract, not about denoising quality).
Without pytest, :func:`check_method` runs every check and returns the failures as text, including a
method that raises (a diverging training, say) instead of letting the exception through.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import skimage.data
import torch

from denoise_bench.checkpoints import load_checkpoint, save_checkpoint
from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset
from denoise_bench.errors import BenchError
from denoise_bench.engine import Engine
from denoise_bench.images import to_chw
from denoise_bench.method import Method, MethodSetup, NoiseInfo, TrainContext, TrainingInfo, validate_method_class
from denoise_bench.noise import (KNOWN_PROPERTIES, SIGNAL_INDEPENDENT, ZERO_MEAN, Levels, NoiseFamily, NoiseSpec,
                                 parse_spec)
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import Budget
from denoise_bench.supervision import BATCH_TYPES, Batch, NoisePolicy, Supervision, TrainingView, build_view

# A few steps on 64x64 crops of a width-8 network: seconds on a CPU for any built-in method.
TINY_BUDGET = Budget(iterations=3, batch_size=2, crop_size=64, width=8, test_images=1, test_crop=None,
                     per_image_iterations=3)
IMAGE_SIZE = 64  # test images are IMAGE_SIZE x IMAGE_SIZE (a multiple of every built-in input_multiple)


class ConformanceError(AssertionError):
    """A method plugin broke the method contract; the message says how."""


@dataclass
class ConformanceSetup:
    """What the checks build methods and data from."""

    method_class: type[Method]
    channels: int = 1
    noise: str = "gaussian:sigma=25"
    options: dict[str, str] = field(default_factory=dict)
    budget: Budget = TINY_BUDGET
    device: torch.device = torch.device("cpu")
    engine: Engine = field(default_factory=Engine)

    def make(self, seed: int = 0) -> Method:
        setup = MethodSetup(channels=self.channels, budget=self.budget, device=self.device, seed=seed, options=self.options,
                            engine=self.engine, training=TrainingInfo(noise=self.spec()))
        return self.method_class(setup)

    def spec(self) -> NoiseSpec:
        return parse_spec(self.noise, get_registry().noise_families)

    def view(self, seed: int = 0) -> TrainingView:
        """A training view over two clean photographs, exactly as the runner builds one."""
        return build_view(Supervision(self.method_class.supervision), _training_images(self.channels), self.spec(),
                          NoisePolicy.FRESH, self.device, seed)

    def fitted(self, seed: int = 0) -> Method:
        method = self.make(seed)
        if method.trainable:
            method.fit(self.view(seed), TrainContext())
        return method

    def noisy_image(self) -> tuple[torch.Tensor, NoiseInfo | None]:
        """One fixed noisy test image (1, C, IMAGE_SIZE, IMAGE_SIZE) and its noise info if the method may see it."""
        clean = _test_image(self.channels).to(self.device)
        spec = self.spec()
        noisy, levels = spec.sample(clean, torch.Generator(device=self.device).manual_seed(101))
        info = NoiseInfo.from_levels(spec, levels) if self.method_class.uses_noise_level else None
        return noisy, info


def _photo(channels: int) -> np.ndarray:
    image = skimage.data.astronaut() if channels == 3 else skimage.data.camera()[:, :, None]
    return np.ascontiguousarray(image)


def _training_images(channels: int) -> list[torch.Tensor]:
    photo = to_chw(_photo(channels))
    return [photo[:, :160, :160].contiguous(), photo[:, 200:360, 200:360].contiguous()]


def _test_image(channels: int) -> torch.Tensor:
    photo = to_chw(_photo(channels))
    return photo[:, 100:100 + IMAGE_SIZE, 260:260 + IMAGE_SIZE].float().div(255).unsqueeze(0)


def _fail(setup: ConformanceSetup, message: str) -> ConformanceError:
    return ConformanceError(f"{setup.method_class.__name__}: {message}")


# --- the checks ------------------------------------------------------------------------------------


def check_declaration(setup: ConformanceSetup) -> None:
    """Name, description, citation, supervision and noise assumptions are declared and valid."""
    cls = setup.method_class
    try:
        validate_method_class(cls)
    except BenchError as exc:
        raise _fail(setup, str(exc)) from None
    if cls.name != cls.name.strip() or "," in cls.name or " " in cls.name:
        raise _fail(setup, f"name {cls.name!r} must be one word without commas (it is typed in --methods)")
    for key, default in cls.options.items():
        if not isinstance(default, (bool, int, float, str)):
            raise _fail(setup, f"option {key!r} has default {default!r}; options must be bool, int, float or str")
    if cls.input_multiple < 1:
        raise _fail(setup, f"input_multiple must be >= 1, got {cls.input_multiple}")
    reason = cls.incompatibility(setup.spec().family)
    if reason:
        raise _fail(setup, f"cannot run on the conformance noise {setup.noise!r} ({reason}); set `noise` to one it supports")


def check_denoise_keeps_shape_dtype_device(setup: ConformanceSetup) -> None:
    """``denoise`` returns a finite float32 tensor of the input's shape on the input's device."""
    method = setup.fitted()
    noisy, info = setup.noisy_image()
    estimate = method.denoise(noisy, info)
    if not isinstance(estimate, torch.Tensor):
        raise _fail(setup, f"denoise returned {type(estimate).__name__}, not a tensor")
    if estimate.shape != noisy.shape:
        raise _fail(setup, f"denoise returned shape {tuple(estimate.shape)} for input {tuple(noisy.shape)}")
    if estimate.dtype != noisy.dtype:
        raise _fail(setup, f"denoise returned {estimate.dtype} for a {noisy.dtype} input")
    if estimate.device != noisy.device:
        raise _fail(setup, f"denoise returned a tensor on {estimate.device} for an input on {noisy.device}")
    if not torch.isfinite(estimate).all():
        raise _fail(setup, "denoise returned NaN or infinite values")
    if estimate.requires_grad:
        raise _fail(setup, "denoise returned a tensor that requires grad (run inference under torch.no_grad())")


def check_batch_denoise(setup: ConformanceSetup) -> None:
    """A method declaring ``batch_denoise`` maps each image of a stacked batch as it maps the image alone (the
    evaluator batches its test inputs on a GPU)."""
    if not setup.method_class.batch_denoise:
        return
    method = setup.fitted()
    noisy, info = setup.noisy_image()
    other = noisy.flip(-1) * 0.5 + 0.25  # another image, of another brightness and contrast
    with torch.no_grad():
        alone = torch.cat([method.denoise(noisy.clone(), info), method.denoise(other.clone(), info)])
        together = method.denoise(torch.cat([noisy, other]), info)
    if together.shape != alone.shape or not torch.allclose(together, alone, atol=1e-5, rtol=0):
        raise _fail(setup, "declares batch_denoise, but the estimates of a batch of two differ from those of each "
                           "image alone; set batch_denoise = False")


def check_deterministic_under_seed(setup: ConformanceSetup) -> None:
    """The same seed gives the same estimate: set-up, training and denoising are all seeded; and a method that
    declares its results independent of the seed (``seeded = False``) gives the same estimate under another."""
    noisy, info = setup.noisy_image()
    first = setup.fitted(seed=7).denoise(noisy, info)
    second = setup.fitted(seed=7).denoise(noisy, info)
    if not torch.allclose(first, second, atol=1e-6, rtol=0):
        diff = float((first - second).abs().max())
        raise _fail(setup, f"two runs with seed 7 differ by up to {diff:.3g}; draw all randomness from seeded generators")
    if not setup.method_class.seeded:  # a run records its result of one seed under every other (unit_runner)
        other = setup.fitted(seed=8).denoise(noisy, info)
        if not torch.allclose(first, other, atol=1e-6, rtol=0):
            diff = float((first - other).abs().max())
            raise _fail(setup, f"declares seeded = False, but seeds 7 and 8 differ by up to {diff:.3g}")


def check_state_round_trip(setup: ConformanceSetup) -> None:
    """state_dict -> checkpoint file (weights only) -> load_state_dict reproduces the estimate,
    and a checkpoint of another method is refused with a BenchError."""
    trained = setup.fitted(seed=3)
    noisy, info = setup.noisy_image()
    expected = trained.denoise(noisy, info)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.pt"
        try:
            save_checkpoint(trained.state_dict(), path)
            state = load_checkpoint(path, setup.device)
        except BenchError as exc:
            raise _fail(setup, f"state_dict does not survive a weights-only checkpoint: {exc}") from None
    # A trainable method restored into a differently seeded instance must match the trained one;
    # a per-image method has no trained state, so only the seed it was built with matters.
    fresh = setup.make(seed=4 if setup.method_class.trainable else 3)
    fresh.load_state_dict(state)
    restored = fresh.denoise(noisy, info)
    if not torch.allclose(expected, restored, atol=1e-6, rtol=0):
        diff = float((expected - restored).abs().max())
        raise _fail(setup, f"after save/load the estimate differs by up to {diff:.3g}; state_dict misses some state")
    foreign = dict(state, method=f"not-{setup.method_class.name}")
    try:
        setup.make().load_state_dict(foreign)
    except BenchError:
        pass
    else:
        raise _fail(setup, "load_state_dict accepted a checkpoint of another method; call super().load_state_dict(state)")


class _SpyView(TrainingView):
    """A training view that remembers the type of every batch it handed out."""

    def __init__(self, inner: TrainingView) -> None:
        super().__init__(inner.supervision, inner.channels, inner.num_images, inner.device, self._sample_and_record,
                         inner.rng_state, inner.set_rng_state)
        self._inner = inner
        self.batch_types: list[type] = []

    def _sample_and_record(self, batch_size: int, crop_size: int) -> Batch:
        batch = self._inner.sample(batch_size, crop_size)
        self.batch_types.append(type(batch))
        return batch


def check_trains_on_declared_supervision(setup: ConformanceSetup) -> None:
    """A trainable method draws its training data from the view, and only batches of its kind."""
    cls = setup.method_class
    if not cls.trainable:
        return
    method = setup.make()
    view = _SpyView(setup.view())
    method.fit(view, TrainContext())
    if not view.batch_types:
        raise _fail(setup, "fit never sampled the training view: a trainable method must learn from it "
                           "(set trainable = False for a per-image method)")
    expected = BATCH_TYPES[Supervision(cls.supervision)]
    wrong = {t.__name__ for t in view.batch_types if t is not expected}
    if wrong:
        raise _fail(setup, f"declared supervision {Supervision(cls.supervision).value!r} but fit received {sorted(wrong)}")


CHECKS: dict[str, Callable[[ConformanceSetup], None]] = {
    "declaration": check_declaration,
    "denoise_keeps_shape_dtype_device": check_denoise_keeps_shape_dtype_device,
    "batch_denoise": check_batch_denoise,
    "deterministic_under_seed": check_deterministic_under_seed,
    "state_round_trip": check_state_round_trip,
    "trains_on_declared_supervision": check_trains_on_declared_supervision,
}


def iter_setups(method_class: type[Method], channels: tuple[int, ...] = (1, 3), **kwargs: Any) -> Iterator[ConformanceSetup]:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for c in channels:
            yield ConformanceSetup(method_class, channels=c, device=device, **kwargs)


def check_method(method_class: type[Method], channels: tuple[int, ...] = (1, 3), **kwargs: Any) -> list[str]:
    """Run every check on every supported channel count and device; returns the failures (empty: conforms).

    A check that the method makes raise (a diverging loss, a bug in ``fit`` or ``denoise``) is returned
    as a failure naming the exception, like a broken contract; the other checks still run.
    """
    failures = []
    for setup in iter_setups(method_class, channels, **kwargs):
        for name, check in CHECKS.items():
            try:
                check(setup)
            except ConformanceError as exc:
                failures.append(f"[{setup.device}, {setup.channels} channel(s)] {name}: {exc}")
            except Exception as exc:  # the method itself raised
                failures.append(f"[{setup.device}, {setup.channels} channel(s)] {name}: "
                                f"{method_class.__name__} raised {type(exc).__name__}: {exc}")
    return failures


class MethodConformance:
    """Subclass as ``Test<Something>`` in a plugin's tests and set ``method_class``."""

    method_class: ClassVar[type[Method]]
    channels: ClassVar[tuple[int, ...]] = (1, 3)
    noise: ClassVar[str] = "gaussian:sigma=25"
    options: ClassVar[dict[str, str]] = {}
    budget: ClassVar[Budget] = TINY_BUDGET

    def _each(self, name: str) -> None:
        for setup in iter_setups(self.method_class, self.channels, noise=self.noise, options=dict(self.options),
                                 budget=self.budget):
            CHECKS[name](setup)

    def test_declaration(self) -> None:
        self._each("declaration")

    def test_denoise_keeps_shape_dtype_device(self) -> None:
        self._each("denoise_keeps_shape_dtype_device")

    def test_deterministic_under_seed(self) -> None:
        self._each("deterministic_under_seed")

    def test_state_round_trip(self) -> None:
        self._each("state_round_trip")

    def test_trains_on_declared_supervision(self) -> None:
        self._each("trains_on_declared_supervision")


# --- datasets --------------------------------------------------------------------------------------


@dataclass
class DatasetSetup:
    """A dataset class and what it is built with: the data directory and ``--dataset-option`` values."""

    dataset_class: type[Dataset]
    data_dir: Path | None = None
    options: dict[str, str] = field(default_factory=dict)

    def make(self) -> Dataset:
        return self.dataset_class(self.data_dir, **self.options)


def _dataset_fail(setup: DatasetSetup, message: str) -> ConformanceError:
    return ConformanceError(f"dataset {setup.dataset_class.__name__}: {message}")


def check_dataset_declaration(setup: DatasetSetup) -> None:
    """Name (one word, typed in --dataset), description, channels and splits are declared."""
    cls = setup.dataset_class
    if not cls.name or cls.name != cls.name.strip() or "," in cls.name or " " in cls.name:
        raise _dataset_fail(setup, f"name {cls.name!r} must be one non-empty word without commas (it is typed in --dataset)")
    if not cls.description.strip():
        raise _dataset_fail(setup, "has no description (bench list shows it)")
    undeclared = sorted(set(setup.options) - set(cls.option_names))
    if undeclared:
        raise _dataset_fail(setup, f"is given option(s) {', '.join(undeclared)} that its option_names "
                                   f"{tuple(cls.option_names)} do not declare (bench run refuses undeclared options)")
    dataset = setup.make()
    if dataset.channels not in (1, 3):
        raise _dataset_fail(setup, f"channels must be 1 (gray) or 3 (colour), got {dataset.channels!r}")
    unknown = [s for s in dataset.splits if s not in (TRAIN, TEST)]
    if TEST not in dataset.splits or unknown:
        raise _dataset_fail(setup, f"splits must include {TEST!r} and name only {TRAIN!r} and {TEST!r}, got {dataset.splits}")
    training_set = dataset.training_set_id()
    if not isinstance(training_set, str) or not training_set:
        raise _dataset_fail(setup, f"training_set_id() must return a non-empty string, got {training_set!r}")


def _load_split(setup: DatasetSetup, dataset: Dataset, split: str, checked: bool = True) -> list[CleanImage]:
    """The images of ``split`` through the checked ``images`` (``checked``) or the plugin's own ``load``."""
    try:
        dataset.check(split)
        return dataset.images(split) if checked else dataset.load(split)
    except BenchError as exc:
        raise _dataset_fail(setup, f"the {split!r} split cannot be loaded: {exc}") from None


def check_dataset_images(setup: DatasetSetup) -> None:
    """Every split passes ``check`` and loads: (H, W, channels) uint8 images with unique, non-empty string ids."""
    dataset = setup.make()
    for split in dataset.splits:
        images = _load_split(setup, dataset, split)
        ids = [image.id for image in images]
        if not all(isinstance(i, str) and i for i in ids):
            raise _dataset_fail(setup, f"the {split!r} split has an empty or non-string image id: {ids}")
        # Repeated ids are refused by Dataset.images itself, at every run too.


def check_dataset_is_stable(setup: DatasetSetup) -> None:
    """Two instances load the same images, in the same order, with the same pixels."""
    for split in setup.make().splits:  # of load itself: what images() refuses is check_dataset_images' to say
        first = _load_split(setup, setup.make(), split, checked=False)
        second = _load_split(setup, setup.make(), split, checked=False)
        if [i.id for i in first] != [i.id for i in second]:
            raise _dataset_fail(setup, f"the {split!r} split lists its images in a different order on each load; "
                                       "return them in a fixed (sorted) order")
        for a, b in zip(first, second):
            if not np.array_equal(a.pixels, b.pixels):
                raise _dataset_fail(setup, f"image {a.id!r} of the {split!r} split has different pixels on each load")


def check_dataset_refuses_with_bench_error(setup: DatasetSetup) -> None:
    """An unknown split is refused with a BenchError, and ``check`` without a data directory either passes or
    raises a BenchError (a message the CLI prints), never another exception."""
    try:
        setup.make().images("no-such-split")
    except BenchError:
        pass
    else:
        raise _dataset_fail(setup, "loaded an unknown split 'no-such-split' instead of refusing it")
    try:
        dataset = setup.dataset_class(None, **setup.options)
        for split in dataset.splits:
            dataset.check(split)
    except BenchError:
        pass
    except Exception as exc:
        raise _dataset_fail(setup, f"without a data directory it raised {type(exc).__name__}: {exc}; "
                                   "raise BenchError with a message that says what is missing") from None


DATASET_CHECKS: dict[str, Callable[[DatasetSetup], None]] = {
    "declaration": check_dataset_declaration,
    "images": check_dataset_images,
    "is_stable": check_dataset_is_stable,
    "refuses_with_bench_error": check_dataset_refuses_with_bench_error,
}


def check_dataset(dataset_class: type[Dataset], data_dir: Path | None = None, **options: str) -> list[str]:
    """Run every dataset check; returns the failures (empty: conforms), a dataset that raises included."""
    return _run_checks(DATASET_CHECKS, DatasetSetup(dataset_class, data_dir, options), dataset_class.__name__)


class DatasetConformance:
    """Subclass as ``Test<Something>`` in a plugin's tests and set ``dataset_class`` (and ``data_dir`` or
    ``options`` if it needs them)."""

    dataset_class: ClassVar[type[Dataset]]
    data_dir: ClassVar[Path | None] = None
    options: ClassVar[dict[str, str]] = {}

    def _setup(self) -> DatasetSetup:
        return DatasetSetup(self.dataset_class, self.data_dir, dict(self.options))

    def test_declaration(self) -> None:
        check_dataset_declaration(self._setup())

    def test_images(self) -> None:
        check_dataset_images(self._setup())

    def test_is_stable(self) -> None:
        check_dataset_is_stable(self._setup())

    def test_refuses_with_bench_error(self) -> None:
        check_dataset_refuses_with_bench_error(self._setup())


# --- noise models ----------------------------------------------------------------------------------

NOISE_SIZE = 128  # noise is drawn on NOISE_BATCH constant images of NOISE_SIZE x NOISE_SIZE
NOISE_BATCH = 2
# A statistic passes if it is within this many standard errors (estimated from the same sample) of
# its expected value: a false alarm is then rarer than one in a million for any seed.
STANDARD_ERRORS = 6.0


@dataclass
class NoiseSetup:
    """A noise family, the specs its statistics are checked at, and the device."""

    family: NoiseFamily
    specs: tuple[str, ...] = ()  # fixed-value specs; empty: taken from the presets and the parameter ranges
    device: torch.device = torch.device("cpu")

    def level_specs(self) -> list[NoiseSpec]:
        families = {self.family.name: self.family}
        if self.specs:
            return [parse_spec(s, families) for s in self.specs]
        return [parse_spec(s, families) for s in _default_specs(self.family)]

    def draw(self, spec: NoiseSpec, value: float, seed: int) -> tuple[torch.Tensor, Levels]:
        clean = torch.full((NOISE_BATCH, 1, NOISE_SIZE, NOISE_SIZE), value, dtype=torch.float32, device=self.device)
        return spec.sample(clean, torch.Generator(device=self.device).manual_seed(seed))


def _default_specs(family: NoiseFamily) -> list[str]:
    """Fixed values at both ends of every preset range, or inside the declared ranges without presets."""
    presets = [s for s in (family.preset_train, *family.preset_tests) if s]
    if presets:
        families = {family.name: family}
        ends: list[str] = []
        for preset in presets:
            spec = parse_spec(preset, families)
            for pick in ((lambda v: v.low), (lambda v: v.high)):
                text = f"{family.name}:" + ",".join(f"{k}={pick(v)!r}" for k, v in spec.values)
                if text not in ends:
                    ends.append(text)
        return ends
    return [f"{family.name}:" + ",".join(f"{p.name}={p.minimum + (p.maximum - p.minimum) * t!r}" for p in family.params)
            for t in (0.1, 0.5)]


def _noise_fail(setup: NoiseSetup, message: str) -> ConformanceError:
    return ConformanceError(f"noise family {setup.family.name!r}: {message}")


def check_noise_declaration(setup: NoiseSetup) -> None:
    """Name, description, known properties, finite parameter ranges, presets that parse."""
    family = setup.family
    if not family.name or family.name != family.name.strip().lower() or any(c in family.name for c in ":,= "):
        raise _noise_fail(setup, "the name must be one lower-case word without ':', ',', '=' or spaces (it starts a spec)")
    if not family.description.strip():
        raise _noise_fail(setup, "has no description (bench list shows it)")
    unknown = sorted(set(family.properties) - KNOWN_PROPERTIES)
    if unknown:
        raise _noise_fail(setup, f"declares unknown properties {unknown}; known: {sorted(KNOWN_PROPERTIES)}")
    names = [p.name for p in family.params]
    if len(set(names)) != len(names):
        raise _noise_fail(setup, f"parameter names repeat: {names}")
    families = {family.name: family}
    for preset in (family.preset_train, *family.preset_tests):
        if preset is not None:
            try:
                parse_spec(preset, families)
            except BenchError as exc:
                raise _noise_fail(setup, f"preset {preset!r} does not parse: {exc}") from None
    if family.preset_tests and family.preset_train is None:
        raise _noise_fail(setup, "has test presets but no preset_train")


def check_noise_level_ranges(setup: NoiseSetup) -> None:
    """Every parameter declares a finite range, values just outside it are refused with a BenchError that
    names the parameter, and values at its ends give finite noisy images."""
    family = setup.family
    families = {family.name: family}
    for param in family.params:
        if not (math.isfinite(param.minimum) and math.isfinite(param.maximum) and param.minimum <= param.maximum):
            raise _noise_fail(setup, f"parameter {param.name!r} has range [{param.minimum}, {param.maximum}]; "
                                     "declare the finite range of values the sampler supports")
    for param in family.params:
        inside = {p.name: (p.minimum + p.maximum) / 2 for p in family.params}
        step = max(1e-6, 1e-3 * (param.maximum - param.minimum))
        for outside in (param.minimum - step, param.maximum + step) + ((param.minimum,) if param.minimum_exclusive else ()):
            text = f"{family.name}:" + ",".join(f"{k}={outside if k == param.name else v!r}" for k, v in inside.items())
            try:
                parse_spec(text, families)
            except BenchError as exc:
                if param.name not in str(exc):
                    raise _noise_fail(setup, f"the error for {text!r} does not name {param.name!r}: {exc}") from None
            else:
                raise _noise_fail(setup, f"accepted {param.name}={outside!r}, outside its declared range")
        low = param.minimum + (step if param.minimum_exclusive else 0.0)
        for end in (low, param.maximum):
            text = f"{family.name}:" + ",".join(f"{k}={end if k == param.name else v!r}" for k, v in inside.items())
            for value in (0.0, 0.5, 1.0):
                noisy, _ = setup.draw(parse_spec(text, families), value, seed=0)
                if not torch.isfinite(noisy).all():
                    raise _noise_fail(setup, f"{text} gives NaN or infinite values on a constant {value} image; "
                                             f"narrow the declared range of {param.name!r}")


def check_noise_sample_shape(setup: NoiseSetup) -> None:
    """``sample`` keeps the batch's shape, dtype and device and returns one level per image and parameter."""
    for spec in setup.level_specs():
        noisy, levels = setup.draw(spec, 0.5, seed=0)
        if noisy.shape != (NOISE_BATCH, 1, NOISE_SIZE, NOISE_SIZE) or noisy.dtype != torch.float32 \
                or noisy.device.type != setup.device.type:
            raise _noise_fail(setup, f"{spec} turned a float32 batch of shape {(NOISE_BATCH, 1, NOISE_SIZE, NOISE_SIZE)} "
                                     f"on {setup.device} into {noisy.dtype} {tuple(noisy.shape)} on {noisy.device}")
        if not torch.isfinite(noisy).all():
            raise _noise_fail(setup, f"{spec} gives NaN or infinite values on a constant 0.5 image")
        if sorted(levels) != sorted(p.name for p in setup.family.params):
            raise _noise_fail(setup, f"{spec} returned levels for {sorted(levels)}")


def check_noise_seeding(setup: NoiseSetup) -> None:
    """The same generator seed gives the same draw whatever the global RNG, and another seed another draw."""
    for spec in setup.level_specs():
        torch.manual_seed(1)
        first, _ = setup.draw(spec, 0.5, seed=11)
        torch.manual_seed(2)
        second, _ = setup.draw(spec, 0.5, seed=11)
        if not torch.equal(first, second):
            raise _noise_fail(setup, f"{spec}: two draws with generator seed 11 differ; draw all randomness from "
                                     "the generator the sampler is given, never the global RNG")
        other, _ = setup.draw(spec, 0.5, seed=12)
        if torch.equal(first, other) and not torch.equal(first, torch.full_like(first, 0.5)):
            raise _noise_fail(setup, f"{spec}: generator seeds 11 and 12 give the same draw; use the generator")


def _standard_error_of_variance(residual: torch.Tensor) -> float:
    n = residual.numel()
    centred = residual - residual.mean()
    m2, m4 = float(centred.pow(2).mean()), float(centred.pow(4).mean())
    return math.sqrt(max(m4 - m2 * m2, 0.0) / n)


def check_noise_statistics(setup: NoiseSetup) -> None:
    """On constant images, per spec and image: the empirical mean is the clean value where ZERO_MEAN is
    declared, the empirical variance is the declared ``variance``, and under SIGNAL_INDEPENDENT the
    variance is the same on a dark and a bright image. Tolerances are STANDARD_ERRORS standard errors."""
    family = setup.family
    for spec in setup.level_specs():
        variances: dict[int, list[tuple[float, float]]] = {}  # image -> (variance, its standard error) per value
        for value in (0.25, 0.75):
            noisy, levels = setup.draw(spec, value, seed=5)
            clean = torch.full_like(noisy, value)
            for b in range(noisy.shape[0]):
                residual = (noisy[b] - value).double()
                n = residual.numel()
                mean, var = float(residual.mean()), float(residual.var(unbiased=False))
                where = f"{spec} on a constant {value} image"
                if ZERO_MEAN in family.properties:
                    tolerance = STANDARD_ERRORS * math.sqrt(var / n) + 1e-6
                    if abs(mean) > tolerance:
                        raise _noise_fail(setup, f"declares {ZERO_MEAN} but {where} has mean {value + mean:.6g} "
                                                 f"(clean {value}, tolerance {tolerance:.3g})")
                if family.variance is not None:
                    declared = float(family.variance(clean[b:b + 1], {k: v[b:b + 1] for k, v in levels.items()})
                                     .double().mean())
                    tolerance = STANDARD_ERRORS * _standard_error_of_variance(residual) + 1e-6 * max(declared, 1e-6)
                    if abs(var - declared) > tolerance + 1e-9:
                        raise _noise_fail(setup, f"{where} has variance {var:.6g}, its declared variance is "
                                                 f"{declared:.6g} (tolerance {tolerance:.3g})")
                variances.setdefault(b, []).append((var, _standard_error_of_variance(residual)))
        if SIGNAL_INDEPENDENT in family.properties:
            for (dark, se_dark), (bright, se_bright) in variances.values():
                tolerance = STANDARD_ERRORS * math.hypot(se_dark, se_bright) + 1e-9
                if abs(dark - bright) > tolerance:
                    raise _noise_fail(setup, f"declares {SIGNAL_INDEPENDENT} but {spec} has variance {dark:.6g} on a "
                                             f"0.25 image and {bright:.6g} on a 0.75 image")


NOISE_CHECKS: dict[str, Callable[[NoiseSetup], None]] = {
    "declaration": check_noise_declaration,
    "level_ranges": check_noise_level_ranges,
    "sample_shape": check_noise_sample_shape,
    "seeding": check_noise_seeding,
    "statistics": check_noise_statistics,
}
# A captured family (the dataset's own noisy images) draws nothing: only its declaration is checked.
SAMPLING_CHECKS = frozenset(NOISE_CHECKS) - {"declaration"}


def _devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def check_noise_family(family: NoiseFamily, specs: tuple[str, ...] = ()) -> list[str]:
    """Run every noise check on every device; returns the failures (empty: conforms), a sampler that raises included."""
    failures = []
    for device in _devices():
        checks = {k: v for k, v in NOISE_CHECKS.items() if k not in SAMPLING_CHECKS or not family.captured}
        failures += [f"[{device}] {f}" for f in _run_checks(checks, NoiseSetup(family, specs, device), family.name)]
    return failures


def _run_checks(checks: dict[str, Callable[[Any], None]], setup: Any, subject: str) -> list[str]:
    failures = []
    for name, check in checks.items():
        try:
            check(setup)
        except ConformanceError as exc:
            failures.append(f"{name}: {exc}")
        except Exception as exc:  # the plugin itself raised
            failures.append(f"{name}: {subject} raised {type(exc).__name__}: {exc}")
    return failures


class NoiseConformance:
    """Subclass as ``Test<Something>`` in a plugin's tests and set ``family`` (a NoiseFamily); ``specs``
    (fixed-value spec strings) chooses the levels the statistics are checked at."""

    family: ClassVar[NoiseFamily]
    specs: ClassVar[tuple[str, ...]] = ()

    def _each(self, name: str) -> None:
        if name in SAMPLING_CHECKS and self.family.captured:
            return
        for device in _devices():
            NOISE_CHECKS[name](NoiseSetup(self.family, self.specs, device))

    def test_declaration(self) -> None:
        self._each("declaration")

    def test_level_ranges(self) -> None:
        self._each("level_ranges")

    def test_sample_shape(self) -> None:
        self._each("sample_shape")

    def test_seeding(self) -> None:
        self._each("seeding")

    def test_statistics(self) -> None:
        self._each("statistics")
