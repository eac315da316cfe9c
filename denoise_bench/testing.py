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

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import skimage.data
import torch

from denoise_bench.checkpoints import load_checkpoint, save_checkpoint
from denoise_bench.errors import BenchError
from denoise_bench.images import to_chw
from denoise_bench.method import Method, MethodSetup, NoiseInfo, TrainContext, validate_method_class
from denoise_bench.noise import NoiseSpec, parse_spec
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

    def make(self, seed: int = 0) -> Method:
        setup = MethodSetup(channels=self.channels, budget=self.budget, device=self.device, seed=seed, options=self.options)
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


def check_deterministic_under_seed(setup: ConformanceSetup) -> None:
    """The same seed gives the same estimate: set-up, training and denoising are all seeded."""
    noisy, info = setup.noisy_image()
    first = setup.fitted(seed=7).denoise(noisy, info)
    second = setup.fitted(seed=7).denoise(noisy, info)
    if not torch.allclose(first, second, atol=1e-6, rtol=0):
        diff = float((first - second).abs().max())
        raise _fail(setup, f"two runs with seed 7 differ by up to {diff:.3g}; draw all randomness from seeded generators")


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
