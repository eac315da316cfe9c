"""denoise-bench: a pluggable benchmark suite for self-supervised image denoising.

The Python API (imported on first use, so that ``import denoise_bench`` stays light for plugins):
``run_benchmark`` and ``Benchmark`` (denoise_bench.api), ``load_trained`` and ``TrainedDenoiser``
(denoise_bench.models.trained).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from denoise_bench.hookspecs import hookimpl

if TYPE_CHECKING:
    from denoise_bench.api import Benchmark, run_benchmark
    from denoise_bench.models.trained import TrainedDenoiser, load_trained

__version__ = "0.1.0"
__all__ = ["Benchmark", "TrainedDenoiser", "hookimpl", "load_trained", "run_benchmark", "__version__"]

_LAZY = {"run_benchmark": "denoise_bench.api", "Benchmark": "denoise_bench.api",
         "load_trained": "denoise_bench.models.trained", "TrainedDenoiser": "denoise_bench.models.trained"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'denoise_bench' has no attribute {name!r}")
