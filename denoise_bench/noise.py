"""Noise models: families, spec strings, and the paper presets.

A *family* (the built-in gaussian, poisson, speckle and poisson-gaussian of ``noises/``, or one a
third-party plugin registers; ``register_noise_models``) knows how to
corrupt a clean batch given one parameter value per image. A *spec* (``gaussian:sigma=0-50``)
fixes each parameter to a value or a range; ranges draw one value per image. A *setting* is what
``--noise`` resolves to: one training spec and the test specs it is evaluated on.

Conventions (design.md): clean images are floats in [0, 1]; ``sigma`` is on the 0-255 scale;
Poisson is ``poisson(lam * x) / lam``; speckle is ``x + x * n`` with ``n`` uniform, zero mean and
variance ``v``. Noisy images are never clipped or quantised.

Sampling is a pure function of (clean batch, torch generator) and runs on whatever device the
batch lives on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from denoise_bench.errors import BenchError, unknown_name

# Statistical properties a family can declare and a method can require.
ZERO_MEAN = "zero-mean"  # E[y | x] = x, so a noisy target is an unbiased clean target
PIXEL_INDEPENDENT = "pixel-independent"  # noise independent across pixels given x
SYMMETRIC = "symmetric"  # y - x symmetric about 0 given x (sign flips keep its law)
SIGNAL_INDEPENDENT = "signal-independent"  # noise law does not depend on x
KNOWN_PROPERTIES = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT, SYMMETRIC, SIGNAL_INDEPENDENT})

Levels = dict[str, torch.Tensor]  # parameter name -> one value per image, shape (B,)
Sampler = Callable[[torch.Tensor, Levels, torch.Generator], torch.Tensor]
# The variance of y given x for each pixel, shape like x: what ``denoise_bench.testing`` checks samples against.
Variance = Callable[[torch.Tensor, Levels], torch.Tensor]


@dataclass(frozen=True)
class Param:
    """One parameter of a family, with the closed interval of values that make sense."""

    name: str
    description: str
    minimum: float
    maximum: float
    minimum_exclusive: bool = False  # e.g. lam must be > 0

    def check(self, value: float, spec: str) -> None:
        low_ok = value > self.minimum if self.minimum_exclusive else value >= self.minimum
        if not (math.isfinite(value) and low_ok and value <= self.maximum):
            bracket = "(" if self.minimum_exclusive else "["
            raise BenchError(
                f"noise spec {spec!r}: {self.name}={value:g} is out of range "
                f"{bracket}{self.minimum:g}, {self.maximum:g}]"
            )


@dataclass(frozen=True)
class NoiseFamily:
    """A registered noise family. Plugins create one and pass it to ``register``."""

    name: str
    description: str
    params: tuple[Param, ...]
    sampler: Sampler
    properties: frozenset[str]
    # The paper protocol for ``--noise <family>``: one training spec, then the test specs.
    preset_train: str | None = None
    preset_tests: tuple[str, ...] = ()
    # True for noise that cannot be drawn onto clean images: the noisy images are the dataset's own
    # captures (``denoise_bench.real_noise``), so the runner trains and tests on those instead.
    captured: bool = False
    # Var[y | x] per pixel in closed form, where the family knows it (None: not declared, not checked).
    variance: Variance | None = None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class ParamValue:
    """A fixed value (low == high) or a uniform range [low, high] drawn once per image."""

    low: float
    high: float

    @property
    def is_range(self) -> bool:
        return self.high > self.low

    def __str__(self) -> str:
        # repr() is the shortest text that parses back to the same float; drop a trailing ".0".
        def text(x: float) -> str:
            r = repr(float(x))
            return r[:-2] if r.endswith(".0") else r

        return f"{text(self.low)}-{text(self.high)}" if self.is_range else text(self.low)


@dataclass(frozen=True)
class NoiseSpec:
    """A family with every parameter fixed to a value or a range."""

    family: NoiseFamily = field(compare=False, hash=False, repr=False)
    values: tuple[tuple[str, ParamValue], ...]

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def is_range(self) -> bool:
        return any(v.is_range for _, v in self.values)

    def __str__(self) -> str:
        if not self.values:  # a family without parameters, e.g. the dataset's own "real" noise
            return self.family.name
        return f"{self.family.name}:" + ",".join(f"{k}={v}" for k, v in self.values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoiseSpec) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def draw_levels(self, batch: int, generator: torch.Generator, device: torch.device) -> Levels:
        """One value per image for each parameter; fixed values are broadcast."""
        levels: Levels = {}
        for name, value in self.values:
            u = torch.rand(batch, generator=generator, device=device, dtype=torch.float64)
            levels[name] = (value.low + (value.high - value.low) * u).to(torch.float32)
        return levels

    def sample(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, Levels]:
        """Corrupt a (B, C, H, W) batch in [0, 1]; returns the noisy batch and per-image levels."""
        if clean.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(clean.shape)}")
        levels = self.draw_levels(clean.shape[0], generator, clean.device)
        return self.family.sampler(clean, levels, generator), levels


@dataclass(frozen=True)
class NoiseSetting:
    """What ``--noise`` means: train on one spec, evaluate on each test spec."""

    label: str
    train: NoiseSpec
    tests: tuple[NoiseSpec, ...]

    @property
    def family(self) -> NoiseFamily:
        return self.train.family


_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
# A value or a range LOW-HIGH; a leading minus is accepted so that "-3" is reported as out of range.
_VALUE_RE = re.compile(rf"^\s*(-?{_NUMBER})\s*(?:-\s*(-?{_NUMBER})\s*)?$")


def parse_spec(spec: str, families: Mapping[str, NoiseFamily]) -> NoiseSpec:
    """Parse ``family:key=value[,key=value...]`` where a value is ``x`` or ``low-high``."""
    text = spec.strip()
    family_name, sep, body = text.partition(":")
    family_name = family_name.strip().lower()
    if family_name not in families:
        raise BenchError(f"noise spec {spec!r}: {unknown_name('noise family', family_name, families, 'noise families')}")
    family = families[family_name]
    if not family.params:
        if body.strip():
            raise BenchError(f"noise spec {spec!r}: {family_name} takes no parameters")
        return NoiseSpec(family, ())
    if not sep or not body.strip():
        raise BenchError(
            f"noise spec {spec!r}: expected {family_name}:"
            + ",".join(f"{p.name}=VALUE" for p in family.params)
            + " (a VALUE is a number or a range LOW-HIGH)"
        )
    given: dict[str, ParamValue] = {}
    for item in body.split(","):
        key, eq, raw = item.partition("=")
        key = key.strip().lower()
        if not eq:
            raise BenchError(f"noise spec {spec!r}: {item.strip()!r} is not of the form key=value")
        try:
            param = family.param(key)
        except KeyError:
            error = unknown_name(f"{family_name} parameter", key, (p.name for p in family.params))
            raise BenchError(f"noise spec {spec!r}: {error}") from None
        if key in given:
            raise BenchError(f"noise spec {spec!r}: parameter {key!r} given twice")
        match = _VALUE_RE.match(raw)
        if not match:
            raise BenchError(f"noise spec {spec!r}: {key}={raw.strip()!r} is not a number or a range LOW-HIGH")
        low = float(match.group(1))
        high = float(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise BenchError(f"noise spec {spec!r}: range {key}={raw.strip()} has its high end below its low end")
        param.check(low, spec)
        param.check(high, spec)
        given[key] = ParamValue(low, high)
    missing = [p.name for p in family.params if p.name not in given]
    if missing:
        raise BenchError(f"noise spec {spec!r}: missing parameter(s) {', '.join(missing)}")
    return NoiseSpec(family, tuple((p.name, given[p.name]) for p in family.params))


def split_noise_list(text: str) -> list[str]:
    """``gaussian,poisson:lam=30`` -> ``["gaussian", "poisson:lam=30"]``.

    Commas also separate a spec's parameters, so a piece of the form ``key=value`` (no family name)
    continues the spec before it: ``poisson-gaussian:lam=30,sigma=10,gaussian`` is two settings.
    """
    items: list[str] = []
    for piece in (part.strip() for part in text.split(",")):
        if not piece:
            continue
        if items and "=" in piece and ":" not in piece and ":" in items[-1]:
            items[-1] += f",{piece}"
        else:
            items.append(piece)
    return items


def resolve_setting(text: str, families: Mapping[str, NoiseFamily]) -> NoiseSetting:
    """A family name alone gives its paper preset; a full spec trains and tests on itself."""
    name = text.strip().lower()
    if ":" not in name:
        if name not in families:
            raise BenchError(f"{unknown_name('noise', name, families, 'noise families')} (or a spec like gaussian:sigma=25)")
        family = families[name]
        if family.preset_train is None:
            raise BenchError(f"noise family {name!r} has no preset; give a full spec such as {name}:" + ",".join(f"{p.name}=..." for p in family.params))
        train = parse_spec(family.preset_train, families)
        tests = tuple(parse_spec(t, families) for t in family.preset_tests) or (train,)
        return NoiseSetting(name, train, tests)
    spec = parse_spec(text, families)
    return NoiseSetting(str(spec), spec, (spec,))


def retested(settings: Sequence[NoiseSetting], texts: Sequence[str], families: Mapping[str, NoiseFamily]) -> list[NoiseSetting]:
    """``settings`` tested on ``texts`` (families, for their preset tests, or specs) instead of their own tests:
    each setting on those of its family. A setting that none of them tests is an error."""
    tests = [t for text in texts for t in resolve_setting(text, families).tests]
    out = []
    for setting in settings:
        own = tuple(t for t in tests if t.family.name == setting.family.name)
        if not own:
            raise BenchError(f"no test noise for the models trained on {setting.train} among {', '.join(texts)}")
        out.append(NoiseSetting(setting.label, setting.train, own))
    return out


# The built-in families moved to the ``noises/`` plugin folder (``denoise_bench.noises.synthetic``); code
# that imported them from here keeps working, loaded on first use so that this contract module never
# imports a plugin when it is itself imported.
_MOVED = {"GAUSSIAN", "POISSON", "SPECKLE", "POISSON_GAUSSIAN", "SIGMA", "LAM"}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module("denoise_bench.noises.synthetic"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
