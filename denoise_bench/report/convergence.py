"""How far a leaderboard's trained methods are from converged, read off their learning curves: what each
still gained over the last doubling of its training. Every board states it beside its numbers, so that
a short budget's ranking is never read as where the methods end up.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# A curve that still gains this much when its steps double is still learning (the goal the cpu
# profile set itself); a smaller gain is flat, which at a short budget may be a plateau, not the end.
CONVERGED_GAIN_DB = 0.3


@dataclass(frozen=True)
class DoublingGain:
    """What one row's curve gained from step ``half`` to its last step ``last`` (the largest gain over the
    curve's test settings, averaged over seeds), in dB."""

    method: str
    half: int
    last: int
    gain: float


def doubling_gains(curves: pd.DataFrame) -> list[DoublingGain]:
    """Each row's gain over its last doubling, largest first; rows whose curve has no point at or before
    half its last step are left out (nothing to compare)."""
    if curves.empty:
        return []
    gains = []
    for method, block in curves.groupby("method", sort=True):
        last = int(block.step.max())
        earlier = block.step[block.step <= last // 2]
        if earlier.empty:
            continue
        half = int(earlier.max())
        means = block[block.step.isin([half, last])].groupby(["dataset", "test_noise", "step"]).psnr.mean().unstack("step")
        change = (means[last] - means[half]).dropna()
        if not change.empty:
            gains.append(DoublingGain(str(method), half, last, float(change.max())))
    return sorted(gains, key=lambda g: -g.gain)


def convergence_caveat(records: pd.DataFrame, curves: pd.DataFrame) -> str:
    """One sentence on how far from converged the trained rows are: who still climbs over the last doubling
    of their steps and who is flat, or that no curve measured it."""
    trained = records[records.iterations.fillna(0) > 0] if "iterations" in records else records.iloc[:0]
    if trained.empty:
        return "No method here trains: nothing to converge."
    steps = sorted({int(s) for s in trained.iterations})
    budget = f"{steps[0]} training steps" if len(steps) == 1 else f"{steps[0]} to {steps[-1]} training steps"
    gains = doubling_gains(curves)
    if not gains:
        return (f"{budget}; no learning curve was recorded over a doubling of them (runs made without --eval-every), "
                "so how far these numbers are from converged is not measured: read them as not converged.")
    climbing = [g for g in gains if g.gain >= CONVERGED_GAIN_DB]
    flat = [g for g in gains if g.gain < CONVERGED_GAIN_DB]
    spans = sorted({(g.half, g.last) for g in gains})
    span = " and ".join(f"steps {h} to {last}" for h, last in spans)
    parts = [f"{budget}. Over the last doubling ({span}; each row's largest gain over its curves' test settings)"]
    if climbing:
        parts.append("still climbing, not converged: " + ", ".join(f"{g.method} {g.gain:+.2f} dB" for g in climbing))
    if flat:
        parts.append(f"flat (under {CONVERGED_GAIN_DB} dB; at a short budget a plateau is not convergence): "
                     + ", ".join(f"{g.method} {g.gain:+.2f}" for g in flat))
    return parts[0] + " " + "; ".join(parts[1:]) + "."
