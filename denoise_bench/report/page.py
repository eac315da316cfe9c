"""The static HTML leaderboard page (one folder, no server) that ``bench leaderboard`` writes: ``index.html``
opens with what the numbers were made under, then holds the ranked tables (click a column header to sort),
a grid of sample crops per table and the PSNR plots. This module assembles the page (tables, notes, CSS
and script); the About block, the crops and the figures come from ``report_about``, ``report_samples``
and ``report_plots``.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from denoise_bench.report.leaderboard_tables import (CONVERGENCE, CONVERGENCE_NOTE, FEW_IMAGES_NOTE, PAPER_GAP, PAPER_GAP_NOTE,
                                              REPRODUCED, SUBSET_NOTE, has_few_images_mark, has_floor)
from denoise_bench.plausibility import IMPLAUSIBLE_MARK, IMPLAUSIBLE_NOTE
from denoise_bench.report.about import about_html
from denoise_bench.report.plots import method_styles, oracles, plot_psnr_vs_budget, plot_psnr_vs_noise
from denoise_bench.report.sample_crops import ZOOM, SampleGrid, collect_samples
from denoise_bench.reproduction import NOTE as REPRODUCTION_NOTE
from denoise_bench.results import FLOOR_NOTE, ORACLE_MARK, PRETRAINED_NOTE, has_pretrained
from denoise_bench.store.sample_files import SAMPLES

if TYPE_CHECKING:
    from denoise_bench.report.leaderboard_merge import RunInfo

ORACLE_NOTE = ("told the true noise level of each test image (the σ or λ its noise was drawn with), which every "
               "other method has to do without: read it as a reference, not as a like-for-like competitor.")

_SORT_SCRIPT = """
for (const table of document.querySelectorAll("table.sortable")) {
  table.querySelectorAll("th").forEach((th, column) => {
    th.addEventListener("click", () => {
      const body = table.tBodies[0];
      const ascending = th.dataset.order !== "asc";
      const key = row => {
        const text = row.cells[column].textContent.trim();
        const number = parseFloat(text);
        return isNaN(number) ? text : number;
      };
      const rows = Array.from(body.rows).sort((a, b) => {
        const x = key(a), y = key(b);
        const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return ascending ? order : -order;
      });
      rows.forEach(row => body.appendChild(row));
      table.querySelectorAll("th").forEach(other => delete other.dataset.order);
      th.dataset.order = ascending ? "asc" : "desc";
    });
  });
  table.dataset.sortable = "ready";
}
// How many images actually rendered and how wide the narrowest crop is drawn (checks that the page is
// complete and its crops large enough to judge, read by the tests).
window.addEventListener("load", () => {
  document.body.dataset.imagesLoaded = Array.from(document.images).filter(img => img.naturalWidth > 0).length;
  const crops = Array.from(document.querySelectorAll(".sample img"), img => img.getBoundingClientRect().width);
  if (crops.length) document.body.dataset.narrowestCrop = Math.round(Math.min(...crops));
  // The page's width against the window's: wider means the window scrolls sideways (a table that overflows).
  document.body.dataset.pageWidth = document.documentElement.scrollWidth;
  document.body.dataset.windowWidth = document.documentElement.clientWidth;
});
"""

# The page uses the window: a wide column, tables that scroll inside their own box rather than squeeze
# (the window itself never scrolls sideways), plots and crops that scale with it (crops never below 256 px,
# upscaled without smoothing so pixels stay visible); plots keep the size they were drawn for, or less. The
# About block's table of what differs between runs holds sentences: its cells wrap.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; line-height: 1.4; }
main { box-sizing: border-box; width: 100%; max-width: 1800px; margin: 0 auto; padding: 1em 2.5vw 3em; }
h2 { margin-top: 1.6em; }
.about { background: #f7f7f9; border: 1px solid #ddd; border-radius: 6px; padding: 0.4em 1em; font-size: 0.85em; line-height: 1.3; }
.about h2 { margin: 0.1em 0 0.3em; font-size: 1.1em; }
.about dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.1em 1em; margin: 0; }
.about dt { font-weight: 600; }
.about dd { margin: 0; }
.about .note { margin: 0.4em 0 0; }
.about table.differences { margin: 0.2em 0; font-size: 0.9em; }
.about table.differences th, .about table.differences td { padding: 0.05em 0.4em; cursor: default; text-align: left; }
.about table.differences td { white-space: normal; }
.about table.differences code { white-space: nowrap; }  /* a run folder stays one line */
.about ul { margin: 0; padding-left: 1.2em; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; cursor: pointer; }
th[data-order="asc"]::after { content: " \\25B2"; }
th[data-order="desc"]::after { content: " \\25BC"; }
td:first-child, th:first-child { text-align: left; }
.note { font-size: 0.9em; color: #444; margin: 0.2em 0 1em; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(256px, 1fr)); gap: 1em; }
.sample { margin: 0; }
.sample img { display: block; width: 100%; height: auto; image-rendering: pixelated; }
.crop { position: relative; }
.zoom-box { position: absolute; outline: 2px solid #ffd400; box-shadow: 0 0 0 3px rgba(0, 0, 0, 0.6); pointer-events: none; }
.detail { margin-top: 0.4em; }
figcaption { font-size: 0.95em; text-align: center; margin: 0 0 0.3em; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
img.plot { display: block; min-width: 0; max-width: 100%; height: auto; }
"""


def _table_html(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.iterrows():
        cells = "".join(f"<td>{'' if pd.isna(v) else html.escape(str(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return (f'<div class="table-wrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def oracle_note(table: pd.DataFrame) -> str:
    """The dagger's meaning, for a table that has a marked method (else nothing)."""
    marked = [str(m) for m in table["method"] if ORACLE_MARK in str(m)]
    if not marked:
        return ""
    return f'<p class="note oracle-note">{ORACLE_MARK} {html.escape(", ".join(marked))}: {html.escape(ORACLE_NOTE)}</p>'


def few_images_note(table: pd.DataFrame) -> str:
    """The meaning of the few-images mark, for a table that has one (else nothing)."""
    return f'<p class="note few-images-note">{html.escape(FEW_IMAGES_NOTE)}</p>' if has_few_images_mark(table) else ""


def floor_note(table: pd.DataFrame) -> str:
    """What the floor's row and the below-floor mark mean, for a table that has the row (else nothing)."""
    return f'<p class="note floor-note">{html.escape(FLOOR_NOTE)}</p>' if has_floor(table) else ""


def implausible_note(table: pd.DataFrame) -> str:
    """What the implausible mark means, for a table with a method marked so (else nothing)."""
    if not any(str(m).endswith(IMPLAUSIBLE_MARK) for m in table["method"]):
        return ""
    return f'<p class="note implausible-note">{html.escape(IMPLAUSIBLE_NOTE)}</p>'


def pretrained_note(table: pd.DataFrame) -> str:
    """What the pretrained mark means, for a table with a method that arrived trained (else nothing)."""
    return f'<p class="note pretrained-note">{html.escape(PRETRAINED_NOTE)}</p>' if has_pretrained(table["method"]) else ""


def paper_gap_note(table: pd.DataFrame) -> str:
    """Where the paper's gap to the U-Net comes from, for a table that shows it (else nothing)."""
    return f'<p class="note paper-note">{html.escape(PAPER_GAP_NOTE)}</p>' if PAPER_GAP in table else ""


def convergence_note(table: pd.DataFrame) -> str:
    """What the convergence column says and the definition it reads, for a table that has it (else nothing)."""
    return f'<p class="note convergence-note">{html.escape(CONVERGENCE_NOTE)}</p>' if CONVERGENCE in table else ""


def reproduction_note(table: pd.DataFrame) -> str:
    """What the reproduction column says, for a table that has it (else nothing)."""
    return f'<p class="note reproduction-note">{html.escape(REPRODUCTION_NOTE)}</p>' if REPRODUCED in table else ""


def findings_html(findings: str | None) -> str:
    """The publisher's findings (markdown paragraphs, and bullets starting ``* `` or ``- `` whose
    continuation lines are indented), as escaped text, under the caveats."""
    if not findings:
        return ""
    blocks = []
    for block in re.split(r"\n\s*\n", findings.strip()):
        lines = block.splitlines()
        if lines[0].lstrip().startswith(("* ", "- ")):
            items: list[str] = []
            for line in lines:
                text = line.strip()
                if text.startswith(("* ", "- ")):
                    items.append(text[2:])
                else:
                    items[-1] += " " + text
            blocks.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
        else:
            blocks.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return '<section class="findings"><h2>Findings</h2>' + "".join(blocks) + "</section>"


def _inline(text: str) -> str:
    """Escaped text with markdown's ``**bold**`` and ``code`` spans as HTML (all a findings file uses)."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def not_run_html(texts: list[str], title: str = "Not run (no numbers)") -> str:
    """Jobs that gave no numbers, with why (skipped: the method does not apply; failed: its error)."""
    if not texts:
        return ""
    items = "".join(f"<li>{html.escape(text)}</li>" for text in texts)
    return f'<div class="note not-run">{html.escape(title)}:<ul>{items}</ul></div>'


def _grid_html(grid: SampleGrid) -> str:
    figures = []
    for cell in grid.cells:
        left, top, width, height = (f"{100 * v:.2f}%" for v in cell.box)
        caption = html.escape(cell.caption)
        figures.append(f'<figure class="sample"><figcaption>{caption}</figcaption><div class="crop">'
                       f'<img src="{html.escape(cell.src)}" alt="{caption}">'
                       f'<span class="zoom-box" style="left:{left};top:{top};width:{width};height:{height}"></span></div>'
                       f'<img class="detail" src="{html.escape(cell.detail)}" alt="{caption}, centre enlarged {ZOOM}x">'
                       "</figure>")
    intro = (f'<p class="note">Centre crop of test image <code>{html.escape(grid.image)}</code> (first noise draw), '
             f"with the PSNR of the whole image; under each, the outlined region enlarged {ZOOM}×.</p>")
    return intro + '<div class="samples">' + "".join(figures) + "</div>"


def _plots_html(title: str, plots: dict[str, str], kind: str) -> list[str]:
    """Plots side by side at the size they were drawn for, shrunk to the window when it is narrower."""
    if not plots:
        return []
    images = "".join(f'<img class="plot" src="{html.escape(src)}" alt="{kind}, {html.escape(k)}">' for k, src in plots.items())
    return [f"<h2>{title}</h2>", f'<div class="plots">{images}</div>']


def write_html(out: Path, tables: dict[tuple[str, str], pd.DataFrame], records: pd.DataFrame, curves: pd.DataFrame,
               runs: list[RunInfo], not_run: dict[tuple[str, str], list[str]] | None = None, unplaced: list[str] | None = None,
               findings: str | None = None, title: str = "Leaderboard", controls: pd.DataFrame | None = None) -> Path:
    """Write ``index.html`` with its plots and sample crops into ``out``; returns its path. ``controls``: the named
    records of the board's doubling controls (they measure how far from converged its rows are).

    ``not_run`` lists, per table, the jobs that would be in it but gave no numbers; ``unplaced`` those
    that belong to no table (see ``leaderboard_tables.not_run_by_table``); ``title`` says what the board ranks
    (``leaderboard.board_title``): the window's title and the page's first heading."""
    if (out / SAMPLES).exists():
        shutil.rmtree(out / SAMPLES)  # crops of an earlier leaderboard in the same folder
    styles = method_styles(list(records.method))
    noise_plots = plot_psnr_vs_noise(records, out, styles)
    budget_plots = plot_psnr_vs_budget(records, curves, out, styles)
    grids = collect_samples([info.run_dir for info in runs], records, out)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)} (denoise-bench)</title><style>{_STYLE}</style></head><body><main>",
             f"<h1>{html.escape(title)}</h1>",
             about_html(runs, records, curves, controls),
             findings_html(findings),
             "<p>Methods ranked by mean PSNR (dB) over test images; the gap column is the mean paired PSNR difference "
             "to the method above, with its 95% bootstrap interval over images (tie when it contains 0). "
             f"{html.escape(SUBSET_NOTE)} Per-image methods (no training) cost only their test seconds per image. "
             "Click a header to sort.</p>"]
    for (dataset, test_noise), table in tables.items():
        parts += [f"<h2>{html.escape(dataset)}, {html.escape(test_noise)}</h2>", _table_html(table), oracle_note(table),
                  few_images_note(table), floor_note(table), implausible_note(table), pretrained_note(table), paper_gap_note(table), convergence_note(table), reproduction_note(table), not_run_html((not_run or {}).get((dataset, test_noise), []))]
        if (dataset, test_noise) in grids:
            parts.append(_grid_html(grids[(dataset, test_noise)]))
    if unplaced:
        parts += ["<h2>Not run</h2>", not_run_html(unplaced, "No numbers in any table")]
    parts += _plots_html("PSNR against noise level", noise_plots, "PSNR vs noise level")
    parts += _plots_html("PSNR against training budget", budget_plots, "PSNR vs training steps and time")
    if (noise_plots or budget_plots) and oracles(records):
        parts.append(f'<p class="note">{ORACLE_MARK} in a legend: {html.escape(ORACLE_NOTE)}</p>')
    parts += [f"<script>{_SORT_SCRIPT}</script>", "</main></body></html>"]
    path = out / "index.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
