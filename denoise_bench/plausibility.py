"""Scores no denoiser reaches from the noisy input alone, which run tables and leaderboards flag.

A record is implausible when its PSNR is NaN (the estimate is not a number), or, on an input noisier
than :data:`EXACT_INPUT_PSNR`, when the estimate is exact (PSNR inf or SSIM 1) or its PSNR is more
than :data:`MAX_GAIN` dB above the noisy input's (under a three-hundredth of its squared error). The
clean image itself scores so; a denoiser that sees only the noisy input does not, whatever its
supervision. Inputs within :data:`EXACT_INPUT_PSNR` of the clean image (noise of about one grey
level or less, as the low end of a drawn range gives) may round back to it exactly, so they are not
flagged for that. The flag stops nothing: a method that reaches the clean images in memory or on
disk scores first, with the mark beside it (docs/writing-a-method-plugin.md, the supervision boundary).
"""

from __future__ import annotations

import math

import pandas as pd

IMPLAUSIBLE_MARK = "‼"
MAX_GAIN = 25.0  # dB above the noisy input: BM3D gains up to 19 dB on the smoothest BSD68 image
EXACT_INPUT_PSNR = 48.0  # dB: noise std of about one grey level of 255
KINDS = {"nan": "PSNR NaN (the estimate is not a number)", "exact": "exact (PSNR inf or SSIM 1)",
         "gain": f"more than {MAX_GAIN:g} dB above the noisy input"}
IMPLAUSIBLE_NOTE = (f"{IMPLAUSIBLE_MARK} scores no denoiser reaches from the noisy input alone on some images: PSNR "
                    f"NaN, or, on an input noisier than {EXACT_INPUT_PSNR:g} dB, PSNR inf, SSIM 1 or more than "
                    f"{MAX_GAIN:g} dB above the noisy input. The clean image itself scores so: check that the method "
                    "cannot reach it (the supervision boundary stops accidents, not a search of memory or disk), "
                    "or why its estimate is not a number.")


def _column(records: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(records[name], errors="coerce") if name in records else pd.Series(math.nan, records.index)


def implausible_kinds(records: pd.DataFrame) -> pd.DataFrame:
    """Per record, whether its score is implausible and how: boolean columns of :data:`KINDS`."""
    psnr, ssim, noisy = _column(records, "psnr"), _column(records, "ssim"), _column(records, "input_psnr")
    noisy_enough = ~(noisy >= EXACT_INPUT_PSNR)  # an unknown input counts as noisy
    return pd.DataFrame({"nan": psnr.isna() & ("psnr" in records),
                         "exact": noisy_enough & ((psnr == math.inf) | (ssim >= 1.0)),
                         "gain": noisy_enough & (psnr < math.inf) & (psnr - noisy > MAX_GAIN)}, index=records.index)


def implausible(records: pd.DataFrame) -> pd.Series:
    """Per record: True when its score is implausible (:func:`implausible_kinds`)."""
    return implausible_kinds(records).any(axis=1)


def implausible_warnings(records: pd.DataFrame, label: str = "method") -> list[str]:
    """One line per (``label`` column, dataset, test noise) with implausible records: how many, of what kind."""
    if records.empty:
        return []
    kinds = implausible_kinds(records)
    flagged = kinds.any(axis=1)
    warnings = []
    groups = [label, "dataset", "test_noise"]
    for (method, dataset, test_noise), rows in records.groupby(groups, sort=False, dropna=False):
        found = kinds.loc[rows.index][flagged.loc[rows.index]]
        if found.empty:
            continue
        parts = "; ".join(f"{int(found[k].sum())} {text}" for k, text in KINDS.items() if found[k].any())
        warnings.append(f"{method} scores implausibly on {len(found)} of {len(rows)} records of {dataset}, "
                        f"{test_noise} ({parts}): no denoiser scores so from the noisy input alone; check that it "
                        "cannot reach the clean image, or why its estimate is not a number.")
    return warnings
