"""The metric contract: what a registered metric is (``registered_metrics`` lists those of this process).

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

import torch

if TYPE_CHECKING:
    from denoise_bench.protocol import EvalProtocol

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
