"""BM3D / CBM3D (Dabov et al., TIP 2007) through the ``bm3d`` package (Makinen, Azzari, Foi).

Per image, no training, and it is told the true noise level of each image (oracle), which the tables
mark. Colour images use ``bm3d_rgb`` (CBM3D in the opponent colour space), gray ``bm3d``.

* Gaussian: BM3D with sigma/255 on the [0, 1] image.
* Poisson: Anscombe transform of the counts ``lam * y``, BM3D with unit noise, then the closed-form
  approximation of the exact unbiased inverse (Makitalo & Foi, TIP 2011), not the biased algebraic one.
* Speckle: homomorphic filtering. ``log y = log x + log(1 + n)``; the log-domain noise has a known
  mean and standard deviation for ``n ~ U(-a, a)``, which are removed / passed to BM3D, then ``exp``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import bm3d
import numpy as np
import torch
from typing_extensions import override

from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.images import to_chw
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.noise import NoiseFamily
from denoise_bench.supervision import Supervision

LOG_FLOOR = 1.0 / 255.0  # speckle: y = x (1 + n) is 0 where x is 0; log needs a floor


def _single_threaded_profile() -> bm3d.BM3DProfile:
    """The package's normal profile on one thread: its multi-threaded block matching gives results
    that differ from run to run by up to ~2e-4 (measured on 64x64 crops), which breaks reruns."""
    profile = bm3d.BM3DProfile()
    profile.num_threads = 1
    return profile


def _bm3d(z: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D on an (H, W, C) float64 array with white noise of std ``sigma`` (in z's units)."""
    profile = _single_threaded_profile()
    block = max(profile.bs_ht, profile.bs_wiener)
    h, w = z.shape[:2]
    # The package raises a ValueError on a side under one block, and crashes the process (SIGSEGV)
    # on an image of exactly one block.
    if min(h, w) < block or (h, w) == (block, block):
        raise BenchError(f"bm3d: a {h}x{w} image is too small; it needs sides of at least {block} pixels and "
                         f"more than one {block}x{block} block")
    if z.shape[2] == 3:
        return bm3d.bm3d_rgb(z, sigma, profile=profile)
    return bm3d.bm3d(z[:, :, 0], sigma, profile=profile)[:, :, None]


def anscombe(counts: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(np.maximum(counts, 0.0) + 3.0 / 8.0)


def inverse_anscombe_unbiased(d: np.ndarray) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse Anscombe transform."""
    # Below 2*sqrt(3/8) (the transform of a zero count) the mean is 0, as in the reference code.
    floor = 2.0 * math.sqrt(3.0 / 8.0)
    safe = np.maximum(d, floor)
    s = math.sqrt(1.5)
    mu = safe**2 / 4 + 0.25 * s / safe - 11.0 / 8.0 / safe**2 + 5.0 / 8.0 * s / safe**3 - 1.0 / 8.0
    return np.where(d < floor, 0.0, np.maximum(mu, 0.0))


def log_uniform_moments(v: float) -> tuple[float, float]:
    """Mean and std of log(1 + n) for n ~ U(-a, a), a = sqrt(3 v), by exact integration."""
    a = math.sqrt(3.0 * v)
    if a < 1e-6:
        return 0.0, 0.0
    if a >= 1.0:
        raise BenchError(f"bm3d: speckle variance v={v:g} makes 1 + n reach 0; homomorphic filtering needs v < 1/3")

    def antiderivative(t: float, power: int) -> float:
        u = 1.0 + t
        lg = math.log(u)
        return u * lg - u if power == 1 else u * (lg * lg - 2 * lg + 2)

    mean = (antiderivative(a, 1) - antiderivative(-a, 1)) / (2 * a)
    second = (antiderivative(a, 2) - antiderivative(-a, 2)) / (2 * a)
    return mean, math.sqrt(max(second - mean * mean, 0.0))


def _gaussian(y: np.ndarray, levels: dict[str, float]) -> np.ndarray:
    return _bm3d(y, levels["sigma"] / 255.0)


def _poisson(y: np.ndarray, levels: dict[str, float]) -> np.ndarray:
    lam = levels["lam"]
    stabilised = anscombe(lam * y)
    return inverse_anscombe_unbiased(_bm3d(stabilised, 1.0)) / lam


def _speckle(y: np.ndarray, levels: dict[str, float]) -> np.ndarray:
    mean, std = log_uniform_moments(levels["v"])
    log_y = np.log(np.maximum(y, LOG_FLOOR)) - mean
    return np.exp(_bm3d(log_y, std)) if std > 0 else y


HANDLERS: dict[str, Callable[[np.ndarray, dict[str, float]], np.ndarray]] = {
    "gaussian": _gaussian,
    "poisson": _poisson,
    "speckle": _speckle,
}


class BM3D(Method):
    name = "bm3d"
    description = "BM3D/CBM3D with the true noise level (Anscombe for Poisson, homomorphic for speckle)"
    citation = "Dabov et al., Image Denoising by Sparse 3-D Transform-Domain Collaborative Filtering, TIP 2007"
    supervision = Supervision.NONE
    uses_noise_level = True
    trainable = False
    seeded = False  # single-threaded (see _single_threaded_profile), so one result for every seed

    @override
    @classmethod
    def incompatibility(cls, family: NoiseFamily) -> str | None:
        if family.name not in HANDLERS:
            return f"bm3d has no variance-stabilising treatment for {family.name} noise (supports {', '.join(HANDLERS)})"
        return None

    @override
    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        if noise is None:
            raise BenchError("bm3d needs the noise level of each image")
        y = noisy[0].permute(1, 2, 0).double().cpu().numpy()
        estimate = HANDLERS[noise.spec.name](y, noise.levels)
        return to_chw(estimate)[None].to(noisy)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(BM3D)
