"""The README's method table lists every built-in method, with the published budget `bench list` prints,
so that a method added, renamed or re-budgeted shows there too."""

from __future__ import annotations

from pathlib import Path

from denoise_bench.cli.commands import official_budget_text
from denoise_bench.plugins import get_registry
from denoise_bench.reproduction import status_of

README = Path(__file__).resolve().parents[1] / "README.md"


def _method_rows() -> dict[str, list[str]]:
    """The README's "## Methods" table: method name -> its cells."""
    section = README.read_text().split("\n## Methods\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return {row[0].strip("`"): row for row in cells}


def test_the_readme_lists_every_built_in_method_with_its_published_budget() -> None:
    built_in = {name: cls for name, cls in get_registry().methods.items()
                if cls.__module__.startswith("denoise_bench.methods.")}
    rows = _method_rows()
    assert set(rows) == set(built_in), f"README only: {set(rows) - set(built_in)}; missing: {set(built_in) - set(rows)}"
    for name, cls in built_in.items():
        assert rows[name][3] == official_budget_text(cls), name
        assert rows[name][5] == status_of(name), name  # the reproduction table's status (denoise_bench.reproduction)


def test_every_built_in_method_has_a_reproduction_status() -> None:
    from denoise_bench.reproduction import STATUSES, reproductions

    built_in = {name for name, cls in get_registry().methods.items() if cls.__module__.startswith("denoise_bench.methods.")}
    assert set(reproductions()) == built_in
    for row in reproductions().values():
        assert row.status in STATUSES, row
        assert row.evidence and (row.status == "not a paper's method" or row.published), row
        if row.status == "reproduced":
            assert row.tolerance_db and row.measured, row  # within a stated tolerance, with what was measured
        if row.status in ("not yet compared", "not reproduced"):
            assert row.to_settle, row  # what it would take
