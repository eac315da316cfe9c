"""A static HTML leaderboard (one folder, no server) and PNG plots for papers.

``index.html`` starts with what the numbers were made under (protocol, profile and training budget,
engine, day, commit and machine of the runs), then holds the ranked tables (click a column header to
sort), a visual grid per table (the same test crop noisy, as each method restored it, and clean,
each with a 4x detail of its centre), PSNR against the noise level of each test image, and PSNR
during training against steps and seconds. Plots are drawn once with matplotlib, as SVG for the page
and PNG for papers, with one colour and marker per method throughout the page.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
from PIL import Image  # noqa: E402

from denoise_bench.plugins import get_registry  # noqa: E402
from denoise_bench.results import ORACLE_MARK, file_slug, low_budget_warnings, method_label  # noqa: E402
from denoise_bench.samples import CLEAN, NOISY, SAMPLES, sample_dir  # noqa: E402

if TYPE_CHECKING:
    from denoise_bench.leaderboard import RunInfo

PLOTS = "plots"
LEVEL_BINS = 6
ZOOM = 4  # the detail shows the central 1/ZOOM of a crop's side, enlarged ZOOM times
ZOOM_DIR = "zoom"  # beside the crops, so that a glob of the crops never picks the details up
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
Style = dict[str, Any]  # matplotlib line properties of one method
Point = tuple[str, float, float, Any]  # a point to name in a plot: name, x, y, colour

# Sizes chosen for a figure shown about 700-1400 px wide on the page and in a paper column.
_RC = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10, "axes.grid": True,
       "grid.alpha": 0.3, "lines.linewidth": 1.6, "lines.markersize": 6, "svg.hashsalt": "denoise-bench"}
# Where a point's name may go, tried in turn until it overlaps no earlier name: (dx, dy, alignment) in points.
_LABEL_SPOTS = ((8, -4, "left"), (-8, -4, "right"), (8, 6, "left"), (-8, 6, "right"), (8, -14, "left"),
                (-8, -14, "right"), (14, 14, "left"), (-14, 14, "right"), (14, -22, "left"), (-14, -22, "right"))
# Runs from before these fields existed trained with these (see runner._comparable).
_BUDGET_DEFAULTS = {"lr_rule": "official", "init": "official"}
_ENGINE_DEFAULTS = {"precision": "fp32", "channels_last": False, "compile": "off"}
_BUDGET_PARTS = (("iterations", "{} iterations"), ("batch_size", "batch {}"), ("crop_size", "{0}×{0} crops"),
                 ("width", "width {}"), ("lr_rule", "lr rule {}"), ("init", "init {}"),
                 ("per_image_iterations", "{} steps per image for per-image methods"))
_BUDGET_HEADS = {"iterations": "iterations", "batch_size": "batch", "crop_size": "crop", "width": "width",
                 "lr_rule": "lr rule", "init": "init", "per_image_iterations": "steps per image"}
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
});
"""

# The page uses the window: a wide column, tables that scroll rather than squeeze, plots and crops
# that scale with it (crops never below 256 px, upscaled without smoothing so pixels stay visible); plots
# keep the size they were drawn for, or less.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; line-height: 1.4; }
main { box-sizing: border-box; width: 100%; max-width: 1800px; margin: 0 auto; padding: 1em 2.5vw 3em; }
h2 { margin-top: 1.6em; }
.about { background: #f7f7f9; border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1.2em; }
.about h2 { margin: 0.2em 0 0.4em; font-size: 1.15em; }
.about dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1.2em; margin: 0; }
.about dt { font-weight: 600; }
.about dd { margin: 0; }
.about table { margin: 0.2em 0; }
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


@dataclass(frozen=True)
class SampleCell:
    caption: str
    src: str  # the crop, relative to the page
    detail: str  # its centre enlarged ZOOM times, relative to the page
    box: tuple[float, float, float, float]  # the detail's region in the crop: left, top, width, height (fractions)


@dataclass(frozen=True)
class SampleGrid:
    image: str  # the test image the crops are from
    cells: list[SampleCell]


# --- plots -------------------------------------------------------------------------------------


def method_styles(methods: list[str]) -> dict[str, Style]:
    """One colour and marker per method, the same in every plot, so a method is found at a glance."""
    colours = plt.get_cmap("tab10").colors
    return {m: {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)]}
            for i, m in enumerate(sorted(set(methods)))}


def _oracles(records: pd.DataFrame) -> set[str]:
    return set(records[records.uses_noise_level.astype(bool)].method)


def _save(fig: plt.Figure, out: Path, name: str) -> str:
    """Write ``name``.png and ``name``.svg under plots/; returns the SVG's path relative to ``out``."""
    folder = out / PLOTS
    folder.mkdir(parents=True, exist_ok=True)
    # bbox "tight" keeps the legend outside the axes and point names at the edge in the file.
    fig.savefig(folder / f"{name}.png", dpi=150, bbox_inches="tight")
    fig.savefig(folder / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})  # no date: same plot, same file
    plt.close(fig)
    return f"{PLOTS}/{name}.svg"


def _legend_outside(fig: plt.Figure, ax: plt.Axes, extra: list[Line2D] | None = None) -> None:
    """A legend right of the plots, where it cannot cover a curve."""
    handles, labels = ax.get_legend_handles_labels()
    extra = extra or []
    fig.legend(handles + extra, labels + [h.get_label() for h in extra], loc="outside right upper", frameon=False)


def _label_points(ax: plt.Axes, points: list[Point]) -> None:
    """Name points that have no line to follow, in their colour, beside their marker, trying a few sides
    so that a name covers no other name or marker (positions are read after one draw of the layout)."""
    if not points:
        return
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    radius = 8  # display px around a marker that a name must keep clear of
    placed = [Bbox.from_extents(px - radius, py - radius, px + radius, py + radius)
              for px, py in ax.transData.transform([(x, y) for _, x, y, _ in points])]
    for text, x, y, colour in points:
        for dx, dy, align in _LABEL_SPOTS:
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), ha=align, color=colour,
                                fontsize="small")
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:  # crowded everywhere: the first spot, overlapping
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=_LABEL_SPOTS[0][:2], color=colour,
                                fontsize="small")
            box = label.get_window_extent(renderer)
        placed.append(box)


def _scale_x(ax: plt.Axes, values: pd.Series) -> None:
    """Log scale when the budgets span more than ~2 decades (per-method official budgets), else linear."""
    positive = values[values > 0]
    if len(positive) and positive.max() / positive.min() > 100:
        ax.set_xscale("log")


def _first_level(text: object) -> tuple[str, float] | None:
    """The first drawn parameter of a record's noise level and its value, e.g. '{"sigma": 25.0}' -> ("sigma", 25.0)."""
    try:
        levels = json.loads(str(text))
    except json.JSONDecodeError:
        return None
    if not isinstance(levels, dict) or not levels:
        return None
    name, value = next(iter(levels.items()))
    return str(name), float(value)


def _level_label(family: str, param: str) -> str:
    """The noise-level axis with its unit, from the family's parameter description when it is registered."""
    found = get_registry().noise_families.get(family)
    described = {p.name: p.description for p in found.params} if found else {}
    unit = f" ({described[param]})" if param in described else ""
    return f"{family} {param} of the test image{unit}"


def _bin_means(rows: pd.DataFrame, bins: pd.Series, column: str) -> pd.DataFrame:
    return rows.groupby(bins.loc[rows.index], observed=True).agg(level=("level", "mean"), psnr=(column, "mean"))


def noise_figure(dataset: str, family: str, block: pd.DataFrame, styles: dict[str, Style], oracle: set[str]) -> plt.Figure:
    """Mean PSNR of each method, and of the noisy input, in bins of the test image's noise level."""
    bins = pd.cut(block.level, min(LEVEL_BINS, block.level.nunique()))
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    singles = []
    for method, rows in block.groupby("method"):
        means = _bin_means(rows, bins, "psnr")
        ax.plot(means.level, means.psnr, label=method_label(method, method in oracle), **styles[method])
        if len(means) == 1:
            singles.append((method_label(method, method in oracle), means.level.iloc[0], means.psnr.iloc[0],
                            styles[method]["color"]))
    noisy = block.drop_duplicates(["image", "repeat", "test_noise"])
    means = _bin_means(noisy, bins, "input_psnr")
    ax.plot(means.level, means.psnr, linestyle="--", marker=".", color="grey", label="noisy input")
    ax.set(xlabel=_level_label(family, block.param.iloc[0]), ylabel="PSNR (dB)",
           title=f"{dataset}, {family} noise: PSNR against noise level")
    _legend_outside(fig, ax)
    _label_points(ax, singles)
    return fig


def plot_psnr_vs_noise(records: pd.DataFrame, out: Path, styles: dict[str, Style] | None = None) -> dict[str, str]:
    """Per dataset and noise family: mean PSNR of each method in bins of the image's noise level."""
    styles = styles or method_styles(list(records.method))
    levels = records.noise_level.map(_first_level)
    frame = records.assign(param=levels.map(lambda p: p and p[0]), level=levels.map(lambda p: p and p[1]),
                           family=records.test_noise.str.split(":").str[0]).dropna(subset=["level"])
    plots = {}
    with plt.rc_context(_RC):
        for (dataset, family), block in frame.groupby(["dataset", "family"], sort=True):
            if block.level.nunique() < 2:
                continue  # a single fixed level: nothing to plot against
            fig = noise_figure(dataset, family, block, styles, _oracles(records))
            plots[f"{dataset}, {family}"] = _save(fig, out, f"psnr_vs_noise_{file_slug(dataset)}_{file_slug(family)}")
    return plots


def training_series(final: pd.Series, curve: pd.DataFrame) -> pd.DataFrame:
    """A method's test PSNR at its evaluated steps, ending at its final score (step, seconds, psnr);
    the final score, over the whole test set, stands in for a curve point at the same step."""
    points = curve.groupby("step").agg(seconds=("train_seconds", "mean"), psnr=("psnr", "mean")).reset_index()
    last = pd.DataFrame([{"step": final.iterations, "seconds": final.train_seconds, "psnr": final.psnr}])
    return pd.concat([points[points.step != final.iterations], last], ignore_index=True).sort_values("step")


def _untrained_lines(ax: plt.Axes, block: pd.DataFrame, styles: dict[str, Style], oracle: set[str]) -> None:
    """Methods without a training phase (BM3D, per-image DIP) and the noisy input as horizontal
    references: what training has to beat."""
    untrained = block[block.iterations <= 0].groupby("method").psnr.mean()
    for method, psnr in untrained.items():
        ax.axhline(psnr, linestyle=":", color=styles[method]["color"],
                   label=f"{method_label(method, method in oracle)} (no training phase)")
    ax.axhline(block.drop_duplicates(["image", "repeat"]).input_psnr.mean(), linestyle="--", color="grey",
               label="noisy input")


def _draw_series(ax: plt.Axes, x: str, series: dict[str, pd.DataFrame], styles: dict[str, Style],
                 oracle: set[str]) -> list[Point]:
    """Each method's PSNR against column ``x`` of its series: a line with markers, the final score a larger
    marker; returns the methods with a single point, to be named beside it (it has no line to be told by)."""
    singles: list[Point] = []
    for method, points in series.items():
        label = method_label(method, method in oracle)
        ax.plot(points[x], points.psnr, label=label, **styles[method])
        ax.plot(points[x].iloc[-1:], points.psnr.iloc[-1:], linestyle="none", markersize=10, markeredgecolor="black",
                **styles[method])
        if len(points) == 1:
            singles.append((label, points[x].iloc[0], points.psnr.iloc[0], styles[method]["color"]))
    _scale_x(ax, pd.concat([points[x] for points in series.values()]))
    ax.margins(x=0.12, y=0.08)  # room for the names of points at the edges
    return singles


def budget_figure(dataset: str, test_noise: str, block: pd.DataFrame, curves: pd.DataFrame, styles: dict[str, Style],
                  oracle: set[str]) -> plt.Figure:
    """PSNR against training steps and against training seconds: every trained method as a line with
    markers through its learning curve (if recorded) to its final score. When every method ran the
    same steps and no curve was recorded the steps panel would be one column of points, so only the
    time panel is drawn."""
    trained = block[block.iterations > 0]
    finals = trained.groupby("method").agg(iterations=("iterations", "max"), train_seconds=("train_seconds", "mean"),
                                           psnr=("psnr", "mean"))
    if curves.empty:
        curves = pd.DataFrame(columns=["method", "step", "train_seconds", "psnr"])
    series = {m: training_series(final, curves[curves.method == m]) for m, final in finals.iterrows()}
    by_steps = any(len(points) > 1 for points in series.values()) or finals.iterations.nunique() > 1
    columns = [("step", "training steps (iterations)")] * by_steps + [("seconds", "training time (s, evaluation excluded)")]
    fig, axes = plt.subplots(1, len(columns), figsize=(6 * len(columns) + 1.5, 4.6), sharey=True, squeeze=False,
                             layout="constrained")
    singles = []
    for ax, (x, xlabel) in zip(axes[0], columns):
        singles.append(_draw_series(ax, x, series, styles, oracle))
        _untrained_lines(ax, block, styles, oracle)
        ax.set(xlabel=xlabel)
    axes[0][0].set(ylabel="PSNR (dB)")
    title = f"{dataset}, {test_noise}: PSNR against training budget"
    if len(columns) > 1:
        fig.suptitle(title)
    else:  # a figure title would run into the legend beside a single panel
        axes[0][0].set_title(title)
    final_mark = Line2D([], [], linestyle="none", marker="o", markersize=10, markerfacecolor="white",
                        markeredgecolor="black", label="final score (large marker)")
    _legend_outside(fig, axes[0][0], [final_mark])
    for ax, points in zip(axes[0], singles):  # after the legend: it moves the axes
        _label_points(ax, points)
    return fig


def plot_psnr_vs_budget(records: pd.DataFrame, curves: pd.DataFrame, out: Path,
                        styles: dict[str, Style] | None = None) -> dict[str, str]:
    """Per dataset and test setting: PSNR against training steps and seconds (curves if recorded, final points always)."""
    styles = styles or method_styles(list(records.method))
    plots = {}
    with plt.rc_context(_RC):
        for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
            if not (block.iterations > 0).any():
                continue  # nothing was trained: no budget to plot against
            sel = curves[(curves.dataset == dataset) & (curves.test_noise == test_noise)] if not curves.empty else curves
            fig = budget_figure(dataset, test_noise, block, sel, styles, _oracles(records))
            plots[f"{dataset}, {test_noise}"] = _save(fig, out, f"psnr_vs_budget_{file_slug(dataset)}_{file_slug(test_noise)}")
    return plots


# --- sample crops ------------------------------------------------------------------------------


def zoom_detail(crop: Path, target: Path, factor: int = ZOOM) -> tuple[float, float, float, float]:
    """Save the central 1/``factor`` of ``crop``'s side enlarged ``factor`` times, nearest neighbour so that
    pixels stay pixels; returns the region (left, top, width, height) as fractions of the crop."""
    with Image.open(crop) as image:
        width, height = image.size
        w, h = max(1, width // factor), max(1, height // factor)
        left, top = (width - w) // 2, (height - h) // 2
        detail = image.crop((left, top, left + w, top + h)).resize((w * factor, h * factor), Image.Resampling.NEAREST)
    target.parent.mkdir(parents=True, exist_ok=True)
    detail.save(target, format="PNG")
    return left / width, top / height, w / width, h / height


def _found_crops(run_dirs: list[Path], dataset: str, test_noise: str) -> dict[str, Path]:
    """Crop name (noisy, clean, method) -> PNG, from every run that saved some."""
    found: dict[str, Path] = {}
    for run_dir in run_dirs:
        source = sample_dir(run_dir, dataset, test_noise)
        if source.is_dir():
            found.update({p.stem: p for p in sorted(source.glob("*.png"))})
    return found


def _is_image(column: pd.Series, image: str) -> pd.Series:
    """Rows of test image ``image``; records.csv reads numeric-looking ids back as numbers (Set12's "01" as 1)."""
    same = column.astype(str) == image
    if image.isdigit():
        same |= pd.to_numeric(column, errors="coerce") == int(image)
    return same


def _crop_caption(name: str, block: pd.DataFrame, image: str, oracle: set[str]) -> str:
    """e.g. 'bm3d† 29.44 dB': the PSNR of the very image and noise draw the crop is from."""
    same = block[_is_image(block.image, image) & (block.repeat == 0)]
    if name == NOISY and len(same):
        return f"noisy {same.input_psnr.iloc[0]:.2f} dB"
    mine = same[same.method == name]
    return f"{method_label(name, name in oracle)} {mine.psnr.iloc[0]:.2f} dB" if len(mine) else name


def collect_samples(run_dirs: list[Path], records: pd.DataFrame, out: Path) -> dict[tuple[str, str], SampleGrid]:
    """Copy the runs' example crops into ``out`` and make their details; (dataset, test noise) -> grid,
    ordered noisy, methods best first, clean."""
    grids: dict[tuple[str, str], SampleGrid] = {}
    oracle = _oracles(records)
    for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
        found = _found_crops(run_dirs, dataset, test_noise)
        if NOISY not in found:
            continue
        markers = [sample_dir(d, dataset, test_noise) / "image.txt" for d in run_dirs]
        image = next((m.read_text().strip() for m in markers if m.is_file()), "")
        ranked = list(block.groupby("method").psnr.mean().sort_values(ascending=False).index)
        target = sample_dir(out, dataset, test_noise)
        cells = []
        for name in [n for n in [NOISY, *ranked, CLEAN] if n in found]:
            target.mkdir(parents=True, exist_ok=True)
            crop = target / found[name].name
            shutil.copyfile(found[name], crop)
            box = zoom_detail(crop, target / ZOOM_DIR / crop.name)
            cells.append(SampleCell(_crop_caption(name, block, image, oracle), str(crop.relative_to(out)),
                                    str((target / ZOOM_DIR / crop.name).relative_to(out)), box))
        grids[(dataset, test_noise)] = SampleGrid(image, cells)
    return grids


# --- "About these numbers" ---------------------------------------------------------------------


def _by_run(runs: list[RunInfo], value: Callable[[RunInfo], str]) -> str:
    """One value when every run agrees, else each run's value with its folder."""
    values = {str(info.run_dir): value(info) for info in runs}
    distinct = list(dict.fromkeys(values.values()))
    if len(distinct) == 1:
        return distinct[0]
    return "; ".join(f"{v} ({run})" for run, v in values.items())


def budget_text(budget: dict) -> str:
    """e.g. '800 iterations, batch 4, 64×64 crops, width 32, lr rule official, init official, ...'."""
    full = _BUDGET_DEFAULTS | budget
    return ", ".join(form.format(full[key]) for key, form in _BUDGET_PARTS if full.get(key) is not None) or "not recorded"


def _test_text(budget: dict) -> str:
    images, crop = budget.get("test_images"), budget.get("test_crop")
    which = "all test images" if images is None else f"first {images} test images"
    return f"{which} of each set, " + ("full size" if crop is None else f"centre {crop}×{crop} crops")


def _engine_text(config: dict) -> str:
    engine = _ENGINE_DEFAULTS | (config.get("engine") or {})
    return (f"precision {engine['precision']}, channels-last {'on' if engine['channels_last'] else 'off'}, "
            f"torch.compile {engine['compile']}")


def _protocol_text(config: dict) -> str:
    protocol = config.get("protocol") or {}
    ident = str(protocol.get("id") or protocol.get("name") or "not recorded")
    return f"{ident}: {protocol['description']}" if protocol.get("description") else ident


def _machine_text(environment: dict) -> str:
    """Device and host of a run, from its environment.json (describe_environment)."""
    if not environment:
        return "not recorded"
    device = str(environment.get("device", "unknown device"))
    if device.startswith("cuda"):
        where = f"{environment.get('device_name')} ({device})"
    else:  # older runs recorded the CPU's architecture only, not its model
        threads = environment.get("torch_threads")
        model = environment.get("cpu_model") or environment.get("processor") or environment.get("device_name")
        bf16 = environment.get("cpu_bf16_flags")
        where = f"CPU {model}" + (f" ({', '.join(bf16)})" if bf16 else "") + (
            f", {threads} torch thread{'s' if threads != 1 else ''}" if threads else "")
    torch_version = (environment.get("versions") or {}).get("torch")
    extras = [environment.get("platform"), torch_version and f"torch {torch_version}",
              environment.get("python") and f"Python {environment['python']}"]
    return ", ".join([where, *[str(e) for e in extras if e]])


def _commit_text(environment: dict) -> str:
    commit = environment.get("git_commit")
    return str(commit)[:12] if commit else "not recorded"


def _days_text(runs: list[RunInfo]) -> str:
    days = sorted({info.made for info in runs})
    text = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    sources = sorted({info.made_from for info in runs if info.made_from})
    return f"{text} ({'; '.join(sources)})" if sources else text


def _method_budgets(runs: list[RunInfo], records: pd.DataFrame) -> dict[str, dict]:
    """Trained method -> its budget: the run's per-method budget ("budgets") where recorded, else the run's.
    A method trained under different budgets in different runs gets a row per run."""
    configs = {str(info.run_dir): info.config for info in runs}
    trained = records[records.iterations > 0].drop_duplicates(["method", "run_dir"])
    found: dict[str, dict[str, dict]] = {}
    for method, run_dir in zip(trained.method, trained.run_dir):
        config = configs.get(run_dir, {})
        budget = (config.get("budgets") or {}).get(method) or config.get("budget") or {}
        found.setdefault(method, {})[run_dir] = _BUDGET_DEFAULTS | budget
    budgets = {}
    for method, by_run in sorted(found.items()):
        distinct = {json.dumps(b, sort_keys=True, default=str): (run, b) for run, b in by_run.items()}
        for run, budget in distinct.values():
            budgets[method if len(distinct) == 1 else f"{method} ({run})"] = budget
    return budgets


def _budget_html(runs: list[RunInfo], records: pd.DataFrame) -> str:
    """The budget every trained method shared, then a row per method for the fields that differ."""
    budgets = _method_budgets(runs, records)
    if not budgets:
        return "no trained methods"
    first = next(iter(budgets.values()))
    keys = [key for key, _ in _BUDGET_PARTS]
    differ = [k for k in keys if any(b.get(k) != first.get(k) for b in budgets.values())]
    common = budget_text({k: first.get(k) for k in keys if k not in differ})
    if not differ:
        return html.escape(common)
    head = "".join(f"<th>{html.escape(_BUDGET_HEADS[k])}</th>" for k in differ)
    rows = "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{html.escape(str(b.get(k)))}</td>" for k in differ)
                   + "</tr>" for m, b in budgets.items())
    return (f"{html.escape(common)}; per method:<table class=\"budgets\"><thead><tr><th>method</th>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _list_html(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def about_html(runs: list[RunInfo], records: pd.DataFrame, mismatches: list[str]) -> str:
    """The compact block that says what the numbers were made under, at the top of the page."""
    rows = [("Protocol", html.escape(_by_run(runs, lambda i: _protocol_text(i.config)))),
            ("Profile", html.escape(_by_run(runs, lambda i: str(i.config.get("profile") or "not recorded")))),
            ("Training budget", _budget_html(runs, records)),
            ("Test set", html.escape(_by_run(runs, lambda i: _test_text(i.config.get("budget") or {})))),
            ("Training engine", html.escape(_by_run(runs, lambda i: _engine_text(i.config)))),
            ("Runs made", html.escape(_days_text(runs))),
            ("Code", "commit " + html.escape(_by_run(runs, lambda i: _commit_text(i.environment)))),
            ("Machine", html.escape(_by_run(runs, lambda i: _machine_text(i.environment)))),
            ("Run folders", ", ".join(f"<code>{html.escape(str(i.run_dir))}</code>" for i in runs))]
    if mismatches:
        rows.append(("Merged despite", _list_html(mismatches)))
    warnings = low_budget_warnings(records)  # the same cautions as the run's own tables
    if warnings:
        rows.append(("Caution", _list_html(warnings)))
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<section class="about"><h2>About these numbers</h2><dl>{items}</dl></section>'


# --- the page ----------------------------------------------------------------------------------


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
    marked = [str(m) for m in table["method"] if str(m).endswith(ORACLE_MARK)]
    if not marked:
        return ""
    return f'<p class="note oracle-note">{ORACLE_MARK} {html.escape(", ".join(marked))}: {html.escape(ORACLE_NOTE)}</p>'


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
               runs: list[RunInfo], mismatches: list[str] | None = None) -> Path:
    """Write ``index.html`` with its plots and sample crops into ``out``; returns its path."""
    if (out / SAMPLES).exists():
        shutil.rmtree(out / SAMPLES)  # crops of an earlier leaderboard in the same folder
    styles = method_styles(list(records.method))
    noise_plots = plot_psnr_vs_noise(records, out, styles)
    budget_plots = plot_psnr_vs_budget(records, curves, out, styles)
    grids = collect_samples([info.run_dir for info in runs], records, out)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>denoise-bench leaderboard</title><style>{_STYLE}</style></head><body><main>", "<h1>Leaderboard</h1>",
             about_html(runs, records, mismatches or []),
             "<p>Methods ranked by mean PSNR (dB) over test images; the gap column is the mean paired PSNR difference "
             "to the method above, with its 95% bootstrap interval over images (tie when it contains 0). "
             "Click a header to sort.</p>"]
    for (dataset, test_noise), table in tables.items():
        parts += [f"<h2>{html.escape(dataset)}, {html.escape(test_noise)}</h2>", _table_html(table), oracle_note(table)]
        if (dataset, test_noise) in grids:
            parts.append(_grid_html(grids[(dataset, test_noise)]))
    parts += _plots_html("PSNR against noise level", noise_plots, "PSNR vs noise level")
    parts += _plots_html("PSNR against training budget", budget_plots, "PSNR vs training steps and time")
    if (noise_plots or budget_plots) and _oracles(records):
        parts.append(f'<p class="note">{ORACLE_MARK} in a legend: {html.escape(ORACLE_NOTE)}</p>')
    parts += [f"<script>{_SORT_SCRIPT}</script>", "</main></body></html>"]
    path = out / "index.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
