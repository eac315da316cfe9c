"""Leaderboard figures drawn with matplotlib: mean PSNR against the noise level of each test image, and
PSNR during training against steps and seconds, each saved as SVG for the page and PNG for papers,
with one colour and marker per method throughout and names beside points that have no line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from denoise_bench.plugins import get_registry  # noqa: E402
from denoise_bench.results import FLOOR, file_slug, method_label  # noqa: E402

PLOTS = "plots"
LEVEL_BINS = 6
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
Style = dict[str, Any]  # matplotlib line properties of one method
Point = tuple[str, float, float, Any]  # a point to name in a plot: name, x, y, colour

# Sizes chosen for a figure shown about 700-1400 px wide on the page and in a paper column.
_RC = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10, "axes.grid": True,
       "grid.alpha": 0.3, "lines.linewidth": 1.6, "lines.markersize": 6, "svg.hashsalt": "denoise-bench"}
# Where a point's name may go, tried in turn until it overlaps no earlier name: (dx, dy, alignment) in points.
_LABEL_SPOTS = ((8, -4, "left"), (-8, -4, "right"), (8, 6, "left"), (-8, 6, "right"), (8, -14, "left"),
                (-8, -14, "right"), (14, 14, "left"), (-14, 14, "right"), (14, -22, "left"), (-14, -22, "right"))


def method_styles(methods: list[str]) -> dict[str, Style]:
    """One colour and marker per method, the same in every plot, so a method is found at a glance."""
    # tab10 is a ListedColormap, whose colors is a tuple of RGB tuples; the stubs type get_cmap as any Colormap.
    colours = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    return {m: {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)]}
            for i, m in enumerate(sorted(set(methods)))}


def oracles(records: pd.DataFrame) -> set[str]:
    """The methods told the true noise level of each test image (marked with a dagger)."""
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
    fig.legend([*handles, *extra], labels + [h.get_label() for h in extra], loc="outside right upper", frameon=False)


def _label_points(ax: plt.Axes, points: list[Point]) -> None:
    """Name points that have no line to follow, in their colour, beside their marker, trying a few sides
    so that a name covers no other name or marker (positions are read after one draw of the layout)."""
    if not points:
        return
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]  # the Agg canvas has it (matplotlib.use above)
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
    with plt.rc_context(_RC):  # type: ignore[arg-type]  # stubs key rc dicts by a Literal of rc names
        for (dataset, family), block in frame.groupby(["dataset", "family"], sort=True):
            if block.level.nunique() < 2:
                continue  # a single fixed level: nothing to plot against
            fig = noise_figure(dataset, family, block, styles, oracles(records))
            plots[f"{dataset}, {family}"] = _save(fig, out, f"psnr_vs_noise_{file_slug(dataset)}_{file_slug(family)}")
    return plots


def training_series(final: pd.Series, curve: pd.DataFrame) -> pd.DataFrame:
    """A method's test PSNR at its evaluated steps (step, seconds, psnr): its learning curve where one
    was recorded, else its final score alone. A curve is scored on its own images throughout (often the
    first few of the set): joining it to a final score over the whole set would draw a change that is
    only the change of images."""
    if not curve.empty:
        return curve.groupby("step").agg(seconds=("train_seconds", "mean"), psnr=("psnr", "mean")).reset_index()
    return pd.DataFrame([{"step": final.iterations, "seconds": final.train_seconds, "psnr": final.psnr}])


def _untrained_lines(ax: plt.Axes, block: pd.DataFrame, styles: dict[str, Style], oracle: set[str]) -> None:
    """Methods without a training phase (BM3D, per-image DIP) and the noisy input as horizontal
    references: what training has to beat."""
    untrained = block[block.iterations <= 0].groupby("method").psnr.mean()
    for method, psnr in untrained.items():
        ax.axhline(psnr, linestyle=":", color=styles[method]["color"],
                   label=f"{method_label(method, method in oracle)} (no training phase)")
    ax.axhline(block.drop_duplicates(["image", "repeat"]).input_psnr.mean(), linestyle="--", color="grey",
               label="noisy input")


def _floor_line(ax: plt.Axes, block: pd.DataFrame, curves: pd.DataFrame) -> None:
    """The floor (box3 of the input) as a horizontal line: on the learning curves' images where the curve
    points carry it (the bar those curves have to clear), else over the records' images."""
    if "floor_psnr" in curves and curves.floor_psnr.notna().any():
        ax.axhline(curves.drop_duplicates("step").floor_psnr.mean(), linestyle="-.", color="black",
                   label=f"{FLOOR}, on the curves' images")
    elif "floor_psnr" in block and block.floor_psnr.notna().any():
        ax.axhline(block.drop_duplicates(["image", "repeat"]).floor_psnr.mean(), linestyle="-.", color="black",
                   label=FLOOR)


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
    markers through its learning curve where one was recorded (on the curve's images), else its final
    score as one point; the floor as a line (:func:`_floor_line`). When every method ran the
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
        _floor_line(ax, block, curves)
        ax.set(xlabel=xlabel)
    axes[0][0].set(ylabel="PSNR (dB)")
    title = f"{dataset}, {test_noise}: PSNR against training budget"
    if len(columns) > 1:
        fig.suptitle(title)
    else:  # a figure title would run into the legend beside a single panel
        axes[0][0].set_title(title)
    final_mark = Line2D([], [], linestyle="none", marker="o", markersize=10, markerfacecolor="white",
                        markeredgecolor="black", label="last point (large marker)")
    _legend_outside(fig, axes[0][0], [final_mark])
    for ax, points in zip(axes[0], singles):  # after the legend: it moves the axes
        _label_points(ax, points)
    return fig


def plot_psnr_vs_budget(records: pd.DataFrame, curves: pd.DataFrame, out: Path,
                        styles: dict[str, Style] | None = None) -> dict[str, str]:
    """Per dataset and test setting: PSNR against training steps and seconds (curves if recorded, final points always)."""
    styles = styles or method_styles(list(records.method))
    plots = {}
    with plt.rc_context(_RC):  # type: ignore[arg-type]  # stubs key rc dicts by a Literal of rc names
        for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
            if not (block.iterations > 0).any():
                continue  # nothing was trained: no budget to plot against
            sel = curves[(curves.dataset == dataset) & (curves.test_noise == test_noise)] if not curves.empty else curves
            fig = budget_figure(dataset, test_noise, block, sel, styles, oracles(records))
            plots[f"{dataset}, {test_noise}"] = _save(fig, out, f"psnr_vs_budget_{file_slug(dataset)}_{file_slug(test_noise)}")
    return plots
