"""A static HTML leaderboard (one folder, no server) and PNG plots for papers.

``index.html`` holds the ranked tables (click a column header to sort), PSNR against the noise level
of each test image, PSNR against training budget (learning curves when the runs have them, else the
final score against training time), and a visual grid: the same test crop noisy, as each method
restored it, and clean. Plots are drawn once with matplotlib, as SVG for the page and PNG for papers.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from denoise_bench.results import file_slug  # noqa: E402
from denoise_bench.samples import CLEAN, NOISY, SAMPLES, sample_dir  # noqa: E402

PLOTS = "plots"
LEVEL_BINS = 6

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
// How many images actually rendered (a check that the page is complete, read by the tests).
window.addEventListener("load", () => {
  document.body.dataset.imagesLoaded = Array.from(document.images).filter(img => img.naturalWidth > 0).length;
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 90em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; cursor: pointer; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.3em; text-align: center; }
figure img { image-rendering: pixelated; width: 160px; }
img.plot { max-width: 45em; }
"""


def _save(fig: plt.Figure, out: Path, name: str) -> str:
    """Write ``name``.png and ``name``.svg under plots/; returns the SVG's path relative to ``out``."""
    folder = out / PLOTS
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=150)
    fig.savefig(folder / f"{name}.svg")
    plt.close(fig)
    return f"{PLOTS}/{name}.svg"


def _first_level(text: object) -> float | None:
    """The first drawn parameter of a record's noise level (sigma, lam or v), e.g. '{"sigma": 25.0}'."""
    try:
        levels = json.loads(str(text))
    except json.JSONDecodeError:
        return None
    return float(next(iter(levels.values()))) if levels else None


def plot_psnr_vs_noise(records: pd.DataFrame, out: Path) -> dict[str, str]:
    """Per dataset and noise family: mean PSNR of each method in bins of the image's noise level."""
    plots = {}
    frame = records.assign(level=records.noise_level.map(_first_level),
                           family=records.test_noise.str.split(":").str[0]).dropna(subset=["level"])
    for (dataset, family), block in frame.groupby(["dataset", "family"], sort=True):
        if block.level.nunique() < 2:
            continue  # a single fixed level: nothing to plot against
        bins = pd.cut(block.level, min(LEVEL_BINS, block.level.nunique()))
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, rows in block.groupby("method"):
            means = rows.groupby(bins.loc[rows.index], observed=True).agg(level=("level", "mean"), psnr=("psnr", "mean"))
            ax.plot(means.level, means.psnr, marker="o", label=method)
        noisy = block.drop_duplicates(["image", "repeat", "test_noise"])
        means = noisy.groupby(bins.loc[noisy.index], observed=True).agg(level=("level", "mean"), psnr=("input_psnr", "mean"))
        ax.plot(means.level, means.psnr, linestyle="--", color="grey", label="noisy input")
        ax.set(xlabel=f"{family} noise level of the test image", ylabel="PSNR (dB)", title=f"{dataset}: PSNR vs noise level")
        ax.legend(fontsize="small")
        plots[f"{dataset}, {family}"] = _save(fig, out, f"psnr_vs_noise_{file_slug(dataset)}_{file_slug(family)}")
    return plots


def plot_psnr_vs_budget(records: pd.DataFrame, curves: pd.DataFrame, out: Path) -> dict[str, str]:
    """Per dataset and test setting: PSNR against training seconds (curves if recorded, final points always)."""
    plots = {}
    trained = records[records.iterations > 0]
    for (dataset, test_noise), block in trained.groupby(["dataset", "test_noise"], sort=True):
        fig, ax = plt.subplots(figsize=(6, 4))
        if not curves.empty:
            sel = curves[(curves.dataset == dataset) & (curves.test_noise == test_noise)]
            for method, rows in sel.groupby("method"):
                mean = rows.groupby("step").agg(seconds=("train_seconds", "mean"), psnr=("psnr", "mean"))
                ax.plot(mean.seconds, mean.psnr, marker=".", label=f"{method} (during training)")
        final = block.groupby("method").agg(seconds=("train_seconds", "mean"), psnr=("psnr", "mean"))
        for method, row in final.iterrows():
            ax.scatter(row.seconds, row.psnr, marker="s")
            ax.annotate(method, (row.seconds, row.psnr), textcoords="offset points", xytext=(4, 4), fontsize="small")
        ax.set(xlabel="training time (s)", ylabel="PSNR (dB)", title=f"{dataset}, {test_noise}: PSNR vs training time")
        if not curves.empty:
            ax.legend(fontsize="small")
        plots[f"{dataset}, {test_noise}"] = _save(fig, out, f"psnr_vs_budget_{file_slug(dataset)}_{file_slug(test_noise)}")
    return plots


def collect_samples(run_dirs: list[Path], records: pd.DataFrame, out: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Copy the runs' example crops into ``out``; (dataset, test noise) -> [(caption, relative path)]."""
    grids: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
        target = sample_dir(out, dataset, test_noise)
        found: dict[str, Path] = {}
        for run_dir in run_dirs:
            source = sample_dir(run_dir, dataset, test_noise)
            if source.is_dir():
                found.update({p.stem: p for p in sorted(source.glob("*.png"))})
        if NOISY not in found:
            continue
        markers = [sample_dir(d, dataset, test_noise) / "image.txt" for d in run_dirs]
        image_name = next((m.read_text().strip() for m in markers if m.is_file()), "")
        order = [NOISY] + list(block.groupby("method").psnr.mean().sort_values(ascending=False).index) + [CLEAN]
        cells = []
        for name in order:
            if name not in found:
                continue
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found[name], target / found[name].name)
            caption = name
            first = block[(block.method == name) & (block.image == image_name) & (block.repeat == 0)]
            if len(first):
                caption = f"{name} {first.psnr.iloc[0]:.2f} dB"
            elif name == NOISY:
                noisy = block[(block.image == image_name) & (block.repeat == 0)]
                caption = f"noisy {noisy.input_psnr.iloc[0]:.2f} dB" if len(noisy) else name
            cells.append((caption, str((target / found[name].name).relative_to(out))))
        grids[(dataset, test_noise)] = cells
    return grids


def _table_html(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.iterrows():
        cells = "".join(f"<td>{'' if pd.isna(v) else html.escape(str(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def write_html(out: Path, tables: dict[tuple[str, str], pd.DataFrame], records: pd.DataFrame, curves: pd.DataFrame,
               run_dirs: list[Path]) -> Path:
    """Write ``index.html`` with its plots and sample crops into ``out``; returns its path."""
    if (out / SAMPLES).exists():
        shutil.rmtree(out / SAMPLES)  # crops of an earlier leaderboard in the same folder
    noise_plots = plot_psnr_vs_noise(records, out)
    budget_plots = plot_psnr_vs_budget(records, curves, out)
    grids = collect_samples(run_dirs, records, out)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8"><title>denoise-bench leaderboard</title>',
             f"<style>{_STYLE}</style></head><body>", "<h1>Leaderboard</h1>",
             "<p>Runs: " + ", ".join(f"<code>{html.escape(str(d))}</code>" for d in run_dirs) + ". "
             "Methods ranked by mean PSNR; the gap column is the mean paired PSNR difference to the method above, "
             "with its 95% bootstrap interval over images (tie when it contains 0). Click a header to sort.</p>"]
    for (dataset, test_noise), table in tables.items():
        parts += [f"<h2>{html.escape(dataset)}, {html.escape(test_noise)}</h2>", _table_html(table)]
        cells = grids.get((dataset, test_noise))
        if cells:
            parts.append('<div class="grid">' + "".join(
                f'<figure><img src="{html.escape(src)}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
                f"</figcaption></figure>" for caption, src in cells) + "</div>")
    if noise_plots:
        parts.append("<h2>PSNR against noise level</h2>")
        parts += [f'<img class="plot" src="{src}" alt="PSNR vs noise level, {html.escape(k)}">' for k, src in noise_plots.items()]
    if budget_plots:
        parts.append("<h2>PSNR against training budget</h2>")
        parts += [f'<img class="plot" src="{src}" alt="PSNR vs budget, {html.escape(k)}">' for k, src in budget_plots.items()]
    parts += [f"<script>{_SORT_SCRIPT}</script>", "</body></html>"]
    path = out / "index.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
