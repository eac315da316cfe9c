"""Whether a trained row has converged, read off its learning curve: what it still gained over the last
doubling of its training steps. This module holds the suite's one definition of "converged"; every
board, page and caveat that says how far a row is from converged reads it from here, so that the word
means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from denoise_bench.divergence import divergences, with_input_psnr

# Converged: the curve gains at most this much (PSNR, dB) from half its steps to its last step, on every
# curve it has (each dataset and test setting). 0.05 dB is a tenth of the smallest gap the boards'
# paired intervals usually resolve between neighbouring rows (about 0.5 dB on 8 curve images), so a row
# within it would not change its place by training twice as long. A curve that falls over its last
# doubling has stopped climbing too: it counts as converged, and is said to be falling.
CONVERGED_GAIN_DB = 0.05
DEFINITION = (f"converged: gains at most {CONVERGED_GAIN_DB} dB of PSNR over the last doubling of its training steps "
              "(from the last curve point at or before half its steps to its last), the largest gain over its curves")


@dataclass(frozen=True)
class DoublingGain:
    """What one row's curve gained from step ``half`` to its last step ``last`` (the largest gain over the
    curve's datasets and test settings, averaged over seeds), in dB."""

    method: str
    half: int
    last: int
    gain: float

    @property
    def converged(self) -> bool:
        # Judged on the gain as shown (two decimals), so that a row shown at +0.05 never reads "not converged".
        return round(self.gain, 2) <= CONVERGED_GAIN_DB

    @property
    def status(self) -> str:
        """``converged``, ``falling`` (converged, and lost more than the threshold) or ``not converged``."""
        if not self.converged:
            return "not converged"
        return "falling" if round(self.gain, 2) < -CONVERGED_GAIN_DB else "converged"

    def cell(self) -> str:
        """The board's convergence cell, e.g. ``+0.02 converged (3000-6000)``."""
        return f"{self.gain:+.2f} {self.status} ({self.half}-{self.last})"


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


def gains_by_method(curves: pd.DataFrame) -> dict[str, DoublingGain]:
    """:func:`doubling_gains` keyed by the curves' method (experiment) name."""
    return {g.method: g for g in doubling_gains(curves)}


def convergence_caveat(records: pd.DataFrame, curves: pd.DataFrame) -> str:
    """One sentence on how far from converged the trained rows are: who still climbs over the last doubling
    of their steps and who has converged, or that no curve measured it."""
    trained = records[records.iterations.fillna(0) > 0] if "iterations" in records else records.iloc[:0]
    if trained.empty:
        return "No method here trains: nothing to converge."
    steps = sorted({int(s) for s in trained.iterations})
    budget = f"{steps[0]} training steps" if len(steps) == 1 else f"{steps[0]} to {steps[-1]} training steps"
    trained_rows = set(trained.method)
    gains = [g for g in doubling_gains(curves) if g.method in trained_rows]
    if not gains:
        return (f"{budget}; no learning curve was recorded over a doubling of them (runs made without --eval-every), "
                "so how far these numbers are from converged is not measured: read them as not converged.")
    diverged = {m: d for m, d in divergences(with_input_psnr(curves, records)).items() if m in trained_rows}
    gains = [g for g in gains if g.method not in diverged]
    climbing = [g for g in gains if not g.converged]
    converged = [g for g in gains if g.status == "converged"]
    falling = [g for g in gains if g.status == "falling"]
    unmeasured = sorted(trained_rows - {g.method for g in gains} - set(diverged))
    spans = sorted({(g.half, g.last) for g in gains})
    span = " and ".join(f"steps {h} to {last}" for h, last in spans)
    parts = [f"{budget}. Over the last doubling ({span}; each row's largest gain over its curves' test settings)"]
    if climbing:
        parts.append("still climbing, not converged: " + ", ".join(f"{g.method} {g.gain:+.2f} dB" for g in climbing))
    if converged:
        parts.append(f"converged (at most {CONVERGED_GAIN_DB} dB): " + ", ".join(f"{g.method} {g.gain:+.2f}" for g in converged))
    if falling:
        parts.append("falling (stopped climbing, and lost ground): " + ", ".join(f"{g.method} {g.gain:+.2f} dB" for g in falling))
    if diverged:
        parts.append("diverged (fell below the noisy input after having been above it): "
                     + ", ".join(f"{m} at step {diverged[m].step}" for m in sorted(diverged)))
    if unmeasured:
        parts.append("no curve, not measured: " + ", ".join(unmeasured))
    verdict = "Every trained row has converged." if not climbing and not unmeasured and not diverged else ""
    return parts[0] + " " + "; ".join(parts[1:]) + "." + (" " + verdict if verdict else "")
