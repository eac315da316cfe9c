"""Paired comparisons of two methods on the same test images, with bootstrap confidence intervals.

Denoising papers compare means; on 68 or 100 test images a 0.1 dB gap is often within the spread of
the per-image differences. Here two methods are compared only on the images both were evaluated on,
image by image (the noisy inputs are bit-identical across methods, see ``protocol``), and the mean
difference gets a percentile bootstrap interval over images: resample the images with replacement,
recompute the mean difference, take the 2.5 % and 97.5 % quantiles. Repeats and seeds of one image
are averaged first, so the unit of resampling is the image, which is what varies between test sets.
Over fewer than ``MIN_INTERVAL_IMAGES`` images the bootstrap cannot show the spread (over two images
it has three possible means), so such a comparison is flagged (``few_images``) wherever it is shown.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same records always give the same intervals
CONFIDENCE = 0.95
MIN_INTERVAL_IMAGES = 5  # fewer common images than this: the interval is shown, flagged
FEW_IMAGES_MARK = "‡"


@dataclass(frozen=True)
class PairedDifference:
    """``first`` minus ``second`` in mean metric over their common images."""

    first: str
    second: str
    images: int
    mean: float
    low: float  # bounds of the 95 % bootstrap interval (NaN with fewer than two images)
    high: float
    nonfinite: int = 0  # common images whose difference is not a number (a PSNR of inf or NaN)

    @property
    def tie(self) -> bool:
        """The interval contains 0: the data do not say which method is better. Never for a difference
        that is not a number: an infinite or NaN PSNR compares with nothing."""
        return self.nonfinite == 0 and not (self.low > 0 or self.high < 0)

    @property
    def few_images(self) -> bool:
        """Too few common images for the interval to mean much (see ``MIN_INTERVAL_IMAGES``)."""
        return self.images < MIN_INTERVAL_IMAGES


def per_image_means(records: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Rows images, columns methods: the metric averaged over repeats and seeds of each image."""
    return records.pivot_table(index="image", columns="method", values=metric, aggfunc="mean")


def paired_bootstrap(differences: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                     confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean of per-image differences and its percentile bootstrap interval."""
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    if d.size < 2:
        return float(d.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(samples, d.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(d.mean()), float(low), float(high)


def compare(table: pd.DataFrame, first: str, second: str) -> PairedDifference:
    """Paired difference of two columns of :func:`per_image_means`, on the images both have."""
    both = table[[first, second]].dropna()
    differences = (both[first] - both[second]).to_numpy()
    nonfinite = int((~np.isfinite(differences)).sum())
    if nonfinite:  # a bootstrap over infinities gives NaN bounds, which would read as a tie
        with np.errstate(invalid="ignore"):  # inf - inf
            mean = float(np.mean(differences))
        return PairedDifference(first, second, len(both), mean, math.nan, math.nan, nonfinite)
    mean, low, high = paired_bootstrap(differences)
    return PairedDifference(first, second, len(both), mean, low, high)


def all_pairs(records: pd.DataFrame, metric: str = "psnr") -> list[PairedDifference]:
    """Every ordered-by-mean pair of methods in ``records`` (one dataset and test setting)."""
    table = per_image_means(records, metric)
    order = table.mean().sort_values(ascending=False).index
    return [compare(table, a, b) for a, b in itertools.combinations(order, 2)]
