"""Whether each built-in method's published numbers are reproduced here: one table
(``denoise_bench/reference/reproduction.csv``, beside the published numbers it is checked against) that
every board, ``bench list`` and the README's method table read.

A status is one of :data:`STATUSES`: reproduced (same protocol, within the stated tolerance, with the run
that shows it), not reproduced (with the evidence), not yet compared (with what it would take), or not a
paper's method (this suite's own variants and diagnostics). A method the table does not name (a
third-party plugin) has no status.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from io import StringIO

import pandas as pd

from denoise_bench.experiment import OURS

REPRODUCTION_TABLE = ("denoise_bench.reference", "reproduction.csv")
REPRODUCED, NOT_REPRODUCED, NOT_YET, NOT_A_PAPER = "reproduced", "not reproduced", "not yet compared", "not a paper's method"
STATUSES = (REPRODUCED, NOT_REPRODUCED, NOT_YET, NOT_A_PAPER)
# How a board's column shows each status (short, so the column stays narrow; its note says the rest).
SHORT = {REPRODUCED: "yes", NOT_REPRODUCED: "no", NOT_YET: "not yet", NOT_A_PAPER: "n/a"}
NOTE = ("`reproduced?`: whether the method's published numbers are reproduced here (denoise_bench/reference/"
        "reproduction.csv, docs/reproduction.md): yes (same protocol, within a stated tolerance, with the run that "
        "shows it), no (with the evidence), not yet (compared with nothing that settles it: what it would take is "
        "listed), n/a (not a paper's method: the suite's own variants, marked (ours)); empty: a method the table "
        "does not name.")


@dataclass(frozen=True)
class Reproduction:
    method: str
    status: str
    published: str  # the numbers it is compared with, and their source
    measured: str  # what the suite measured, and where
    tolerance_db: float | None
    evidence: str  # the run folder or page that shows it
    to_settle: str  # what would settle it, or what remains


@cache
def reproductions() -> dict[str, Reproduction]:
    """The table, by method name."""
    text = resources.files(REPRODUCTION_TABLE[0]).joinpath(REPRODUCTION_TABLE[1]).read_text(encoding="utf-8")
    table = pd.read_csv(StringIO(text), keep_default_na=False, dtype=str)
    rows = {}
    for row in table.to_dict("records"):
        tolerance = float(row["tolerance_db"]) if row["tolerance_db"] else None
        rows[row["method"]] = Reproduction(row["method"], row["status"], row["published"], row["measured"], tolerance,
                                           row["evidence"], row["to_settle"])
    return rows


def status_of(method: str) -> str:
    """The status of a built-in method ("" for one the table does not name)."""
    found = reproductions().get(method)
    return found.status if found else ""


def board_cell(row: str, method: str) -> str:
    """The board's ``reproduced?`` cell of a row of ``method``: a row the suite's extensions made (marked
    (ours)) is not the paper's method, whatever its method's status."""
    if OURS in row:
        return SHORT[NOT_A_PAPER]
    found = reproductions().get(method)
    if found is None:
        return ""
    # A verdict of "no" names where its evidence is, so the board leads a reader to it.
    return f"{SHORT[found.status]} ({found.evidence})" if found.status == NOT_REPRODUCED else SHORT[found.status]
