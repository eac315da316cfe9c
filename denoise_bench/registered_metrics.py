"""The metrics of this process, in registration order, and the record and curve columns they make.

PSNR and SSIM come first (``denoise_bench.metrics`` registers them) and own the columns they always had,
written out in ``schema``; each further metric adds its own after them. Kept apart from the contract
(``metric``), which the registry imports: this module reads the registry, so the two never import each
other.
"""

from __future__ import annotations

import pandas as pd

from denoise_bench.metric import Metric
from denoise_bench.schema import BUILTIN_METRICS, CURVE_COLUMNS, RECORD_COLUMNS


def metrics() -> list[Metric]:
    """Every registered metric, PSNR and SSIM first (the registry, looked up when asked: it loads plugins)."""
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
