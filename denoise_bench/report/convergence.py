"""Whether a trained row has converged: what it still gains when its training steps are doubled. This
module holds the suite's one definition of "converged"; every board, page and caveat that says how far a
row is from converged reads it from here, so that the word means the same thing everywhere.

Two measurements of the same thing, the first preferred:

* **a doubling control**: the row beside the same experiment trained for half its steps (on a board that
  merges both runs): each run's final scores, so each schedule has annealed, on their common images;
* **the row's own curve**: its point at (or before) half its steps against its last. Under a decaying rate
  the midpoint has not annealed, so the two need not agree; measured on the small profile's width-8 U-Net
  (results/convergence-probe, 8 images per setting) they agreed to about 0.1 dB: from 12,000 to 24,000 steps
  the curve gained 0.31-0.59 dB and the pair of runs 0.29-0.65, from 24,000 to 48,000 -0.08-0.26 and
  -0.15-0.22.

A row's gain is the mean over its datasets and test settings (its "cells"), not the largest: two runs of
one network differ cell by cell by their trajectories (one a little better at one noise level, worse at
another), by more than the threshold, so the largest cell measures that swing rather than climbing.
Measured on the small profile's width-8 U-Net, paired on every BSD68 and Set12 image: from 24,000 to 48,000
steps the cells moved -0.14, +0.04, -0.12 and +0.21 dB, a mean of -0.00; from 12,000 to 24,000 they all
climbed, +0.26 to +0.51, a mean of +0.38. The board shows the cells' range beside the mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pandas as pd

from denoise_bench.divergence import divergences, with_input_psnr
from denoise_bench.experiment import Experiment

# Converged: the row gains at most this much (PSNR, dB) from half its steps to its last step, on the mean
# of its cells (each dataset and test setting; the module docstring says why not the largest). 0.05 dB is a
# tenth of the smallest gap the boards' paired intervals usually resolve between neighbouring rows (about
# 0.5 dB on 8 curve images), so a row within it would not change its place by training twice as long. A
# curve that falls over its last doubling has stopped climbing too: it counts as converged, and is said to
# be falling.
CONVERGED_GAIN_DB = 0.05
DEFINITION = (f"converged: gains at most {CONVERGED_GAIN_DB} dB of PSNR when its training steps are doubled, the mean "
              "gain over its datasets and test settings (their range in brackets): against the same experiment "
              "trained for half the steps where the board has it (each run's final scores, marked 'runs'), else from "
              "its own curve (the last point at or before half its steps to its last, marked 'curve', whose midpoint "
              "has not annealed under a decaying rate)")
CURVE, RUNS = "curve", "runs"  # what measured a gain


@dataclass(frozen=True)
class DoublingGain:
    """What one row gained from step ``half`` to its last step ``last``, in dB: ``gain`` the mean over its
    cells (datasets and test settings, each averaged over images and seeds), ``low`` and ``high`` the cells'
    range (the gain itself where not given)."""

    method: str
    half: int
    last: int
    gain: float
    source: str = CURVE  # CURVE or RUNS
    low: float | None = None
    high: float | None = None

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
        """The board's convergence cell, e.g. ``+0.02 converged (3000-6000, curve; cells -0.10 to +0.12)``."""
        spread = "" if self.low is None or self.high is None or round(self.low, 2) == round(self.high, 2) \
            else f"; cells {self.low:+.2f} to {self.high:+.2f}"
        return f"{self.gain:+.2f} {self.status} ({self.half}-{self.last}, {self.source}{spread})"


def _gain(method: str, half: int, last: int, change: pd.Series, source: str) -> DoublingGain:
    """The row's gain from its cells' changes: their mean, with their range."""
    return DoublingGain(method, half, last, float(change.mean()), source, float(change.min()), float(change.max()))


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
            gains.append(_gain(str(method), half, last, change, CURVE))
    return sorted(gains, key=lambda g: -g.gain)


def control_gains(records: pd.DataFrame) -> list[DoublingGain]:
    """Each row's gain over the same experiment trained for half its steps, where the records hold both
    (the leaderboard's named records: ``method`` the row, ``experiment`` its key): the mean, over the datasets
    and test settings, of the mean PSNR difference on their common images, each run's seeds averaged. Which
    test images a run scored (``test_images``) does not make another experiment here: the pairing does."""
    if records.empty or "experiment" not in records:
        return []
    rows = records.drop_duplicates("experiment").set_index("experiment").method
    by_identity = {_without_steps(key): key for key in rows.index}  # the steps are in the identity
    gains = []
    for key, row in rows.items():
        steps = _steps(key)
        half = by_identity.get(_without_steps(key, steps // 2)) if steps and steps % 2 == 0 else None
        if half is None:
            continue
        # Each run's seeds averaged first, then paired on images: seeds of two budgets need not be the same
        # (a second seed of the half run measures how far two seeds of one budget lie apart).
        pair = ["dataset", "test_noise", "image", "repeat"]
        mine, theirs = (records[records.experiment == k].groupby(pair, as_index=False).psnr.mean() for k in (key, half))
        joined = mine.merge(theirs, on=pair, suffixes=("", "_half"))
        if joined.empty:
            continue
        change = joined.groupby(["dataset", "test_noise"]).apply(lambda b: (b.psnr - b.psnr_half).mean(), include_groups=False)
        gains.append(_gain(str(row), steps // 2, steps, change, RUNS))
    return gains


def _budget(key: str) -> dict:
    """The experiment's budget (empty where records made in memory name none)."""
    try:
        budget = json.loads(Experiment.from_key(key).budget)
    except (ValueError, TypeError):
        return {}
    return budget if isinstance(budget, dict) else {}


def _steps(key: str) -> int:
    return int(_budget(key).get("iterations") or 0)


def _without_steps(key: str, steps: int | None = None) -> str:
    """The experiment's key with its budget's steps set to ``steps`` (None: its own) and which test images
    were scored left out: two runs that differ only in those are one experiment at two budgets."""
    experiment = Experiment.from_key(key)
    budget = _budget(key)
    budget = {k: v for k, v in budget.items() if k != "test_images"} | {"iterations": steps or budget.get("iterations")}
    return replace(experiment, budget=json.dumps(budget, sort_keys=True)).key


def gains_by_method(curves: pd.DataFrame | None, records: pd.DataFrame | None = None,
                    controls: pd.DataFrame | None = None) -> dict[str, DoublingGain]:
    """Each row's gain over its last doubling keyed by its (experiment) name: from its doubling control where
    ``records`` (or ``controls``: named records of runs that measure, not ranked) hold one
    (:func:`control_gains`), else from its curve (:func:`doubling_gains`)."""
    curve = {g.method: g for g in doubling_gains(curves)} if curves is not None else {}
    if records is None:
        return curve
    rows = set(records.method)
    measured = records if controls is None or controls.empty else pd.concat([records, controls], ignore_index=True)
    runs = {g.method: g for g in control_gains(measured) if g.method in rows}
    return curve | runs


def convergence_caveat(records: pd.DataFrame, curves: pd.DataFrame, controls: pd.DataFrame | None = None) -> str:
    """One sentence on how far from converged the trained rows are: who still climbs over the last doubling
    of their steps and who has converged, or that no curve measured it."""
    trained = records[records.iterations.fillna(0) > 0] if "iterations" in records else records.iloc[:0]
    if trained.empty:
        return "No method here trains: nothing to converge."
    steps = sorted({int(s) for s in trained.iterations})
    budget = f"{steps[0]} training steps" if len(steps) == 1 else f"{steps[0]} to {steps[-1]} training steps"
    trained_rows = set(trained.method)
    gains = [g for g in gains_by_method(curves, records, controls).values() if g.method in trained_rows]
    if not gains:
        return (f"{budget}; no learning curve was recorded over a doubling of them (runs made without --eval-every) and no "
                "run of half the steps is beside them, so how far these numbers are from converged is not measured: read "
                "them as not converged.")
    diverged = {m: d for m, d in divergences(with_input_psnr(curves, records)).items() if m in trained_rows}
    gains = [g for g in gains if g.method not in diverged]
    climbing = [g for g in gains if not g.converged]
    converged = [g for g in gains if g.status == "converged"]
    falling = [g for g in gains if g.status == "falling"]
    unmeasured = sorted(trained_rows - {g.method for g in gains} - set(diverged))
    spans = sorted({(g.half, g.last) for g in gains})
    span = " and ".join(f"steps {h} to {last}" for h, last in spans)
    parts = [f"{budget}. Over the last doubling ({span}; each row's mean gain over its datasets and test settings)"]
    if climbing:
        parts.append("still climbing, not converged: " + ", ".join(f"{g.method} {g.gain:+.2f} dB" for g in climbing))
    if converged:
        parts.append(f"converged (at most {CONVERGED_GAIN_DB} dB): " + ", ".join(f"{g.method} {g.gain:+.2f}" for g in converged))
    if falling:
        parts.append("falling (stopped climbing, and lost ground): " + ", ".join(f"{g.method} {g.gain:+.2f} dB" for g in falling))
    fell = sorted(m for m, d in diverged.items() if not d.collapsed)
    collapsed = sorted(m for m, d in diverged.items() if d.collapsed)
    if fell:
        parts.append("diverged (fell below the noisy input after having been above it): "
                     + ", ".join(f"{m} at step {diverged[m].step}" for m in fell))
    if collapsed:
        parts.append("collapsed (a constant image, below the noisy input): "
                     + ", ".join(f"{m} at step {diverged[m].step}" for m in collapsed))
    if unmeasured:
        parts.append("no curve, not measured: " + ", ".join(unmeasured))
    verdict = "Every trained row has converged." if not climbing and not unmeasured and not diverged else ""
    return parts[0] + " " + "; ".join(parts[1:]) + "." + (" " + verdict if verdict else "")
