"""Leaderboards merged from several run folders.

``bench leaderboard RUN_DIR... --out DIR`` reads the per-image records of each run and writes, for
every (dataset, test noise), one table ranking the methods by mean PSNR: mean PSNR and SSIM, how many
images (and records) the mean is over, the training budget (iterations, training time, device) and
the supervision each method had. Each method is compared with the one ranked just above it on their
common images (``significance``): the mean paired PSNR difference and its 95 % bootstrap interval;
an interval containing 0 is marked as a tie, one over fewer than five images with a footnote mark.
Rows scored on fewer of a table's images than the others (DIP on a stated subset) follow the ranked
rows, unranked.
All pairs are written to ``pairs.{csv,md}``. Per-image methods (no training: BM3D, DIP) carry their
cost at test time, so every method shows its mean test seconds per image, and per-image methods no
training columns. Jobs that gave no numbers (skipped or failed) are listed with their reasons under
the table they would be in.

A row is one experiment (``denoise_bench.experiment``), never a method name: records are averaged
only within one (method, method options, training noise, training set, supervision, profile, budget,
engine, protocol, noise policy), over its seeds and runs. Rows carry the method's non-default options
(``iddp [stop_gradient=false]``) and their training noise; two rows of a table that would otherwise
read alike are told apart by what differs (``n2n (trained on gaussian:sigma=25)``).

Runs are merged only when their numbers are comparable: same evaluation protocol (noise seeds,
repeats, metric convention), same profile and budget (which also fixes the test subset), same engine
and training-noise policy. ``allow_mismatch`` merges anyway and lists the differences at the top of
the markdown; the experiments of such runs stay separate rows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import StringIO
from importlib import resources
from pathlib import Path

import pandas as pd

from denoise_bench.condition_text import condition_difference
from denoise_bench.convergence import convergence_caveat
from denoise_bench.errors import BenchError
from denoise_bench.output_folders import claim_folder
from denoise_bench.plausibility import IMPLAUSIBLE_MARK, IMPLAUSIBLE_NOTE, implausible
from denoise_bench.experiment import (CONDITIONS, Experiment, canonical_options, parse_canonical, run_conditions,
                                     shown_options)
from denoise_bench.migration import installed
from denoise_bench.protocol import PROTOCOLS, protocol_by_id
from denoise_bench.results import (BELOW_FLOOR_MARK, CONFIG, FLOOR, FLOOR_NOTE, NOT_TRAINED_HERE, ORACLE_MARK,
                                   PRETRAINED_NOTE, RECORDS, below_floor, has_pretrained,
                                   low_budget_warnings, method_label, not_run, not_run_text, nothing_ran, part_folders,
                                   read_config, read_curves, read_environment, read_jobs, read_records, with_floor, write_frame,
                                   write_json, write_text_atomic)
from denoise_bench.supervision import Supervision
from denoise_bench.significance import (FEW_IMAGES_MARK, MIN_INTERVAL_IMAGES, PairedDifference, all_pairs, compare,
                                        per_image_means)

# What must agree between runs for their means to be comparable (the experiments' conditions).
COMPARABLE_FIELDS = CONDITIONS
PAPER_RESULTS = ("denoise_bench", "reference/paper_results.csv")
LEADERBOARD_INPUTS = "leaderboard.json"  # the runs a leaderboard was made from; every leaderboard folder has it
RUN_STAMP = re.compile(r"(\d{8}-\d{6})")  # the default run folder name, runs/<UTC stamp>


@dataclass(frozen=True)
class RunInfo:
    """What the page tells about one merged run: its config, where it ran and when."""

    run_dir: Path
    config: dict
    environment: dict  # empty when the run folder has no environment.json
    made: str  # the day the run was made, e.g. "2025-03-01"
    made_from: str  # where that day was read from when the run did not record it ("" when it did)


@dataclass
class MergedRuns:
    records: pd.DataFrame
    jobs: pd.DataFrame
    curves: pd.DataFrame  # learning curves of runs made with --eval-every (may be empty)
    mismatches: list[str]  # human-readable differences that were allowed
    runs: list[RunInfo] = field(default_factory=list)


def _run_day(run_dir: Path, config: dict, environment: dict) -> tuple[str, str]:
    """(day, source): the day environment.json was recorded, else the UTC stamp of a default run
    folder name, else the newest records file's time (older runs did not record their date)."""
    recorded = str(environment.get("recorded_at") or "")
    if recorded[:10].count("-") == 2:
        return recorded[:10], ""
    stamp = RUN_STAMP.search(str(config.get("run_id") or run_dir.name))
    if stamp:
        try:
            return datetime.strptime(stamp.group(1), "%Y%m%d-%H%M%S").strftime("%Y-%m-%d"), "from the run folder name"
        except ValueError:
            pass  # digits that only look like a stamp
    paths = [p for p in [run_dir / RECORDS, *(part / RECORDS for part in part_folders(run_dir))] if p.is_file()]
    if not paths:
        return "not recorded", ""
    newest = datetime.fromtimestamp(max(p.stat().st_mtime for p in paths), timezone.utc)
    return newest.strftime("%Y-%m-%d"), f"{RECORDS} last written; runs do not record their date"


def _run_info(run_dir: Path, config: dict) -> RunInfo:
    environment = read_environment(run_dir)
    return RunInfo(run_dir, config, environment, *_run_day(run_dir, config, environment))


def _identity_form(method: str, options: str) -> str:
    """Recorded options as records write them today: a method's ``identity_options`` that a record made
    before they were written lacks take the defaults that record was made under (``former_defaults``),
    so that it never reads as made under today's defaults."""
    method_cls = installed("method", method)
    always = getattr(method_cls, "identity_options", ())
    given = parse_canonical(options)
    if not always or all(k in given for k in always):
        return options
    defaults = method_cls.options | method_cls.former_defaults  # type: ignore[union-attr]
    return canonical_options({k: defaults[k] for k in always} | given)


def shown_method_options(method: str, options: str) -> str:
    """What a row label shows of an experiment's options: those that differ from the method's defaults now."""
    return shown_options(options, getattr(installed("method", method), "options", None))


def experiment_label(experiment: Experiment) -> str:
    """The method with the options it shows, e.g. ``iddp [stop_gradient=false]``."""
    shown = shown_method_options(experiment.method, experiment.method_options)
    return f"{experiment.method} [{shown}]" if shown else experiment.method


def with_experiments(records: pd.DataFrame, config: dict | None) -> pd.DataFrame:
    """The records of one run (read in today's results format) with the key of their ``experiment``;
    ``config`` is the run's ``config.json``, None for records made in memory (no run's conditions, and
    no options or training set where they say none)."""
    records = records.copy()
    if records.empty:
        return records.assign(experiment=pd.Series(dtype=str))
    if config is None:
        records = records.assign(**{c: records[c].astype(object).where(records[c].notna(), "") if c in records else ""
                                    for c in ("method_options", "training_set")})
    upgraded = {pair: _identity_form(*pair) for pair in set(zip(records.method, records.method_options.astype(str)))}
    records["method_options"] = [upgraded[pair] for pair in zip(records.method, records.method_options.astype(str))]
    columns = ["method", "method_options", "train_noise", "training_set", "supervision"]
    keys = {}
    for values in records[columns].astype(str).drop_duplicates().itertuples(index=False):
        conditions = run_conditions(config, values[0]) if config is not None else dict.fromkeys(CONDITIONS, "")
        keys[tuple(values)] = Experiment(*values, **conditions).key
    records["experiment"] = [keys[tuple(v)] for v in records[columns].astype(str).itertuples(index=False)]
    return records


def _without(frame: pd.DataFrame, methods: set[str]) -> pd.DataFrame:
    return frame[~frame["method"].isin(methods)] if methods and not frame.empty else frame


def merge_runs(run_dirs: list[Path], allow_mismatch: bool = False,
               exclude: dict[str, list[str]] | None = None) -> MergedRuns:
    """Records and jobs of every run, refusing incomparable or overlapping runs."""
    if not run_dirs:
        raise BenchError("no run folders given")
    if len(set(map(Path.resolve, run_dirs))) != len(run_dirs):
        raise BenchError("the same run folder is given twice")
    runs = [_run_info(run_dir, read_config(run_dir)) for run_dir in run_dirs]
    configs = [run_conditions(info.config) for info in runs]
    mismatches = [f"{key} of {run_dir} differs from {run_dirs[0]}: {condition_difference(config[key], configs[0][key])}"
                  for run_dir, config in zip(run_dirs[1:], configs[1:]) for key in COMPARABLE_FIELDS
                  if config[key] != configs[0][key]]
    exclude = exclude or {}
    unknown = set(exclude) - {str(d) for d in run_dirs}
    if unknown:
        raise BenchError(f"--exclude names run(s) not given: {', '.join(sorted(unknown))}")
    records, jobs, curves = [], [], []
    for run_dir, info in zip(run_dirs, runs):
        left_out = set(exclude.get(str(run_dir), []))  # e.g. a diagnostic training that a later run redid
        run_records = with_experiments(_without(read_records(run_dir), left_out), info.config)
        run_records["run_dir"] = str(run_dir)
        records.append(run_records)
        run_jobs = _without(read_jobs(run_dir), left_out)
        if not run_jobs.empty:
            jobs.append(run_jobs.assign(run_dir=str(run_dir)))
        run_curves = _without(read_curves(run_dir), left_out)
        if not run_curves.empty:
            curves.append(run_curves.assign(run_dir=str(run_dir)))
    if mismatches and not allow_mismatch:
        raise BenchError("runs are not comparable (pass --allow-mismatch to merge anyway): " + "; ".join(mismatches))
    merged = pd.concat(records, ignore_index=True)
    _check_one_set_per_name(merged)
    owners = merged.groupby(["experiment", "dataset", "seed"])["run_dir"].nunique()
    overlap = owners[owners > 1]
    if not overlap.empty:
        key, dataset, seed = overlap.index[0]
        experiment = Experiment.from_key(key)
        raise BenchError(f"{experiment_label(experiment)} on {dataset} (trained on {experiment.train_noise}, seed {seed}) appears "
                         f"in more than one run; give each job once")
    return MergedRuns(merged, pd.concat(jobs, ignore_index=True) if jobs else pd.DataFrame(),
                      pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(), mismatches, runs)


def _check_one_set_per_name(records: pd.DataFrame) -> None:
    """Refuse records that scored different test images under one dataset name (two folders both called
    ``data``; a named set whose files differ): ranked together, their images would be paired by name but
    be different pictures. Records from before digests were recorded (``dataset_digest`` empty) are taken
    to be of the set their name says. Captured noise is scored on a set's captures, synthetic noise on its
    clean images: their digests differ and are compared apart (by the test noise's family)."""
    known = records[records.dataset_digest.notna()]
    family = known.test_noise.astype(str).str.split(":").str[0]
    sets = known.assign(family=family).drop_duplicates(["dataset", "family", "dataset_digest"])
    for dataset, found in sets.groupby("dataset", sort=True):
        clash = found[found.duplicated("family", keep=False)]
        if not clash.empty:
            first, other = clash.iloc[0], clash.iloc[1]
            raise BenchError(f"dataset {dataset} is not the same test images in {first.run_dir} and {other.run_dir} "
                             f"(digests {first.dataset_digest} and {other.dataset_digest}): two sets under one name are "
                             "never ranked together; run one under a name of its own (a folder: --dataset-option name=NAME)")


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
# The column says where its numbers come from: they are not scores on the table's own images.
PAPER_GAP = f"paper vs {REFERENCE_METHOD} (dB, {PAPER_GAP_SOURCE.upper()} colour, protocol {PAPER_GAP_PROTOCOL})"
PAPER_GAP_NOTE = (f"\"{PAPER_GAP}\": the IDDP paper's PSNR of the row's method minus that of its supervised U-Net at "
                  f"the row's test noise, from its Tables 1-2: {PAPER_GAP_SOURCE.upper()} colour images, trained on "
                  f"Waterloo, scored by protocol {PAPER_GAP_PROTOCOL} (8-bit luma). Beside a row of another set or "
                  f"protocol it is the published distance to the supervised reference, to read against \"{REFERENCE_GAP}\"; "
                  "it is no score on this table's images.")
PAPER_COLUMNS = ["paper psnr", "paper ssim", "psnr - paper"]  # absolute: only beside rows scored as the paper scored
BELOW_FLOOR = "below floor"  # a trained row whose mean PSNR is below the floor's (marked on pages)
IMPLAUSIBLE = "implausible"  # records of a row whose score no denoiser reaches (denoise_bench.plausibility)


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


def _differing(group: list[Experiment]) -> dict[str, str]:
    """experiment key -> what tells it from the others of ``group`` (same method and options), e.g.
    ``trained on gaussian:sigma=25`` or ``iterations=30``; budgets and engines name only the fields that differ."""
    described: dict[str, list[str]] = {e.key: [] for e in group}
    for name in ("train_noise", "training_set", "supervision", *CONDITIONS):
        if len({getattr(e, name) for e in group}) < 2:
            continue
        if name in ("budget", "engine", "protocol"):
            values = [json.loads(getattr(e, name)) or {} for e in group]
            values = [v if isinstance(v, dict) else {name: v} for v in values]
            changing = sorted(k for k in set().union(*values) if len({json.dumps(v.get(k)) for v in values}) > 1)
            for e, v in zip(group, values):
                described[e.key].append(", ".join(f"{k}={v.get(k)}" for k in changing))
            continue
        prefix = {"train_noise": "trained on", "training_set": "training set",
                  "noise_policy": "noise policy"}.get(name, name.replace("_", " "))
        for e in group:
            described[e.key].append(f"{prefix} {getattr(e, name) or 'none'}")
    return {key: "; ".join(parts) for key, parts in described.items()}


def name_experiments(records: pd.DataFrame) -> pd.DataFrame:
    """Records whose ``method`` names their experiment's row (``base_method`` keeps the method's name).

    The row is the method with the options that differ from its defaults now (``iddp [stop_gradient=false]``;
    ``shown_options`` keeps them); where
    experiments of a table (dataset, test noise) share that, what differs between them follows in
    brackets, e.g. ``n2n (trained on gaussian:sigma=25)``. Records without an ``experiment`` column
    (made in memory rather than read from run folders) are read as from a run without a config.
    """
    if "base_method" in records:
        return records
    records = records if "experiment" in records else with_experiments(records, None)
    names: dict[tuple[str, str, str], str] = {}
    shown: dict[str, str] = {}
    for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
        experiments = [Experiment.from_key(k) for k in dict.fromkeys(block.experiment)]
        by_label: dict[str, list[Experiment]] = {}
        for e in experiments:
            shown[e.key] = shown_method_options(e.method, e.method_options)
            by_label.setdefault(experiment_label(e), []).append(e)
        for label, group in by_label.items():
            told = _differing(group) if len(group) > 1 else {}
            for e in group:
                names[(dataset, test_noise, e.key)] = f"{label} ({told[e.key]})" if told.get(e.key) else label
    named = [names[k] for k in zip(records.dataset, records.test_noise, records.experiment)]
    return records.assign(base_method=records.method, method=named, shown_options=records.experiment.map(shown))


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


def leaderboard_tables(records: pd.DataFrame, paper: pd.DataFrame | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """(dataset, test noise) -> ranked table of its experiments (see :func:`name_experiments`)."""
    records = with_floor(name_experiments(records))
    tables = {}
    for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
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
                "psnr": rows_m.psnr.mean(),
                "ssim": rows_m.ssim.mean(),
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
                BELOW_FLOOR: trained and below_floor(rows_m) is not None,
                IMPLAUSIBLE: int(implausible(rows_m).sum()),
            }
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
        rows.append({"method": "noisy input", "psnr": noisy.input_psnr.mean(), "ssim": noisy.input_ssim.mean(),
                     "images": noisy.image.nunique(), "records": len(noisy)})
        floor = noisy[noisy.floor_psnr.notna()]  # absent when no run of the table recorded it
        if not floor.empty:
            rows.append({"method": FLOOR, "psnr": floor.floor_psnr.mean(), "ssim": floor.floor_ssim.mean(),
                         "images": floor.image.nunique(), "records": len(floor)})
        table = pd.DataFrame(rows).round({"psnr": 2, "ssim": 4, "psnr - paper": 2, REFERENCE_GAP: 2, PAPER_GAP: 2})
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
    gaps = [c for c in (GAP_COLUMN, REFERENCE_GAP, PAPER_GAP) if c in table]
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
    for (dataset, test_noise), block in records.groupby(["dataset", "test_noise"], sort=True):
        for d in all_pairs(block, "psnr"):
            rows.append({"dataset": dataset, "test noise": test_noise, "method": d.first, "vs": d.second,
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


def name_curves(curves: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Curve points whose ``method`` names their experiment's row, as :func:`name_experiments` named the
    records of the same run, method, training noise, dataset and test noise: two runs of one method
    with different options are two curves, never one averaged. A curve whose job left no records (it
    did not finish) is named by its method and run folder."""
    if curves.empty:
        return curves
    key = ["run_dir", "base_method", "train_noise", "dataset", "test_noise"]
    names = records.drop_duplicates(key).set_index(key).method
    found = [names.get(k) for k in zip(curves.run_dir, curves.method, curves.train_noise, curves.dataset, curves.test_noise)]
    named = [n if isinstance(n, str) else f"{m} ({run}, unfinished)" for n, m, run in zip(found, curves.method, curves.run_dir)]
    return curves.assign(base_method=curves.method, method=named)


def curve_tables(curves: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(dataset, test noise) -> mean test PSNR at each evaluated step (rows) per method (columns),
    with each method's training seconds to reach that step in brackets: the compute-matched view. Where
    the points carry it, a last column gives the floor (box3 of the input) on the curves' images."""
    tables = {}
    for (dataset, test_noise), block in curves.groupby(["dataset", "test_noise"], sort=True):
        mean = block.groupby(["step", "method"]).agg(psnr=("psnr", "mean"), seconds=("train_seconds", "mean"))
        cells = mean.apply(lambda r: f"{r.psnr:.2f} ({r.seconds:.0f} s)", axis=1).unstack("method").fillna("")
        if block.floor_psnr.notna().any():
            cells[FLOOR] = block.groupby("step").floor_psnr.mean().map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        tables[(dataset, test_noise)] = cells
    return tables


def write_leaderboard(run_dirs: list[Path], out: Path, allow_mismatch: bool = False, paper: bool = True,
                      html: bool = True, exclude: dict[str, list[str]] | None = None) -> str:
    """Merge the runs and write leaderboard.{csv,md}, pairs.{csv,md} and (``html``) the page with its
    plots to ``out``; returns the markdown. ``exclude`` maps a run folder to methods left out of it."""
    exclude = exclude or {}
    if (out / CONFIG).is_file():  # its samples/ and tables are the run's own
        raise BenchError(f"--out {out} is a run folder; a leaderboard is written into a folder of its own")
    claim_folder(out, LEADERBOARD_INPUTS, "leaderboard folder")  # an earlier leaderboard's is rewritten
    merged = merge_runs(run_dirs, allow_mismatch, exclude)
    records = merged.records[merged.records.psnr.notna()]
    if records.empty:
        why = nothing_ran(merged.jobs)
        raise BenchError("the runs hold no evaluated records" + (f" ({why})" if why else ""))
    records = name_experiments(records)  # one row per experiment, in the tables, pairs and plots alike
    curves = name_curves(merged.curves, records)
    tables = leaderboard_tables(records, read_paper_results() if paper else None)
    missing = not_run(merged.jobs, merged.records)
    under, unplaced = not_run_by_table(missing, records, tables)
    lines = ["# Leaderboard", "", "Runs: " + ", ".join(f"`{d}`" for d in run_dirs), ""]
    protocols = ", ".join(sorted(records.protocol.unique()))
    lines += [f"Protocol {protocols}. Methods ranked by mean PSNR; each is compared with the one above it on their "
              "common images: mean paired PSNR difference and 95 % bootstrap interval over images "
              f"(\"tie\" when it contains 0). {SUBSET_NOTE}", ""]
    lines += [f"> **Warning:** {text}" for text in low_budget_warnings(records)]
    lines += [f"> **How far from converged:** {convergence_caveat(records, curves)}", ""]
    if exclude:
        lines += ["Left out: " + "; ".join(f"{', '.join(m)} of `{run}`" for run, m in exclude.items()), ""]
    if merged.mismatches:
        lines += ["**Merged despite differences:**", ""] + [f"* {m}" for m in merged.mismatches] + [""]
    frames = []
    for (dataset, test_noise), table in tables.items():
        shown = implausible_marked(floor_marked(table))
        shown = shown.astype(object).where(shown.notna(), "")
        lines += [f"## {dataset}, {test_noise}", "", shown.to_markdown(index=False), ""]
        if (dataset, test_noise) in under:
            lines += ["Not run (no numbers):", ""] + [f"- {text}" for text in under[(dataset, test_noise)]] + [""]
        frames.append(table.assign(dataset=dataset, test_noise=test_noise))
    if unplaced:
        lines += ["## Not run (no numbers in any table)", ""] + [f"- {text}" for text in unplaced] + [""]
    if any(has_few_images_mark(table) for table in tables.values()):
        lines += [FEW_IMAGES_NOTE, ""]
    if any(has_floor(table) for table in tables.values()):
        lines += [FLOOR_NOTE, ""]
    if any(has_implausible(table) for table in tables.values()):
        lines += [IMPLAUSIBLE_NOTE, ""]
    if any(has_pretrained(table["method"]) for table in tables.values()):
        lines += [PRETRAINED_NOTE, ""]
    lines.append(f"{ORACLE_MARK} told the true noise level of each test image. `{REFERENCE_GAP}`: mean paired PSNR "
                 "difference to the supervised U-Net on common images. "
                 f"`{TEST_SECONDS}`: mean seconds to denoise one test image, all that a per-image method (no "
                 "iterations, no training time) costs.")
    if any(PAPER_GAP in table for table in tables.values()):
        lines += ["", PAPER_GAP_NOTE]
    published = read_paper_results() if paper else None
    if published is not None and any(PAPER_GAP in table or dataset in set(published.dataset)
                                     for (dataset, _), table in tables.items()):
        lines += ["", paper_scoring_note(published)]
    if not curves.empty:
        lines += ["", "# Learning curves", "", "Mean test PSNR at training steps, with the training seconds spent to reach "
                  "them (evaluation time excluded): compare methods at equal iterations or equal time.", ""]
        for (dataset, test_noise), table in curve_tables(curves).items():
            lines += [f"## {dataset}, {test_noise}", "", table.to_markdown(), ""]
        written = curves.drop(columns="run_dir")
        # Like its tables, the file has the floor's column only where some point has the floor.
        write_frame(out / "curves.csv", written.drop(columns="floor_psnr") if written.floor_psnr.isna().all() else written)
    markdown = "\n".join(lines) + "\n"
    # What the leaderboard was made from, so that it can be checked and re-made.
    inputs = {"runs": [str(d) for d in run_dirs], "allow_mismatch": allow_mismatch, "paper": paper}
    write_json(out / LEADERBOARD_INPUTS, inputs | ({"exclude": exclude} if exclude else {}))
    write_text_atomic(out / "leaderboard.md", markdown)
    write_frame(out / "leaderboard.csv", pd.concat(frames, ignore_index=True))
    pairs = pairs_table(records)
    write_frame(out / "pairs.csv", pairs)
    few = "few images" in pairs and bool(pairs["few images"].any())
    write_text_atomic(out / "pairs.md", "# Paired PSNR differences (95 % bootstrap intervals over images)\n\n"
                      + pairs.to_markdown(index=False) + "\n"
                      + (f"\n`few images`: over fewer than {MIN_INTERVAL_IMAGES} common images, too few for the "
                         "interval to mean much.\n" if few else ""))
    if html:
        from denoise_bench.report import write_html  # matplotlib is imported only when a page is made

        write_html(out, {key: implausible_marked(floor_marked(table)) for key, table in tables.items()}, records, curves, merged.runs,
                   under, unplaced)
    return markdown
