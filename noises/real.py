"""The ``real`` noise family: a dataset's own noisy captures (FMD) rather than noise drawn onto clean images.

It is ``captured``, so the runner trains and tests on the dataset's captures through
``denoise_bench.real_noise`` (the scenes, views and test cases any captured family uses) and never samples
it. It declares zero-mean, pixel-independent noise: true of the shot and read noise of fluorescence
microscopes (FMD is Poisson-Gaussian); see ``denoise_bench.real_noise`` for what that excludes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN, Levels, NoiseFamily


def _cannot_sample(clean: torch.Tensor, levels: Levels, generator: torch.Generator) -> torch.Tensor:
    raise BenchError("noise 'real' cannot be synthesised: it is the dataset's own captures (use a dataset such as fmd)")


REAL = NoiseFamily(
    name="real",
    description="the dataset's own noisy captures, e.g. FMD's microscope images (no synthetic noise)",
    params=(),
    sampler=_cannot_sample,
    properties=frozenset({ZERO_MEAN, PIXEL_INDEPENDENT}),
    preset_train="real",
    preset_tests=("real",),
    captured=True,
)


@hookimpl
def register_noise_models(register: Callable[[NoiseFamily], None]) -> None:
    register(REAL)
