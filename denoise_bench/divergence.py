"""The divergence guard: a learning curve that falls below its noisy input after having been above it,
or whose network has collapsed to a constant image.

A trained method that once denoised and then scores below doing nothing at all has diverged (IDDP's
collapse to a near-constant image is the case that asked for it: its loss keeps falling while its
PSNR does). A curve that never rose above its input is under-trained, not diverged: the tables say
that already (below-input warnings) -- unless its estimates have no structure left at all: an output
whose spatial standard deviation is under ``COLLAPSED_STD`` (a constant image, whatever the input)
scoring below its input has collapsed, wherever it started (IDDP from PyTorch's initialisation reaches
one within 2000 steps: output std 0.000, 5.00 dB). One rule, here, for the run's tables, the boards and
``--stop-on-divergence``, which ends such a training at the evaluation that sees it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

CURVE = ["dataset", "test_noise", "seed"]  # one curve of a row (the method's curves are also per seed)
# A spatial standard deviation (images in [0, 1]) under which an estimate is a constant image: a tenth of one
# grey level of 8 bits. Clean test images have 0.1-0.3.
COLLAPSED_STD = 0.1 / 255


@dataclass(frozen=True)
class Divergence:
    """Where a row's curve first fell below its noisy input after having been above it."""

    method: str
    step: int
    dataset: str
    test_noise: str
    psnr: float
    input_psnr: float
    collapsed: bool = False  # to a constant image (whether or not it had been above its input)

    def cell(self) -> str:
        """The board's convergence cell of a diverged row."""
        return f"collapsed at step {self.step}" if self.collapsed else f"diverged at step {self.step}"

    def text(self) -> str:
        if self.collapsed:
            return (f"{self.method} collapsed at step {self.step}: on {self.dataset}, {self.test_noise} its output was a "
                    f"constant image, {self.psnr:.2f} dB against the noisy input's {self.input_psnr:.2f}")
        return (f"{self.method} diverged at step {self.step}: on {self.dataset}, {self.test_noise} its curve fell to "
                f"{self.psnr:.2f} dB, below the noisy input ({self.input_psnr:.2f} dB), after having been above it")


def above_input(point: Mapping[str, Any]) -> bool:
    """Whether a curve point (a row of curves.csv) scores above its noisy input (False where either is unknown)."""
    return float(point["psnr"]) > float(point.get("input_psnr", math.nan))


class DivergenceGuard:
    """Watches one training job's curve points as they come (``--stop-on-divergence``)."""

    def __init__(self) -> None:
        self._above: set[tuple[Any, ...]] = set()
        self.divergence: Divergence | None = None

    def see(self, point: Mapping[str, Any]) -> None:
        """Take one curve point (a row of curves.csv); the first divergence seen is kept."""
        curve = tuple(point.get(c) for c in CURVE)
        psnr, reference = float(point["psnr"]), float(point.get("input_psnr", math.nan))
        if math.isnan(reference):
            return
        spread = point.get("output_std")
        collapsed = spread is not None and not pd.isna(spread) and float(spread) < COLLAPSED_STD
        if above_input(point):
            self._above.add(curve)
        elif (psnr < reference or math.isnan(psnr)) and (curve in self._above or collapsed) and self.divergence is None:
            self.divergence = Divergence(str(point["method"]), int(point["step"]), str(point["dataset"]),
                                         str(point["test_noise"]), psnr, reference, collapsed)


def divergences(curves: pd.DataFrame) -> dict[str, Divergence]:
    """Each row (curves' ``method``) that diverged, at its earliest divergence over its curves. Curves
    without the noisy input's PSNR (made before it was recorded) are not judged."""
    if curves.empty or "input_psnr" not in curves:
        return {}
    found: dict[str, Divergence] = {}
    for method, block in curves.sort_values("step", kind="stable").groupby("method", sort=True):
        guard = DivergenceGuard()
        for point in block.to_dict("records"):
            guard.see(point)
            if guard.divergence is not None:
                break
        if guard.divergence is not None:
            found[str(method)] = guard.divergence
    return found


def with_input_psnr(curves: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Curves whose missing ``input_psnr`` (curves made before it was recorded) is taken from the records:
    a curve point scores the first ``records`` test cases of its dataset and test setting, in the order the
    records hold them, and the noisy input is the same for every method."""
    curves = curves.assign(input_psnr=curves["input_psnr"] if "input_psnr" in curves else math.nan)
    missing = curves.input_psnr.isna()
    if not missing.any() or records.empty or "input_psnr" not in records:
        return curves
    first = records.drop_duplicates(["dataset", "test_noise", "image", "repeat"])
    cases = {key: block.input_psnr.to_numpy() for key, block in first.groupby(["dataset", "test_noise"], sort=False)}

    def mean_input(row: pd.Series) -> float:
        values = cases.get((row.dataset, row.test_noise))
        n = int(row["records"]) if "records" in row and pd.notna(row["records"]) else 0
        return float(values[:n].mean()) if values is not None and 0 < n <= len(values) else math.nan

    filled = curves.loc[missing].apply(mean_input, axis=1)
    return curves.assign(input_psnr=curves.input_psnr.where(~missing, filled))


def divergence_warnings(curves: pd.DataFrame, records: pd.DataFrame) -> list[str]:
    """One line per diverged row of these curves (their missing noisy-input scores taken from ``records``)."""
    if curves.empty:
        return []
    found = divergences(with_input_psnr(curves, records))
    return [found[m].text() + "; its scores are those of the diverged network." for m in sorted(found)]
