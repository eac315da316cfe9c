"""The metric contract: what a registered metric is, and the metrics of this process in order.

A metric scores one estimate against its clean image. ``compute`` receives both as the run's
evaluation protocol prepares them (``EvalProtocol.prepared``): (C, H, W) float64 tensors on the 0-255
scale, the estimate clamped and quantised as the protocol says, colour images reduced to luma under a
luma protocol. It returns one float. The protocol itself is passed too, for a metric with settings of
its own there (SSIM's window).

PSNR and SSIM are the first two metrics (``denoise_bench.metrics`` registers them, as a plugin
registers more through ``register_metrics``). They own the record columns they always had (``psnr``,
``ssim``, ``input_*``, ``floor_*``, in that order); every further metric adds its own after them, so
records, tables, curves and leaderboards of a run with only these two stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch

from denoise_bench.schema import CURVE_COLUMNS, RECORD_COLUMNS

if TYPE_CHECKING:
    from denoise_bench.protocol import EvalProtocol

BUILTIN_METRICS = ("psnr", "ssim")  # their record and curve columns are written out in schema.py


@dataclass(frozen=True)
class Metric:
    """One metric: its name (a column of records, a table file ``tables/<name>.{csv,md}``), how to compute
    it, and how tables show it."""

    name: str
    description: str
    compute: Callable[[torch.Tensor, torch.Tensor, EvalProtocol], float]  # (estimate, clean, protocol)
    higher_is_better: bool = True
    decimals: int = 2  # places tables and leaderboards round its means to

    @property
    def unit_text(self) -> str:
        """``psnr (higher is better)``: a metric as listings name it."""
        return f"{self.name} ({'higher' if self.higher_is_better else 'lower'} is better)"


def metrics() -> list[Metric]:
    """Every registered metric, PSNR and SSIM first (the registry, looked up lazily: the library sits below it)."""
    from denoise_bench.plugins import get_registry

    return list(get_registry().metrics.values())


def added_metrics() -> list[str]:
    """The names of the registered metrics beyond PSNR and SSIM, in registration order."""
    return [m.name for m in metrics() if m.name not in BUILTIN_METRICS]


def scored_metrics(rows: pd.DataFrame) -> list[Metric]:
    """The metrics tables show for ``rows`` (records or curve points): PSNR and SSIM always, a further
    one where some row has its score. A run scored before a plugin's metric was installed reads back
    with that metric's columns empty (``results``), and renders as it did before."""
    return [m for m in metrics() if m.name in BUILTIN_METRICS or (m.name in rows and rows[m.name].notna().any())]


def added_record_columns() -> list[str]:
    """The record columns of the metrics beyond PSNR and SSIM: for each, the estimate's, the noisy input's
    and the floor's score."""
    return [c for name in added_metrics() for c in (name, f"input_{name}", f"floor_{name}")]


def record_columns() -> list[str]:
    """The columns of records: ``schema.RECORD_COLUMNS`` (PSNR's and SSIM's among them), then
    :func:`added_record_columns`."""
    return RECORD_COLUMNS + added_record_columns()


def curve_columns() -> list[str]:
    """The columns of learning-curve points: ``schema.CURVE_COLUMNS``, then each further metric's mean."""
    return CURVE_COLUMNS + added_metrics()
