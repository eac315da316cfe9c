"""The built-in synthetic noise families: gaussian, poisson, speckle and poisson-gaussian.

Registered through ``register_noise_models`` exactly as a third-party noise plugin is; the contract they
fill (``NoiseFamily``, ``Param``, the properties) is ``denoise_bench.noise``. Conventions: ``sigma`` is on the
0-255 scale; Poisson is ``poisson(lam * x) / lam``; speckle is ``x + x * n`` with ``n`` uniform, zero mean
and variance ``v``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from denoise_bench.hookspecs import hookimpl
from denoise_bench.noise import (PIXEL_INDEPENDENT, SIGNAL_INDEPENDENT, SYMMETRIC, ZERO_MEAN, Levels, NoiseFamily,
                                 Param)


def _per_image(levels: Levels, name: str, like: torch.Tensor) -> torch.Tensor:
    return levels[name].to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def _gaussian(x: torch.Tensor, levels: Levels, g: torch.Generator) -> torch.Tensor:
    sigma = _per_image(levels, "sigma", x) / 255.0
    return x + sigma * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)


def _poisson_counts(x: torch.Tensor, lam: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # clamp: a clean image is in [0, 1], but resampled/interpolated inputs may dip below 0.
    return torch.poisson((lam * x).clamp_min(0), generator=g) / lam


def _poisson(x: torch.Tensor, levels: Levels, g: torch.Generator) -> torch.Tensor:
    return _poisson_counts(x, _per_image(levels, "lam", x), g)


def _speckle(x: torch.Tensor, levels: Levels, g: torch.Generator) -> torch.Tensor:
    # n ~ U(-a, a) has variance a^2 / 3, so a = sqrt(3 v).
    half_width = torch.sqrt(3.0 * _per_image(levels, "v", x))
    n = (2.0 * torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype) - 1.0) * half_width
    return x + x * n


def _poisson_gaussian(x: torch.Tensor, levels: Levels, g: torch.Generator) -> torch.Tensor:
    shot = _poisson_counts(x, _per_image(levels, "lam", x), g)
    sigma = _per_image(levels, "sigma", x) / 255.0
    return shot + sigma * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)


def _gaussian_variance(x: torch.Tensor, levels: Levels) -> torch.Tensor:
    return (_per_image(levels, "sigma", x) / 255.0) ** 2 * torch.ones_like(x)


def _poisson_variance(x: torch.Tensor, levels: Levels) -> torch.Tensor:
    return x.clamp_min(0) / _per_image(levels, "lam", x)


def _speckle_variance(x: torch.Tensor, levels: Levels) -> torch.Tensor:
    return x**2 * _per_image(levels, "v", x)


def _poisson_gaussian_variance(x: torch.Tensor, levels: Levels) -> torch.Tensor:
    return _poisson_variance(x, levels) + _gaussian_variance(x, levels)


SIGMA = Param("sigma", "standard deviation on the 0-255 scale", 0.0, 255.0)
LAM = Param("lam", "photon count at intensity 1 (higher is less noisy)", 0.0, 1e6, minimum_exclusive=True)

GAUSSIAN = NoiseFamily(
    name="gaussian",
    description="additive white Gaussian: x + sigma/255 * N(0, 1)",
    params=(SIGMA,),
    sampler=_gaussian,
    variance=_gaussian_variance,
    properties=frozenset({ZERO_MEAN, PIXEL_INDEPENDENT, SYMMETRIC, SIGNAL_INDEPENDENT}),
    preset_train="gaussian:sigma=0-50",
    preset_tests=("gaussian:sigma=25", "gaussian:sigma=0-50"),
)
POISSON = NoiseFamily(
    name="poisson",
    description="shot noise: poisson(lam * x) / lam",
    params=(LAM,),
    sampler=_poisson,
    variance=_poisson_variance,
    properties=frozenset({ZERO_MEAN, PIXEL_INDEPENDENT}),
    preset_train="poisson:lam=5-50",
    preset_tests=("poisson:lam=30", "poisson:lam=5-50"),
)
SPECKLE = NoiseFamily(
    name="speckle",
    description="multiplicative: x + x * n, n uniform with zero mean and variance v",
    params=(Param("v", "variance of the multiplicative noise", 0.0, 1.0),),
    sampler=_speckle,
    variance=_speckle_variance,
    properties=frozenset({ZERO_MEAN, PIXEL_INDEPENDENT, SYMMETRIC}),
    preset_train="speckle:v=0-0.2",
    preset_tests=("speckle:v=0.1", "speckle:v=0-0.2"),
)
POISSON_GAUSSIAN = NoiseFamily(
    name="poisson-gaussian",
    description="shot plus read noise: poisson(lam * x) / lam + sigma/255 * N(0, 1)",
    params=(LAM, SIGMA),
    sampler=_poisson_gaussian,
    variance=_poisson_gaussian_variance,
    properties=frozenset({ZERO_MEAN, PIXEL_INDEPENDENT}),
    # Not in the IDDP paper; a moderate low-light preset in the same spirit as the others.
    preset_train="poisson-gaussian:lam=5-50,sigma=0-25",
    preset_tests=("poisson-gaussian:lam=30,sigma=10", "poisson-gaussian:lam=5-50,sigma=0-25"),
)


@hookimpl
def register_noise_models(register: Callable[[NoiseFamily], None]) -> None:
    for family in (GAUSSIAN, POISSON, SPECKLE, POISSON_GAUSSIAN):
        register(family)
