"""Whether a run of the README's first command gave the numbers a working install gives.

A newcomer cannot tell from a table of PSNRs whether the install works: a wrong torch build, a broken
data folder or a changed default shows up as numbers that merely look plausible. So the scores of the
committed reference run of that command (``results/quick-reference``) are packaged in
``reference/first_command.csv``, each with a tolerance that covers what moves between machines
(precision, CPU kind, thread count; measured, see that file's ``source``), and a run made with the same
grid is compared with them line by line after its tables.

A run matches a reference row when the profile, dataset, training noise, test noise, method, its
options, its training steps and its number of test images are the same; a run with other settings is
not compared (there is nothing to compare it with).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from io import StringIO

import pandas as pd

EXPECTED = ("denoise_bench", "reference/first_command.csv")
# What identifies a score: a run whose records share all of these was made as the reference was.
KEY = ["profile", "dataset", "train_noise", "test_noise", "method", "method_options", "iterations", "images"]


def read_expected() -> pd.DataFrame:
    """The reference scores (one row per KEY, with ``psnr``, ``tolerance_db`` and ``source``)."""
    text = resources.files(EXPECTED[0]).joinpath(EXPECTED[1]).read_text(encoding="utf-8")
    return _keyed(pd.read_csv(StringIO(text), dtype={"method_options": str}))


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """KEY's columns in one comparable form: no options is "" and a per-image method's steps are 0."""
    return frame.assign(method_options=frame.method_options.astype(object).fillna("").astype(str),
                        iterations=frame.iterations.fillna(0).astype(int), images=frame.images.astype(int))


def run_scores(records: pd.DataFrame) -> pd.DataFrame:
    """A run's mean PSNR per KEY (records of every method of the run, one row per test image)."""
    if records.empty:
        return pd.DataFrame(columns=[*KEY, "psnr"])
    records = records.assign(method_options=records.get("method_options", pd.Series("", index=records.index)))
    grouped = records.groupby(KEY[:-1], dropna=False).agg(psnr=("psnr", "mean"), images=("image", "nunique")).reset_index()
    return _keyed(grouped)


@dataclass(frozen=True)
class ScoreCheck:
    method: str
    dataset: str
    test_noise: str
    psnr: float
    expected: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.psnr - self.expected) <= self.tolerance

    def line(self) -> str:
        verdict = "ok" if self.ok else f"OFF by {self.psnr - self.expected:+.2f} dB"
        return (f"  {self.method:<6} {self.dataset} {self.test_noise:<20} {self.psnr:6.2f} dB "
                f"(reference {self.expected:.2f} +- {self.tolerance:.2f}): {verdict}")


def check_scores(records: pd.DataFrame, expected: pd.DataFrame | None = None) -> list[ScoreCheck]:
    """The run's scores that have a reference, each beside it (empty when none matches)."""
    expected = read_expected() if expected is None else expected
    joined = run_scores(records).merge(expected, on=KEY, suffixes=("", "_expected"))
    return [ScoreCheck(r.method, r.dataset, r.test_noise, float(r.psnr), float(r.psnr_expected), float(r.tolerance_db))
            for r in joined.itertuples()]


def install_check_text(records: pd.DataFrame, expected: pd.DataFrame | None = None) -> str | None:
    """What to print after a run's tables: each score against the reference, then the verdict; None when
    the run was not made as a reference run was."""
    expected = read_expected() if expected is None else expected
    checks = check_scores(records, expected)
    if not checks:
        return None
    source = "; ".join(dict.fromkeys(expected.source.astype(str)))
    off = [c for c in checks if not c.ok]
    verdict = ("every score is within its tolerance of the reference: this install works as it should."
               if not off else
               f"{len(off)} of {len(checks)} scores are outside their tolerance of the reference: something differs "
               "from the install that made it (torch version, data files, changed defaults); compare environment.json "
               "of this run with the reference's.")
    return "\n".join([f"install check against the reference run ({source}):", *(c.line() for c in checks),
                      f"install check: {verdict}"])
