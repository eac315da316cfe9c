"""The leaderboard's tables, from records merged across runs (``denoise_bench.report.leaderboard_merge``).

For every (dataset, test noise), in the order of :func:`setting_order` (by set, fixed levels before
ranges), one table ranking the experiments by mean PSNR: the mean of every
metric (PSNR, SSIM, then any a plugin registers, ``denoise_bench.metric``), how many images (and records) the mean is over, the training budget (iterations, training time,
device) and the supervision each had. Each row is compared with the one ranked just above it on their
common images (``significance``): the mean paired PSNR difference and its 95 % bootstrap interval; an
interval containing 0 is marked as a tie, one over fewer than five images with a footnote mark. Rows
scored on fewer of a table's images than the others (DIP on a stated subset) follow the ranked rows,
unranked. Per-image methods (no training: BM3D, DIP) carry their cost at test time, so every row
shows its mean test seconds per image, and per-image methods no training columns. Beside them: the
distance to the supervised U-Net, the published numbers, and the floor and implausible marks. Also
all paired differences, the learning-curve tables, and where jobs without numbers belong.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from io import StringIO

import pandas as pd

from denoise_bench.divergence import divergences, with_input_psnr
from denoise_bench.errors import BenchError
from denoise_bench.noise import NoiseSpec, parse_spec
from denoise_bench.reproduction import board_cell
from denoise_bench.report.convergence import CONVERGED_GAIN_DB, DEFINITION, gains_by_method
from denoise_bench.report.leaderboard_merge import name_experiments
from denoise_bench.registered_metrics import scored_metrics
from denoise_bench.migration import installed
from denoise_bench.plausibility import IMPLAUSIBLE_MARK, implausible
from denoise_bench.protocol import PROTOCOLS, protocol_by_id
from denoise_bench.results import (BELOW_FLOOR_MARK, FLOOR, NOT_TRAINED_HERE, below_floor, method_label, not_run_text,
                                   with_floor)
from denoise_bench.supervision import Supervision
from denoise_bench.report.significance import (FEW_IMAGES_MARK, MIN_INTERVAL_IMAGES, PairedDifference, all_pairs, compare,
                                        per_image_means)

PAPER_RESULTS = ("denoise_bench", "reference/paper_results.csv")


def read_paper_results() -> pd.DataFrame:
    """Published numbers (see ``denoise_bench/reference/README.md`` for their sources)."""
    text = resources.files(PAPER_RESULTS[0]).joinpath(PAPER_RESULTS[1]).read_text(encoding="utf-8")
    return pd.read_csv(StringIO(text))


GAP_COLUMN = "gap to the method above (dB, 95% CI)"
SUBSET_NOTE = ("Rows scored on only some of a table's images (a method run on a stated subset) follow the ranked "
               "rows, unranked: a mean over other images does not compare; their paired differences to the "
               "others are in the vs-unet column and in pairs.")
TEST_SECONDS = "test s/image"  # mean seconds to denoise one test image: all a per-image method costs
FEW_IMAGES_NOTE = (f"{FEW_IMAGES_MARK} interval over fewer than {MIN_INTERVAL_IMAGES} common images: too few for the "
                   "bootstrap to show the spread, so read the difference as indicative only.")
# The supervised upper reference: every method's distance to it, here and in the paper, is what
# carries over between budgets and training sets (absolute numbers do not).
REFERENCE_METHOD = "unet"
REFERENCE_GAP = f"vs {REFERENCE_METHOD} (dB)"
PAPER_GAP_SOURCE = "bsd300"  # the IDDP paper's Tables 1-2 report BSD300 only
PAPER_GAP_PROTOCOL = "paper"  # how it scored them (the reference data's protocol of those rows)
# The header says that the number is the paper's and where it comes from: it is no score of the row's
# run, nor on the table's own images (read beside it, "vs unet" is this run's).
PAPER_GAP = f"paper's gap to {REFERENCE_METHOD} (dB, {PAPER_GAP_SOURCE.upper()} colour, protocol {PAPER_GAP_PROTOCOL})"
PAPER_GAP_NOTE = (f"\"{PAPER_GAP}\": the IDDP paper's PSNR of the row's method minus that of its supervised U-Net at "
                  f"the row's test noise, from its Tables 1-2: {PAPER_GAP_SOURCE.upper()} colour images, trained on "
                  f"Waterloo, scored by protocol {PAPER_GAP_PROTOCOL} (8-bit luma). Beside a row of another set or "
                  f"protocol it is the published distance to the supervised reference, to read against \"{REFERENCE_GAP}\"; "
                  "it is no score on this table's images.")
PAPER_COLUMNS = ["paper psnr", "paper ssim", "psnr - paper"]  # absolute: only beside rows scored as the paper scored
BELOW_FLOOR = "below floor"  # a trained row whose mean PSNR is below the floor's (marked on pages)
IMPLAUSIBLE = "implausible"  # records of a row whose score no denoiser reaches (denoise_bench.plausibility)
# Each trained row's gain over the last doubling of its steps and whether that is converged
# (denoise_bench.report.convergence holds the definition).
CONVERGENCE = "last doubling (dB)"
REPRODUCED = "reproduced?"  # denoise_bench.reproduction
NO_CURVE = "no curve"  # a trained row whose run recorded no learning curve (made without --eval-every)
CONVERGENCE_NOTE = (f"`{CONVERGENCE}`: what the row gained over the last doubling of its training steps, the steps and "
                    f"what measured it in brackets; {DEFINITION}. \"{NO_CURVE}\": its run recorded no curve and no run "
                    f"of half its steps is on the board, so how far it is from converged is not measured. \"diverged at step N\": its curve fell below "
                    f"the noisy input after having been above it (denoise_bench.divergence). Threshold: {CONVERGED_GAIN_DB} dB.")


def _parsed_noise(text: str) -> NoiseSpec | None:
    """A records' noise spec read by the noise parser, or None for a family not installed here (records
    may name a plugin this machine lacks)."""
    from denoise_bench.plugins import get_registry  # lazily: boards are read without loading plugins first

    try:
        return parse_spec(text, get_registry().noise_families)
    except BenchError:
        return None


def noise_family(text: str) -> str:
    """The family of a records' noise spec: ``gaussian`` of ``gaussian:sigma=0-50``."""
    spec = _parsed_noise(text)
    return spec.name if spec is not None else text.partition(":")[0].strip().lower()


def setting_order(key: tuple[str, str]) -> tuple:
    """Where the table of (dataset, test noise) goes on a board: by dataset, then the fixed-level settings
    (``gaussian:sigma=25``, the headline numbers) before the ranges (``gaussian:sigma=0-50``), each by family
    and level. Sorting the text would put ``sigma=0-50`` first, and ``sigma=5`` after ``sigma=25``. A noise
    whose family is not installed here counts as a fixed level, placed by its text."""
    dataset, test_noise = key
    spec = _parsed_noise(test_noise)
    if spec is None:
        return (dataset, False, noise_family(test_noise), (), test_noise)
    levels = tuple((name, value.low, value.high) for name, value in spec.values)
    return (dataset, spec.is_range, spec.name, levels, test_noise)


def _in_setting_order(groups: Iterable[tuple[tuple[str, str], pd.DataFrame]]) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """``groupby(["dataset", "test_noise"])``'s groups in the order a board shows its tables (:func:`setting_order`)."""
    return sorted(groups, key=lambda group: setting_order(group[0]))


def _gap(diff: PairedDifference) -> str:
    """How far the method above leads, e.g. ``0.56 [0.20, 0.86]``, ``0.32 [-0.34, 0.95] tie``, or with
    :data:`FEW_IMAGES_MARK` after it when the interval is over too few images."""
    if diff.images == 0:
        return "no common images"
    if diff.nonfinite:
        return f"undefined: PSNR inf or NaN on {diff.nonfinite} of {diff.images} common images"
    if diff.images < 2:
        return f"{diff.mean:.2f} (1 image, no interval)"
    text = f"{diff.mean:.2f} [{diff.low:.2f}, {diff.high:.2f}]"
    text = f"{text} tie" if diff.tie else text
    return f"{text} {FEW_IMAGES_MARK}" if diff.few_images else text


def has_few_images_mark(table: pd.DataFrame) -> bool:
    """Whether a leaderboard table flags an interval over too few images (and needs the footnote)."""
    return GAP_COLUMN in table and table[GAP_COLUMN].astype(str).str.endswith(FEW_IMAGES_MARK).any()


def has_floor(table: pd.DataFrame) -> bool:
    """Whether a leaderboard table has the floor's row (and needs its note)."""
    return bool((table["method"] == FLOOR).any())


def _marked_rows(table: pd.DataFrame, column: str, mark: str, flagged: pd.Series) -> pd.DataFrame:
    """``table`` as pages show it: ``mark`` after the method of each ``flagged`` row, ``column`` (kept in
    leaderboard.csv, where a method keeps one name in every table) dropped."""
    marked = table["method"].where(~flagged, table["method"] + f" {mark}")
    return table.drop(columns=[column]).assign(method=marked)


def floor_marked(table: pd.DataFrame) -> pd.DataFrame:
    """A leaderboard table as pages show it: the ``below floor`` column turned into
    :data:`BELOW_FLOOR_MARK` after the method."""
    if BELOW_FLOOR not in table:
        return table
    return _marked_rows(table, BELOW_FLOOR, BELOW_FLOOR_MARK, table[BELOW_FLOOR].eq(True))


def has_implausible(table: pd.DataFrame) -> bool:
    """Whether a leaderboard table has a row with implausible records (and needs the note)."""
    return IMPLAUSIBLE in table and bool(table[IMPLAUSIBLE].fillna(0).gt(0).any())


def implausible_marked(table: pd.DataFrame) -> pd.DataFrame:
    """A leaderboard table as pages show it: :data:`IMPLAUSIBLE_MARK` after each method with implausible
    records; their count stays in leaderboard.csv."""
    if IMPLAUSIBLE not in table:
        return table
    return _marked_rows(table, IMPLAUSIBLE, IMPLAUSIBLE_MARK, table[IMPLAUSIBLE].fillna(0).gt(0))


def _budget_of(block: pd.DataFrame) -> pd.DataFrame:
    """Per row (experiment): iterations, training seconds (mean over jobs), device, supervision, runs."""
    jobs = block.drop_duplicates(["run_id", "method", "train_noise", "seed"])
    return jobs.groupby("method").agg(
        iterations=("iterations", "max"),
        train_seconds=("train_seconds", "mean"),
        device=("device", lambda s: ",".join(sorted(set(map(str, s))))),
        supervision=("supervision", "first"),
        oracle=("uses_noise_level", "max"),
        run=("run_id", lambda s: ",".join(sorted(set(map(str, s))))),
        train_noise=("train_noise", lambda s: ", ".join(sorted(set(map(str, s))))),
        base_method=("base_method", "first"),
        options=("shown_options", lambda s: ",".join(sorted(set(map(str, s))))),
    )


def _references(budget: pd.DataFrame) -> dict[str, str]:
    """Row -> the supervised reference row it is compared with: the U-Net (without options) trained on the
    same noise, or the only U-Net of the table; rows without one are left out."""
    units = budget[(budget.base_method == REFERENCE_METHOD) & (budget.options == "")]
    found = {}
    for row, info in budget.iterrows():
        same = units[units.train_noise == info.train_noise]
        chosen = same if len(same) == 1 else units if len(units) == 1 else None
        if chosen is not None:
            found[row] = chosen.index[0]
    return found


def leaderboard_tables(records: pd.DataFrame, paper: pd.DataFrame | None = None,
                       curves: pd.DataFrame | None = None,
                       controls: pd.DataFrame | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """(dataset, test noise) -> ranked table of its experiments (see :func:`name_experiments`). With the
    merged ``curves`` (named as the experiments are), every trained row says how far from converged it is;
    ``controls`` (named records of runs of half the steps, not ranked) measure it too."""
    records = with_floor(name_experiments(records))
    # The column wherever a curve or a run of half the steps measured some row (else the caveat says: not measured).
    gains = (gains_by_method(curves, records, controls) if curves is not None
             else (gains_by_method(None, records, controls) or None))
    diverged = divergences(with_input_psnr(curves, records)) if curves is not None else {}
    names = [metric.name for metric in scored_metrics(records)]
    decimals = {metric.name: metric.decimals for metric in scored_metrics(records)}
    tables = {}
    for (dataset, test_noise), block in _in_setting_order(records.groupby(["dataset", "test_noise"])):
        per_image = per_image_means(block, "psnr")
        ranked, subset = _ranked_and_subset(per_image)
        budget = _budget_of(block)
        references = _references(budget)
        test_seconds = block.groupby("method").seconds.mean()
        rows = []
        for rank, method in enumerate([*ranked, *subset]):
            rows_m = block[block.method == method]
            info = budget.loc[method]
            trained = bool(info.iterations > 0)  # a per-image method has no training, only its test-time cost
            # The paper's numbers are of each method as published: its default options.
            published = info.base_method if info.options == "" else None
            row = {
                "method": method_label(method, bool(info.oracle), info.supervision),
                "train noise": NOT_TRAINED_HERE if info.supervision == Supervision.PRETRAINED.value else info.train_noise,
                **{name: rows_m[name].mean() for name in names},  # psnr, ssim, then any metric a plugin adds
                "images": rows_m.image.nunique(),
                "records": len(rows_m),
                GAP_COLUMN: (_not_ranked(per_image, method) if method in subset
                             else _gap(compare(per_image, ranked[rank - 1], method)) if rank else ""),
                "supervision": info.supervision,
                "iterations": int(info.iterations) if trained else None,
                "train s": round(float(info.train_seconds), 1) if trained else None,
                TEST_SECONDS: round(float(test_seconds[method]), 3),
                "device": info.device,
                "run": info.run,
                REPRODUCED: board_cell(str(method), str(info.base_method)),
                BELOW_FLOOR: trained and below_floor(rows_m) is not None,
                IMPLAUSIBLE: int(implausible(rows_m).sum()),
            }
            if gains is not None:
                gain = gains.get(method)
                row[CONVERGENCE] = (None if not trained else diverged[method].cell() if method in diverged
                                    else gain.cell() if gain else NO_CURVE)
            if references:
                reference = references.get(method)
                row[REFERENCE_GAP] = (None if reference is None else 0.0 if reference == method
                                      else compare(per_image, method, reference).mean)
                if paper is not None:
                    row[PAPER_GAP] = _paper_gap(paper, test_noise, published) if published else None
            if paper is not None:
                ref = paper[(paper.dataset == dataset) & (paper.test_noise == test_noise) & (paper.method == published)]
                protocols = rows_m.get("protocol", pd.Series(dtype=object))
                ref = ref[ref.protocol.map(lambda source: scored_like_source(source, protocols, dataset)).astype(bool)]
                row["paper psnr"] = ref.psnr.iloc[0] if len(ref) else None
                row["paper ssim"] = ref.ssim.iloc[0] if len(ref) else None
                row["psnr - paper"] = row["psnr"] - ref.psnr.iloc[0] if len(ref) else None
            rows.append(row)
        noisy = block.drop_duplicates(["image", "repeat", "test_noise"])
        rows.append({"method": "noisy input", **{name: noisy[f"input_{name}"].mean() for name in names},
                     "images": noisy.image.nunique(), "records": len(noisy)})
        floor = noisy[noisy.floor_psnr.notna()]  # absent when no run of the table recorded it
        if not floor.empty:
            rows.append({"method": FLOOR, **{name: floor[f"floor_{name}"].mean() for name in names},
                         "images": floor.image.nunique(), "records": len(floor)})
        rounded = {**decimals, "psnr - paper": 2, REFERENCE_GAP: 2, PAPER_GAP: 2}
        table = pd.DataFrame(rows).round(rounded)
        # A tiny negative number rounds to -0.0, which reads as a sign where there is none: + 0.0 makes it 0.0.
        shown = [c for c in rounded if c in table and pd.api.types.is_float_dtype(table[c])]
        table[shown] = table[shown] + 0.0
        table = table.astype({"images": "Int64", "records": "Int64", "iterations": "Int64", IMPLAUSIBLE: "Int64"})  # the noisy row has none
        if not has_implausible(table):
            table = table.drop(columns=[IMPLAUSIBLE])
        if paper is not None and table["paper psnr"].isna().all():
            table = table.drop(columns=PAPER_COLUMNS)  # no published numbers here, or none scored alike
        if PAPER_GAP in table and table[PAPER_GAP].isna().all():
            table = table.drop(columns=[PAPER_GAP])
        if floor.empty:
            table = table.drop(columns=[BELOW_FLOOR])  # no floor to be below
        tables[(dataset, test_noise)] = _gaps_first(table)
    return tables


def _gaps_first(table: pd.DataFrame) -> pd.DataFrame:
    """The comparisons (to the row above, to the U-Net, the paper's) right after the scores, before
    the budget columns: on a page narrower than the table they are what must stay in view."""
    gaps = [c for c in (GAP_COLUMN, REFERENCE_GAP, PAPER_GAP, CONVERGENCE) if c in table]
    scores = [c for c in table.columns[:table.columns.get_loc(GAP_COLUMN)] if c not in gaps]
    return table[scores + gaps + [c for c in table.columns if c not in scores and c not in gaps]]


def _ranked_and_subset(per_image: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The table's rows in order: those scored on every image of the table ranked by mean PSNR, then
    those scored on fewer (DIP on a stated subset), by mean among themselves. A mean over other images
    is not comparable, and ranking it among the others would also pair the next row's gap with it on
    its few images only."""
    means, counts = per_image.mean(), per_image.notna().sum()
    full = counts == counts.max()
    by_mean = means.sort_values(ascending=False).index
    return [m for m in by_mean if full[m]], [m for m in by_mean if not full[m]]


def _not_ranked(per_image: pd.DataFrame, method: str) -> str:
    return f"not ranked: {int(per_image[method].notna().sum())} of {len(per_image)} images"


def scored_like_source(source_protocol: object, protocols: pd.Series, dataset: str) -> bool:
    """Whether records scored under ``protocols`` (ids, ``paper-v1``) score ``dataset`` as a published
    source did (its ``protocol`` in the reference data, a protocol name of this suite): the same clipping,
    quantisation and SSIM window, and for a colour dataset the same channels (``EvalProtocol.scores_like``).
    A dataset not installed here counts as colour; an unknown protocol never compares."""
    source = PROTOCOLS.get(str(source_protocol))
    ours = [protocol_by_id(str(p)) for p in set(protocols)]
    if source is None or not ours:
        return False
    colour = getattr(installed("dataset", dataset), "channels", 3) != 1
    return all(p is not None and p.scores_like(source, colour) for p in ours)


def paper_scoring_note(paper: pd.DataFrame) -> str:
    """How the published numbers were scored, from the reference data's ``protocol`` of each source."""
    named = dict.fromkeys(str(p) for p in paper[paper.dataset == PAPER_GAP_SOURCE].protocol)
    how = {"y": "on 8-bit BT.601 luma of colour images", "rgb": "on all channels"}
    said = [f"protocol `{p}`" + (f", {how[PROTOCOLS[p].color]}" if p in PROTOCOLS else "") for p in named]
    return (f"The IDDP paper scored {PAPER_GAP_SOURCE.upper()} as {' and '.join(said) or 'it does not say'}: "
            f"{', '.join(f'`{c}`' for c in PAPER_COLUMNS)} are shown only beside rows scored the same way "
            f"(`bench run --protocol paper` for colour sets), `{PAPER_GAP}` beside every row.")


def _paper_gap(paper: pd.DataFrame, test_noise: str, method: str) -> float | None:
    """The paper's PSNR of ``method`` minus its supervised U-Net's, at the same test noise (on BSD300)."""
    ref = paper[(paper.dataset == PAPER_GAP_SOURCE) & (paper.test_noise == test_noise)].set_index("method").psnr
    if method not in ref or REFERENCE_METHOD not in ref:
        return None
    return float(ref[method] - ref[REFERENCE_METHOD])


def pairs_table(records: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (dataset, test_noise), block in _in_setting_order(records.groupby(["dataset", "test_noise"])):
        # A pretrained method keeps its mark here too, so no pair reads as two self-supervised rows unmarked.
        supervision = block["supervision"] if "supervision" in block else pd.Series(None, block.index, dtype=object)
        shown = {m: method_label(m, False, s) for m, s in zip(block["method"], supervision)}
        for d in all_pairs(block, "psnr"):
            rows.append({"dataset": dataset, "test noise": test_noise, "method": shown.get(d.first, d.first),
                         "vs": shown.get(d.second, d.second),
                         "images": d.images, "mean psnr difference": round(d.mean, 3), "ci low": round(d.low, 3),
                         "ci high": round(d.high, 3), "tie": d.tie, "few images": d.few_images})
    return pd.DataFrame(rows)


def not_run_by_table(missing: pd.DataFrame, records: pd.DataFrame,
                     tables: dict[tuple[str, str], pd.DataFrame]) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """Where each job without numbers (:func:`~denoise_bench.results.not_run`) belongs: under every table
    of its dataset whose records share its training noise, else (no such table) in a list of their own."""
    placed: set[int] = set()
    under: dict[tuple[str, str], list[str]] = {}
    for dataset, test_noise in tables:
        trained_on = set(records[(records.dataset == dataset) & (records.test_noise == test_noise)].train_noise)
        here = missing[(missing.dataset == dataset) & missing.train_noise.isin(trained_on)]
        if not here.empty:
            under[(dataset, test_noise)] = [not_run_text(row, dataset=False) for _, row in here.iterrows()]
            placed.update(here.index)
    rest = [not_run_text(row) for i, row in missing.iterrows() if i not in placed]
    return under, rest


def curve_tables(curves: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(dataset, test noise) -> mean test PSNR at each evaluated step (rows) per method (columns),
    with each method's training seconds to reach that step in brackets: the compute-matched view. Where
    the points carry it, a last column gives the floor (box3 of the input) on the curves' images."""
    tables = {}
    for (dataset, test_noise), block in _in_setting_order(curves.groupby(["dataset", "test_noise"])):
        mean = block.groupby(["step", "method"]).agg(psnr=("psnr", "mean"), seconds=("train_seconds", "mean"))
        cells = mean.apply(lambda r: f"{r.psnr:.2f} ({r.seconds:.0f} s)", axis=1).unstack("method").fillna("")
        if block.floor_psnr.notna().any():
            cells[FLOOR] = block.groupby("step").floor_psnr.mean().map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        tables[(dataset, test_noise)] = cells
    return tables
