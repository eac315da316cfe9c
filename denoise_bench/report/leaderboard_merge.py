"""Run folders merged for a leaderboard, and the experiment each record belongs to.

A row is one experiment (``denoise_bench.experiment``), never a method name: records are averaged
only within one (method, method options, training noise, training set, supervision, profile, budget,
engine, protocol, noise policy), over its seeds and runs. Rows carry the method's non-default options
(``iddp [stop_gradient=false]``) and their training noise; two rows of a table that would otherwise
read alike are told apart by what differs (``n2n (trained on gaussian:sigma=25)``).

Runs are merged only when their numbers are comparable: same evaluation protocol (noise seeds,
repeats, metric convention), same profile and budget (which also fixes the test subset), same engine
and training-noise policy. ``allow_mismatch`` merges anyway and lists the differences; the
experiments of such runs stay separate rows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from denoise_bench.report.condition_text import condition_difference
from denoise_bench.errors import BenchError
from denoise_bench.experiment import (CONDITIONS, Experiment, canonical_options, parse_canonical, row_name, run_conditions,
                                     shown_options)
from denoise_bench.migration import installed
from denoise_bench.results import RECORDS, part_folders, read_config, read_curves, read_environment, read_jobs, read_records

# What must agree between runs for their means to be comparable (the experiments' conditions).
COMPARABLE_FIELDS = CONDITIONS
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
    method_cls: Any = installed("method", method)  # a Method class, read by name without importing torch
    always = getattr(method_cls, "identity_options", ())
    given = parse_canonical(options)
    if not always or all(k in given for k in always):
        return options
    defaults = method_cls.options | method_cls.former_defaults
    return canonical_options({k: defaults[k] for k in always} | given)


def shown_method_options(method: str, options: str) -> str:
    """What a row label shows of an experiment's options: those that differ from the method's defaults now."""
    return shown_options(options, getattr(installed("method", method), "options", None))


def experiment_label(experiment: Experiment) -> str:
    """The row's name (:func:`~denoise_bench.experiment.row_name`: extensions join it) with the other options
    it shows, e.g. ``iddp [stop_gradient=false]`` or ``iddp+clip(1.0) (ours)``."""
    name, shown = row_name(experiment.method, experiment.method_options, installed("method", experiment.method))
    return f"{name} [{shown}]" if shown else name


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
    # A run whose every job was skipped (over --skip-longer-than) or failed has a records.csv of headers only:
    # left out of the concatenation, or its untyped columns would turn PSNR and SSIM into text. Its jobs still
    # list it under "not run".
    merged = pd.concat([r for r in records if not r.empty] or records[:1], ignore_index=True)
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
