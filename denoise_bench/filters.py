"""Fixed smoothing filters: IDDP's blur anchor and the trivial-smoother floor of every table."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_filter(image: torch.Tensor, kernel: int) -> torch.Tensor:
    """Mean over a ``kernel`` x ``kernel`` window per channel of a (N, C, H, W) tensor, reflect-padded
    to keep the size (sides of at least ``kernel // 2 + 1`` pixels)."""
    pad = kernel // 2
    return F.avg_pool2d(F.pad(image, (pad, pad, pad, pad), mode="reflect"), kernel, stride=1)
