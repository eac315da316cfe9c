"""Learning-rate schedules as a multiplier of the base rate, given training progress t in [0, 1).

Official codes define schedules in epochs or iterations of a fixed-length run; expressing them in
progress keeps their shape when a profile scales the run up or down.
"""

from __future__ import annotations

import math


def constant(t: float) -> float:
    return 1.0


def constant_then_linear_decay(t: float, constant_fraction: float = 0.5) -> float:
    """IDDP: constant for the first half (1M of 2M iterations), then linearly to zero."""
    if t < constant_fraction:
        return 1.0
    return max(0.0, (1.0 - t) / (1.0 - constant_fraction))


def halve_every_fifth(t: float) -> float:
    """Neighbor2Neighbor / Blind2Unblind: x0.5 after epochs 20, 40, 60, 80 of 100."""
    return 0.5 ** min(4, int(t * 5 + 1e-9))


def cosine_squared_rampdown(t: float, rampdown_fraction: float = 0.3) -> float:
    """Noise2Noise: constant, then (0.5 + 0.5 cos(pi s))^2 over the last 30 % of training."""
    start = 1.0 - rampdown_fraction
    if t < start:
        return 1.0
    s = (t - start) / rampdown_fraction
    return (0.5 + 0.5 * math.cos(math.pi * s)) ** 2


def warmup_cosine(t: float, warmup_fraction: float) -> float:
    """The short-budget rule (``lr_rule="warmup-cosine"``): linear warm-up over the first
    ``warmup_fraction`` of training, then a cosine decay to zero at t = 1."""
    if t < warmup_fraction:
        return (t + 1e-12) / warmup_fraction
    s = (t - warmup_fraction) / max(1e-12, 1.0 - warmup_fraction)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, s)))


# Loss-weight schedules. Neighbor2Neighbor and Blind2Unblind change a loss weight once per epoch as a
# function of ``epoch / n_epoch`` of a 100-epoch run, with epochs counted from 1.

def epoch_fraction(t: float, epochs: int = 100) -> float:
    """``epoch / epochs`` at progress ``t``, where ``t`` in [k/epochs, (k+1)/epochs) is epoch k + 1.

    1/epochs during the first epoch and exactly 1 during the last, as the official loops compute it.
    """
    return min(epochs, int(t * epochs + 1e-9) + 1) / epochs


def constant_then_linear_ramp(t: float, start: float, end: float, ramp_from: float) -> float:
    """``start`` while ``t <= ramp_from``, then linearly to ``end`` at ``t = 1`` (Blind2Unblind's lambda)."""
    if t <= ramp_from:
        return start
    return start + (t - ramp_from) * (end - start) / (1.0 - ramp_from)
