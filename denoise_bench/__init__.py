"""denoise-bench: a pluggable benchmark suite for self-supervised image denoising."""

from denoise_bench.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
