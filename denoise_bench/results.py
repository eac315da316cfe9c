"""Run folders: per-image records, and the paper-style tables made from them.

Layout of a run folder::

    config.json        the resolved request (methods, noise, datasets, budget, protocol, seeds)
    environment.json   versions, device, git commit
    records.csv        one row per evaluated image (and repeat) of every finished job
    pending.csv        the rows of jobs still being scored, one saved per image as it is scored, moved
                       to records.csv when the job is done: a resumed job scores only the rest (a
                       per-image method such as DIP fits for an hour per image)
    jobs.csv           one row per (method, dataset, train noise, seed): done / failed / skipped, and why
    curves.csv         with --eval-every: mean test PSNR/SSIM at training steps (learning curves)
    checkpoints/       trained state of each job
    parts/<unit>/      records/jobs/curves of a job running under an executor (``--executor``); folded
                       into the files above when the grid completes or is resumed, and read with them
                       until then, so a grid whose jobs are still running can be tabulated; its .lock
                       is held by the job while it runs
    tables/psnr.{csv,md}, tables/ssim.{csv,md}
    .lock              held by the run writing the folder; names it (``denoise_bench.run.lock``)

Tables are laid out like the IDDP paper's Table 1: one block per (dataset, training noise), rows are
test settings, columns are methods, plus the noisy input and the floor for reference. The floor is a
3x3 box filter of the same noisy inputs (``evaluate.floor_scores``), the trivial smoother every learned
method must beat; a trained method whose mean PSNR is below it is marked and warned about.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

from denoise_bench.atomic import write_text_atomic
from denoise_bench.errors import BenchError
from denoise_bench.divergence import divergence_warnings
from denoise_bench.evaluate import FLOOR_KERNEL
from denoise_bench.experiment import row_name
from denoise_bench.registered_metrics import added_record_columns, curve_columns, metrics, record_columns, scored_metrics
from denoise_bench.migration import (checked_version, installed, stored_json, upgrade_config, upgrade_environment,
                                     upgrade_rows)
from denoise_bench.plausibility import IMPLAUSIBLE_MARK, IMPLAUSIBLE_NOTE, implausible, implausible_warnings
from denoise_bench.profiles import SHORT_BUDGET_WARNINGS
from denoise_bench.protocol import protocol_by_id
from denoise_bench.supervision import Supervision
from denoise_bench.schema import CURVE_KEY, JOB_KEY, RECORD_KEY, TEXT_COLUMNS

CONFIG = "config.json"
ENVIRONMENT = "environment.json"  # from environment.describe_environment
CHECKPOINTS = "checkpoints"
RECORDS = "records.csv"
JOBS = "jobs.csv"
PENDING = "pending.csv"
CURVES = "curves.csv"  # learning curves: mean test PSNR/SSIM during training (runs with --eval-every)
PARTS = "parts"
TABLES = "tables"
NOISY_INPUT = "noisy input"
FLOOR = f"box{FLOOR_KERNEL} of input (floor)"
# What fixes a noisy input and how it is scored: records that share these share the floor.
FLOOR_INPUT = ["protocol", "dataset", "test_noise", "image", "repeat"]
ORACLE_MARK = "†"  # methods told the true noise level
class JobStatus(str, Enum):
    """A job's status in ``jobs.csv`` (write ``.value``: the file holds the plain text)."""

    DONE = "done"  # it gave numbers
    FAILED = "failed"  # it raised or its process died; run again by a resumed run
    SKIPPED = "skipped"  # the method cannot run on the noise or data (the reason is recorded)


PRETRAINED_MARK = "‡"  # methods that arrive trained on external clean data (Supervision.PRETRAINED)
PRETRAINED_NOTE = (f"{PRETRAINED_MARK} pretrained on external clean data, not trained here (a training noise beside "
                   "it is the run's, not its own): not one of the self-supervised methods.")
BELOW_FLOOR_MARK = "↓"  # a trained method whose mean PSNR is below the floor
FLOOR_NOTE = (f"\"{FLOOR}\": a {FLOOR_KERNEL}x{FLOOR_KERNEL} box filter of the same noisy inputs, scored like an "
              f"estimate: the trivial smoother every learned method must beat. {BELOW_FLOOR_MARK} marks a trained "
              "method whose mean PSNR is below it: it has not learned to denoise beyond that.")
_ROW_KINDS = {RECORDS: "records", PENDING: "records", JOBS: "jobs", CURVES: "curves"}  # for denoise_bench.migration
_ROW_KEYS = {RECORDS: RECORD_KEY, PENDING: RECORD_KEY, JOBS: JOB_KEY, CURVES: CURVE_KEY}  # what identifies a row of each file


def file_slug(text: str) -> str:
    """A file or folder name for a method, dataset or noise spec: ``gaussian:sigma=25`` -> ``gaussian_sigma=25``."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def weights_stem(method: str, training_set: str, train_noise: str, seed: int) -> str:
    """The file stem of a training's weights under ``checkpoints/`` (``.pt``; ``.json`` its seconds)."""
    return f"{method}__{file_slug(training_set)}__{file_slug(train_noise)}__seed{seed}"


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


def read_config(run_dir: Path) -> dict:
    """The run's config as today's results format writes it (``denoise_bench.migration`` upgrades an
    older folder's in memory), refusing folders of a format this version does not read."""
    return _read_config(run_dir)[1]


def _read_config(run_dir: Path) -> tuple[int, dict]:
    """(the results format ``run_dir`` was written in, its config upgraded to today's)."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise BenchError(f"{run_dir} is not a run folder (no {CONFIG})")
    config = stored_json(path)
    if not isinstance(config, dict):
        raise BenchError(f"{path} is {json_kind(config)}, not an object of the run it records (a damaged or hand-edited file)")
    version = checked_version(config.get("format_version"), path)
    wrong = _config_shape_error(config)
    if not wrong:
        config = upgrade_config(config, version)
        wrong = next((f"it has no {key}" for key in _ALWAYS_RECORDED if key not in config), None)
    if wrong:
        raise BenchError(f"{path}: {wrong} (a damaged or hand-edited file)")
    return version, config


def read_environment(run_dir: Path) -> dict:
    """The run's ``environment.json`` (where and when it ran) in today's shape; {} for a folder without
    one (made by hand). A damaged file is a BenchError naming it."""
    path = run_dir / ENVIRONMENT
    if not path.is_file():
        return {}
    version, _ = _read_config(run_dir)
    found = stored_json(path)
    if not isinstance(found, dict):
        raise BenchError(f"{path} is {json_kind(found)}, not an object of where and when the run ran "
                         "(a damaged or hand-edited file)")
    return upgrade_environment(found, version)


# What the entries of config.json that readers rely on are, where present (a hand-made folder may lack
# the grid's); the conditions of its experiments are there in every folder of today's format.
_ALWAYS_RECORDED = ("budget", "budgets", "engine", "noise_policy")
_CONFIG_SHAPES: dict[str, type | tuple[type, ...]] = {
    "request": dict, "methods": list, "noise": list, "datasets": list, "seeds": list, "budget": dict, "budgets": dict,
    "engine": dict, "protocol": dict, "dataset_options": dict, "profile": str, "noise_policy": str,
    "train_dataset": (str, type(None)), "dataset_channels": dict}


def _config_shape_error(config: dict) -> str | None:
    """What is wrong with the structure of a config.json, or None: each entry of the kind it is written as,
    every method entry an object with a name, every noise entry an object with a training noise and tests."""
    for key, kind in _CONFIG_SHAPES.items():
        if key in config and not isinstance(config[key], kind):
            return f"{key} is {json_kind(config[key])}, not {' or '.join(map(json_kind, kind)) if isinstance(kind, tuple) else json_kind(kind)}"
    for i, method in enumerate(config.get("methods", [])):
        if not isinstance(method, dict) or not isinstance(method.get("name"), str):
            return f"methods[{i}] is not an object with a name"
        if not isinstance(method.get("options") or {}, dict):
            return f"the options of method {method['name']!r} are not an object"
    for i, noise in enumerate(config.get("noise", [])):
        if not (isinstance(noise, dict) and isinstance(noise.get("train"), str) and isinstance(noise.get("tests"), list)):
            return f"noise[{i}] is not an object with a training noise (train) and its tests"
    budgets = config.get("budgets", {})
    if not all(isinstance(budget, dict) for budget in budgets.values()):
        return "budgets holds a budget that is not an object"
    return None


def json_kind(value: object) -> str:
    """A JSON value's kind (or a Python type's, as JSON names it)."""
    kind = value if isinstance(value, type) else type(value)
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(kind, "a number")


def part_folders(run_dir: Path) -> list[Path]:
    """Folders of jobs written by separate processes (an executor), in a stable order."""
    parts = run_dir / PARTS
    return sorted(p for p in parts.iterdir() if p.is_dir()) if parts.is_dir() else []


def read_rows(path: Path) -> pd.DataFrame:
    """One CSV of a run folder, its names kept as text (see ``TEXT_COLUMNS``).

    A damaged or hand-edited file is a :class:`BenchError` naming it and, where it can, the line: not
    CSV text, a row with more fields than the header, a row without its job's key (method, dataset,
    training noise, seed, and for a record its image), or text where a number belongs. Nothing reads
    on from a file that does not hold what it says, so a resume never rewrites one with less.
    """
    try:
        frame = pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS})
    except pd.errors.EmptyDataError:
        raise BenchError(f"{path} is empty (not even its header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise BenchError(f"{path} is not a readable CSV file ({' '.join(str(exc).split())})") from None
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_rows(path, frame)
    return frame


# Columns of the run folder's CSV files that hold whole numbers, and numbers (a missing value is allowed).
_WHOLE_NUMBERS = ("seed", "repeat", "step", "iterations", "records")
_NUMBERS = ("psnr", "ssim", "input_psnr", "input_ssim", "seconds", "train_seconds", "floor_psnr", "floor_ssim",
            "noise_seed", "output_std", "residual_ratio")
_STATUSES = tuple(status.value for status in JobStatus)  # of a job in jobs.csv


def _check_rows(path: Path, frame: pd.DataFrame) -> None:
    """Raise a BenchError naming the first line of ``path`` that does not hold what its file holds."""
    key = _ROW_KEYS.get(path.name, [])
    missing = [column for column in key if column not in frame.columns]
    if missing:
        raise BenchError(f"{path} has no {', '.join(missing)} column(s); it is not a denoise-bench {path.name} "
                         "(or its header line was edited)")
    problems = []  # (row index, what is wrong)
    for column in key:
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            problems.append((empty.idxmax(), f"no {column} (a cut or hand-edited row)"))
    for column in [c for c in (*_WHOLE_NUMBERS, *_NUMBERS, *added_record_columns()) if c in frame.columns]:
        values = pd.to_numeric(frame[column], errors="coerce")
        wrong = values.isna() & frame[column].notna()
        if column in _WHOLE_NUMBERS:
            wrong |= values.notna() & (values != values.round())
        if wrong.any():
            row = wrong.idxmax()
            problems.append((row, f"{column} {frame[column][row]!r} is not a{' whole' if column in _WHOLE_NUMBERS else ''} number"))
    if path.name == JOBS and "status" in frame.columns:
        wrong = ~frame.status.isin(_STATUSES)
        if wrong.any():
            row = wrong.idxmax()
            problems.append((row, f"status {frame.status[row]!r} is none of {', '.join(_STATUSES)}"))
    if problems:
        row, what = min(problems, key=lambda problem: problem[0])
        raise BenchError(f"{path} line {row + 2}: {what}")  # line 1 is the header


def _read_frame(run_dir: Path, name: str) -> pd.DataFrame:
    """``name`` of the run folder with the same file of every part appended, in today's results format
    (``denoise_bench.migration``); empty if none exists.

    A row found in more than one of the files (a kill between folding a part in and removing it, or a
    part a job wrote again after it was folded) is taken once, the last one read.
    """
    paths = [path for path in [run_dir / name, *(part / name for part in part_folders(run_dir))] if path.is_file()]
    if not paths:
        return pd.DataFrame()
    version, config = _read_config(run_dir)
    frames = [read_rows(path) for path in paths]
    filled = [frame for frame in frames if not frame.empty]
    if len(filled) > 1:
        merged = pd.concat(filled, ignore_index=True)
        key = [column for column in _ROW_KEYS.get(name, []) if column in merged]
        frame = merged.drop_duplicates(key, keep="last", ignore_index=True) if key else merged
    else:
        frame = filled[0] if filled else frames[0]  # keep the header of an empty file
    frame = upgrade_rows(_ROW_KINDS[name], frame, version, config)
    # A metric registered now that the run did not score (a plugin installed since): its columns empty.
    today = {"records": record_columns, "curves": curve_columns}.get(_ROW_KINDS[name])
    if today is None or frame.columns.empty:
        return frame
    return frame.assign(**{column: math.nan for column in today() if column not in frame})


def read_records(run_dir: Path) -> pd.DataFrame:
    read_config(run_dir)
    if not (run_dir / RECORDS).is_file() and not part_folders(run_dir):
        raise BenchError(f"{run_dir} is not a run folder (no {RECORDS})")
    return _read_frame(run_dir, RECORDS)


def read_pending(run_dir: Path) -> pd.DataFrame:
    return _read_frame(run_dir, PENDING)


def read_curves(run_dir: Path) -> pd.DataFrame:
    return _read_frame(run_dir, CURVES)


def read_jobs(run_dir: Path) -> pd.DataFrame:
    return _read_frame(run_dir, JOBS)


def method_label(method: str, oracle: bool, supervision: object = None, options: object = None) -> str:
    """The method as tables show it: named for any extension among its recorded ``options``
    (:func:`~denoise_bench.experiment.row_name`), marked when it was told the noise level or arrived pretrained."""
    if isinstance(options, str):
        method = _row_name(method, options)
    label = f"{method}{ORACLE_MARK}" if oracle else method
    return f"{label}{PRETRAINED_MARK}" if supervision == Supervision.PRETRAINED.value else label


@functools.lru_cache(maxsize=1024)
def _row_name(method: str, options: str) -> str:
    """:func:`row_name` with this installation's class of ``method``, once per (method, options): tables
    label every record."""
    return row_name(method, options, installed("method", method))[0]


def method_labels(frame: pd.DataFrame) -> pd.Series:
    """:func:`method_label` of each row (``uses_noise_level``, ``supervision`` and ``method_options`` are
    missing in older files)."""
    oracle = frame["uses_noise_level"] if "uses_noise_level" in frame else pd.Series(False, frame.index)
    supervision = frame["supervision"] if "supervision" in frame else pd.Series(None, frame.index, dtype=object)
    options = frame["method_options"] if "method_options" in frame else pd.Series(None, frame.index, dtype=object)
    return pd.Series([method_label(m, _flag(o), s, p) for m, o, s, p in zip(frame["method"], oracle, supervision, options)],
                     index=frame.index, dtype=object)


NOT_TRAINED_HERE = "not trained here"
IMAGE_KINDS: dict[object, str] = {1: "gray", 3: "colour"}  # a set's channels in words (keyed by what a config holds)


def dataset_text(dataset: str, channels: Mapping[str, object] | None) -> str:
    """A set as table headings name it: with gray or colour, as its run read it (``config.json``'s
    ``dataset_channels``), where recorded: a folder of gray files and the named gray set it holds read alike,
    but one read as colour scores three noisy looks at each image."""
    kind = IMAGE_KINDS.get(channels.get(dataset)) if channels else None
    return f"{dataset} ({kind})" if kind else dataset


def draws_text(config: Mapping[str, Any]) -> str | None:
    """How many noise draws of each test image a run scored, and by which rule: ``--repeats`` or its protocol's
    rule by set name (``EvalProtocol.repeats_text``); None for a protocol this version does not define."""
    protocol = protocol_by_id(str((config.get("protocol") or {}).get("id")))
    return protocol.repeats_text((config.get("request") or {}).get("repeats")) if protocol else None


def dataset_channels(configs: Iterable[Mapping[str, Any]]) -> dict[str, object]:
    """Set name -> its channels, as the runs of ``configs`` recorded them."""
    found: dict[str, object] = {}
    for config in configs:
        found.update(config.get("dataset_channels") or {})
    return found


def training_text(train_noise: str, labels: Iterable[object], trained: bool | None = None) -> str:
    """What a table block says of its training: ``trained on <noise>``; where its methods arrived pretrained
    and none of them was trained here (every method pretrained, or ``trained`` False: its records show no
    training step), that the suite trained nothing (the noise is then only the test settings' block); where
    trained methods sit beside pretrained ones, that the latter were not trained on it."""
    methods = [label for label in labels if label not in (NOISY_INPUT, FLOOR)]
    pretrained = [label for label in methods if str(label).endswith(PRETRAINED_MARK)]
    if pretrained and (len(pretrained) == len(methods) or trained is False):
        return f"{NOT_TRAINED_HERE} (noise {train_noise})"
    if pretrained:
        return f"trained on {train_noise} ({', '.join(map(str, pretrained))} {NOT_TRAINED_HERE})"
    return f"trained on {train_noise}"


def has_pretrained(labels: Iterable[object]) -> bool:
    """Whether any of these labels carries :data:`PRETRAINED_MARK` (its footnote is then due)."""
    return any(str(label).endswith(PRETRAINED_MARK) for label in labels)


def with_floor(records: pd.DataFrame) -> pd.DataFrame:
    """Records with the floor's score of every metric (``floor_psnr``, ``floor_ssim``, ...), each taken
    from any record of the same noisy input (:data:`FLOOR_INPUT`) that has it. Records of results format 1 may not know it; the floor depends only
    on the noisy input, the same for every method, so one run that records it gives it to every row of a
    table (of a leaderboard merging runs too). NaN where no record of that input has it."""
    floor_columns = [f"floor_{metric.name}" for metric in metrics()]
    records = records.assign(**{c: math.nan for c in floor_columns if c not in records})
    if records.empty or not records[floor_columns].isna().any().any():
        return records
    key = [c for c in FLOOR_INPUT if c in records]
    if not key:  # records made in memory that say nothing of their input
        return records
    filled = records.groupby(key, dropna=False, sort=False)[floor_columns].transform("first")
    return records.assign(**{c: filled[c] for c in floor_columns})


def below_floor(rows: pd.DataFrame) -> tuple[float, float] | None:
    """(mean PSNR, mean floor PSNR) of one method's records that have a floor, when the first is below
    the second; None when it is not, or no record has a floor."""
    known = rows[rows["floor_psnr"].notna()] if "floor_psnr" in rows else rows.iloc[0:0]
    if known.empty or known.psnr.mean() >= known.floor_psnr.mean():
        return None
    return float(known.psnr.mean()), float(known.floor_psnr.mean())


def _trained(records: pd.DataFrame) -> pd.DataFrame:
    """The records of methods that trained (iterations > 0); per-image methods have none to beat the floor by."""
    return records[records["iterations"].fillna(0) > 0] if "iterations" in records else records.iloc[0:0]


def below_floor_cells(records: pd.DataFrame) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """(dataset, train noise, test noise, method label) -> (mean PSNR, floor) of each trained method
    whose mean PSNR is below the floor there (:func:`below_floor`)."""
    trained = _trained(with_floor(records))
    found = {}
    groups = [method_labels(trained).rename("label"), "dataset", "train_noise", "test_noise"]
    for (label, dataset, train_noise, test_noise), rows in trained.groupby(groups, sort=False, dropna=False):
        below = below_floor(rows)
        if below is not None:
            found[(dataset, train_noise, test_noise, label)] = below
    return found


DONE = JobStatus.DONE.value  # the job status (in jobs.csv) of a job that gave numbers
NOT_RUN_COLUMNS = ["method", "label", "dataset", "train_noise", "status", "reason", "seeds"]


def _flag(value: object) -> bool:
    """A boolean column read back from CSV (True/False, or missing in older files)."""
    return value is True or str(value).strip().lower() == "true"


def _one_line(reason: object) -> str:
    """A recorded reason or error message on one line ("no reason recorded" when there is none)."""
    text = " ".join(str(reason).split()) if isinstance(reason, str) else ""
    return text or "no reason recorded"


def _job_keys(frame: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """(method, dataset, train noise, seed) of each row, as text (seeds read from CSV are numbers)."""
    if frame.empty:
        return []
    return list(zip(*(frame[c].astype(str) for c in JOB_KEY)))


def not_run(jobs: pd.DataFrame, records: pd.DataFrame | None = None) -> pd.DataFrame:
    """The jobs that gave no numbers (skipped or failed) and why: one row per (method, dataset, train
    noise, status, reason), with the method's table ``label`` and its ``seeds`` ("0, 1"). A job that
    was done anyway (in another row, or with records from another run: a failure redone later) is left out."""
    if jobs.empty or "status" not in jobs:
        return pd.DataFrame(columns=NOT_RUN_COLUMNS)
    done = set(_job_keys(jobs[jobs.status == DONE]))
    if records is not None:
        done |= set(_job_keys(records))
    missing = jobs[jobs.status != DONE]
    rows: dict[tuple[str, ...], list[str]] = {}
    for job, key in zip(missing.to_dict("records"), _job_keys(missing)):
        if key in done:
            continue
        label = method_label(job["method"], _flag(job.get("uses_noise_level")), job.get("supervision"))
        group = (job["method"], label, job["dataset"], job["train_noise"], str(job["status"]), _one_line(job.get("error")))
        seeds = rows.setdefault(group, [])
        if key[3] not in seeds:
            seeds.append(key[3])
    return pd.DataFrame([(*group, ", ".join(seeds)) for group, seeds in rows.items()], columns=NOT_RUN_COLUMNS)


def not_run_text(row: pd.Series, dataset: bool = True, train_noise: bool = True) -> str:
    """A row of :func:`not_run` as text, e.g. ``n2n on skimage, trained on salt:p=0.05 (seed 0) skipped:
    n2n assumes zero-mean noise; salt is not``; the dataset and training noise can be left to the heading."""
    seeds = f"seed{'s' if ',' in row.seeds else ''} {row.seeds}"
    place = (f" on {row.dataset}" if dataset else "") + (f", trained on {row.train_noise}" if train_noise else "")
    return f"{row.label}{place} ({seeds}) {row.status}: {row.reason}"


def nothing_ran(jobs: pd.DataFrame) -> str | None:
    """Why a run has no numbers at all: every job was skipped or failed (None when some job was done,
    or there are no jobs). Names each method and training noise with its reason, once however many
    datasets and seeds it covers."""
    if jobs.empty or "status" not in jobs or (jobs.status == DONE).any():
        return None
    causes = not_run(jobs).drop_duplicates(["method", "train_noise", "status", "reason"])
    return "nothing ran: every job was skipped or failed: " + "; ".join(
        f"{c.method} on {c.train_noise} {c.status} ({c.reason})" for c in causes.itertuples())


def build_tables(records: pd.DataFrame, jobs: pd.DataFrame, metric: str,
                 tests: dict[str, list[str]] | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """(dataset, train noise) -> table of mean ``metric``: rows test settings, columns methods.

    ``tests`` (training noise -> its test settings, from the run's config) gives the rows of a block
    that has no records, so that its skipped and failed methods still show, cell by cell."""
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    if records.empty and jobs.empty:
        return tables
    records = with_floor(records)
    blocks = set(map(tuple, records[["dataset", "train_noise"]].drop_duplicates().values)) if not records.empty else set()
    if not jobs.empty:
        blocks |= set(map(tuple, jobs[["dataset", "train_noise"]].drop_duplicates().values))
    for dataset, train_noise in sorted(blocks):
        block = records[(records.dataset == dataset) & (records.train_noise == train_noise)] if not records.empty else records
        columns: dict[str, pd.Series] = {}
        order = list(dict.fromkeys(block["test_noise"])) if not block.empty else list((tests or {}).get(train_noise, []))
        if not block.empty:
            # Mean over images, repeats and seeds; the noisy input is the same for every method.
            columns[NOISY_INPUT] = block.groupby("test_noise", sort=False)[f"input_{metric}"].mean()
            if block[f"floor_{metric}"].notna().any():  # records of format 1 may not know it: nor does the table
                columns[FLOOR] = block.groupby("test_noise", sort=False)[f"floor_{metric}"].mean()
            for label, rows in block.groupby(method_labels(block), sort=False):
                # NaN when an estimate was not a number: never a mean over the images that happened to be finite.
                columns[label] = rows.groupby("test_noise", sort=False)[metric].mean(skipna=False)
        table = pd.DataFrame(columns, index=pd.Index(order, name="test noise")).round(_decimals(metric))
        table = table.astype(object)
        if not jobs.empty:
            # Failed or skipped jobs show as such instead of silently missing.
            sel = jobs[(jobs.dataset == dataset) & (jobs.train_noise == train_noise) & (jobs.status != DONE)]
            for _, job in sel.iterrows():
                label = method_label(job["method"], _flag(job.get("uses_noise_level")), job.get("supervision"))
                if label not in table.columns:
                    table[label] = job["status"]
        tables[(dataset, train_noise)] = table
    return tables


def low_budget_warnings(records: pd.DataFrame) -> list[str]:
    """Why these numbers may not rank methods: a short-budget profile, a trained method that scores
    below its own noisy input (under-trained or broken) or below the floor, a 3x3 box filter of that
    input (it has learned less than a trivial smoother), on some test setting, or a method with scores
    no denoiser reaches from the noisy input alone (``denoise_bench.plausibility``)."""
    if records.empty:
        return []
    return profile_warnings(records) + below_input_warnings(records) + below_floor_warnings(records) + implausible_warnings(records)


def below_floor_warnings(records: pd.DataFrame) -> list[str]:
    """One line per test setting naming every trained method below the floor there (one line per
    method and setting buried a four-method table under a dozen warnings)."""
    settings: dict[tuple[str, str, float], list[str]] = {}
    for (dataset, _, test_noise, label), (psnr, floor) in below_floor_cells(records).items():
        settings.setdefault((dataset, test_noise, floor), []).append(f"{label} {psnr:.2f}")
    warnings = []
    for (dataset, test_noise, floor), below in settings.items():
        who = f"{below[0]} dB scores" if len(below) == 1 else f"{', '.join(below)} dB score"
        warnings.append(f"on {dataset}, {test_noise}, {who} below the floor, a {FLOOR_KERNEL}x{FLOOR_KERNEL} box filter "
                        f"of the noisy input ({floor:.2f} dB): not learned more than that.")
    return warnings


def profile_warnings(records: pd.DataFrame) -> list[str]:
    """The short-budget warning of each profile the records were made under (``SHORT_BUDGET_WARNINGS``)."""
    if records.empty:
        return []
    return [SHORT_BUDGET_WARNINGS[p] for p in sorted(records["profile"].dropna().unique()) if p in SHORT_BUDGET_WARNINGS]


def below_input_warnings(records: pd.DataFrame) -> list[str]:
    """A warning for each trained method and test setting whose mean PSNR is below the noisy input's."""
    if records.empty:
        return []
    means = _trained(records).groupby(["method", "dataset", "train_noise", "test_noise"], sort=False)[["psnr", "input_psnr"]].mean()
    return [f"{method} scores below its noisy input on {dataset}, {test_noise} "
            f"({row.psnr:.2f} < {row.input_psnr:.2f} dB): under-trained or broken."
            for (method, dataset, _, test_noise), row in means[means.psnr < means.input_psnr].iterrows()]


def images_note(block: pd.DataFrame, test_crop: int | None = None) -> str:
    """How many test images each number of a table averages (with the noise repeats and seeds when there
    are several), naming the methods scored on fewer: a mean over 8 images reads like one over 68; and,
    where the run's budget crops them (``Budget.test_crop``), that each was scored on its centre crop only."""
    images = block.groupby(method_labels(block), sort=False, dropna=False).image.nunique()
    most = int(images.max())
    fewer = [f"{label}: {n} image{'s' if n != 1 else ''}" for label, n in images.items() if n < most]
    extra = [f"{n} {what}" for n, what in ((block.repeat.nunique(), "noise repeats"), (block.seed.nunique(), "seeds")) if n > 1]
    cropped = "" if test_crop is None else f", each scored on its centre {test_crop}x{test_crop} crop, not the whole image"
    return (f"Each number averages {most} test image{'s' if most != 1 else ''}" + cropped + "".join(f", {e}" for e in extra)
            + (f" ({'; '.join(fewer)})" if fewer else "") + ".")


def implausible_cells(records: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    """(dataset, train noise, test noise, method label) of each table cell that has an implausible record."""
    flagged = records[implausible(records)] if not records.empty else records
    if flagged.empty:
        return set()
    return {(d, t, n, label) for d, t, n, label in
            zip(flagged.dataset, flagged.train_noise, flagged.test_noise, method_labels(flagged))}


def profiles_of(records: pd.DataFrame) -> str:
    return ", ".join(sorted(records["profile"].dropna().unique())) if not records.empty else "n/a"


NOTHING_RAN = "> **Nothing ran:** every job was skipped or failed; why is listed under each table."


def mark_below_floor(table: pd.DataFrame, dataset: str, train_noise: str,
                     below: dict[tuple[str, str, str, str], tuple[float, float]]) -> pd.DataFrame:
    """A table of :func:`build_tables` with :data:`BELOW_FLOOR_MARK` after each cell of a trained method
    whose mean PSNR is below the floor at that test setting (``below``, from :func:`below_floor_cells`)."""
    return mark_cells(table, dataset, train_noise, below, BELOW_FLOOR_MARK)


def mark_cells(table: pd.DataFrame, dataset: str, train_noise: str, cells: Iterable[tuple[str, str, str, str]],
               mark: str) -> pd.DataFrame:
    """A table of :func:`build_tables` with ``mark`` after each of its ``cells`` ((dataset, train noise,
    test noise, method label) keys; the others are left alone)."""
    marked = table.copy()
    for (d, t, test_noise, label) in cells:
        if (d, t) == (dataset, train_noise) and label in marked.columns and test_noise in marked.index:
            # The column becomes text: its numbers written as the markdown of a number column writes them.
            marked[label] = pd.Series([f"{v:g}" if isinstance(v, float) and not math.isnan(v) else v for v in marked[label]],
                                      index=marked.index, dtype=object)
            marked.loc[test_noise, label] = f"{marked.loc[test_noise, label]} {mark}"
    return marked


# What would not show as itself in markdown: a '|' ends a table cell, a newline a row, a '<' before a letter,
# '/', '!' or '?' opens HTML (an option value "<img onerror=...>" would run on a page rendering the file), an
# '&' before a name and ';' is an entity, a backslash escapes what follows. A '<' before a space or a digit
# ("18.49 < 18.99 dB") is text and stays as it is.
_MARKDOWN_SPECIAL = re.compile(r"\\|\||\r\n|\r|\n|<(?=[A-Za-z/!?])|&(?=#?[A-Za-z0-9]+;)")
_MARKDOWN_ESCAPED = {"\\": "\\\\", "|": "\\|", "\r\n": " ", "\r": " ", "\n": " ", "<": "&lt;", "&": "&amp;"}


def markdown_text(text: object) -> str:
    """``text`` (a name, an option value, a reason) as markdown shows it: literally, on one line, never as
    HTML, and never ending a table cell or row."""
    return _MARKDOWN_SPECIAL.sub(lambda match: _MARKDOWN_ESCAPED[match.group()], str(text))


def markdown_table(frame: pd.DataFrame, index: bool = True) -> str:
    """``frame.to_markdown()`` with every text in it (column names, index, cells) passed through
    :func:`markdown_text`; numbers are left to the table's own formatting."""

    def cell(value: object) -> object:
        return markdown_text(value) if isinstance(value, str) else value

    shown = frame.copy()
    shown.columns = [cell(c) for c in shown.columns]
    shown.index = pd.Index([cell(i) for i in shown.index], name=cell(shown.index.name) if shown.index.name else None)
    for position, column in enumerate(shown.columns):
        if shown.dtypes.iloc[position] == object or pd.api.types.is_string_dtype(shown.dtypes.iloc[position]):
            shown.isetitem(position, pd.Series([cell(v) for v in shown.iloc[:, position]], index=shown.index, dtype=object))
    return shown.to_markdown(index=index)


def render_markdown(tables: dict[tuple[str, str], pd.DataFrame], metric: str, protocol: str, profile: str = "n/a",
                    warnings: list[str] | None = None, missing: pd.DataFrame | None = None,
                    nothing: bool = False, below: dict[tuple[str, str, str, str], tuple[float, float]] | None = None,
                    flagged: set[tuple[str, str, str, str]] | None = None, records: pd.DataFrame | None = None,
                    test_crop: int | None = None, channels: Mapping[str, object] | None = None,
                    draws: str | None = None) -> str:
    """The tables as markdown, each with how many images its numbers average (from ``records``); ``missing`` (from :func:`not_run`) is listed under the table of its
    dataset and training noise, and ``nothing`` says at the top that no job gave numbers. ``below``
    (from :func:`below_floor_cells`) marks the cells of trained methods below the floor, ``flagged``
    (from :func:`implausible_cells`) those with scores no denoiser reaches from the noisy input alone.
    ``test_crop``: the side of the centre crop each test image was scored on (the run's budget), None for whole images;
    ``channels``: each set's channels as the run read it (:func:`dataset_text`); ``draws``: how many noise draws
    of each test image were scored, and by which rule (:func:`draws_text`)."""
    lines = [f"# {metric.upper()} (protocol {protocol}, profile {profile})", ""]
    if nothing:
        lines += [NOTHING_RAN, ""]
    lines += [f"> **Warning:** {markdown_text(text)}" for text in warnings or []]
    if warnings:
        lines.append("")
    if draws:
        lines += [f"Noise draws: {markdown_text(draws)}.", ""]
    missing = missing if missing is not None else pd.DataFrame(columns=NOT_RUN_COLUMNS)
    for (dataset, train_noise), table in tables.items():
        shown = mark_below_floor(table, dataset, train_noise, below or {})
        shown = mark_cells(shown, dataset, train_noise, flagged or set(), IMPLAUSIBLE_MARK)
        block = records[(records.dataset == dataset) & (records.train_noise == train_noise)] if records is not None else None
        trained = bool((block["iterations"].fillna(0) > 0).any()) if block is not None and not block.empty else None
        heading = training_text(train_noise, table.columns, trained)
        lines += [f"## {markdown_text(dataset_text(dataset, channels))}, {markdown_text(heading)}", "",
                  markdown_table(shown), ""]
        if block is not None and not block.empty:
            lines += [markdown_text(images_note(block, test_crop)), ""]
        here = missing[(missing.dataset == dataset) & (missing.train_noise == train_noise)]
        if not here.empty:
            listed = [f"- {markdown_text(not_run_text(row, dataset=False, train_noise=False))}" for _, row in here.iterrows()]
            lines += ["Not run:", "", *listed, ""]
    lines.append(f"{ORACLE_MARK} told the true noise level of each test image. "
                 "Means over test images, noise repeats and seeds.")
    if any(FLOOR in table.columns for table in tables.values()):
        lines += ["", FLOOR_NOTE]
    if any(has_pretrained(table.columns) for table in tables.values()):
        lines += ["", PRETRAINED_NOTE]
    if flagged and any((d, t) in tables for d, t, _, _ in flagged):
        lines += ["", IMPLAUSIBLE_NOTE]
    return "\n".join(lines) + "\n"


def tables_to_csv(tables: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for (dataset, train_noise), table in tables.items():
        frame = table.reset_index()
        frame.insert(0, "train noise", train_noise)
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_tables(run_dir: Path) -> dict[str, str]:
    """(Re)write tables/ from records.csv and jobs.csv; returns the markdown of each metric."""
    records = read_records(run_dir)
    jobs = read_jobs(run_dir)
    config = read_config(run_dir)
    if records.empty:  # nothing evaluated: the heading still says what the run was made under
        protocol = str((config.get("protocol") or {}).get("id") or "n/a")
        profile = str(config.get("profile") or "n/a")
    else:
        protocol, profile = ", ".join(sorted(records["protocol"].dropna().unique())), profiles_of(records)
    tests = {n["train"]: list(n["tests"]) for n in config.get("noise") or [] if isinstance(n, dict) and "train" in n}
    warnings = low_budget_warnings(records) + divergence_warnings(read_curves(run_dir), records)
    missing = not_run(jobs, records)
    nothing = nothing_ran(jobs) is not None
    below = below_floor_cells(records) if not records.empty else {}
    flagged = implausible_cells(records)
    rendered = {}
    for metric in (m.name for m in scored_metrics(records)):
        tables = build_tables(records, jobs, metric, tests)
        markdown = render_markdown(tables, metric, protocol, profile, warnings, missing, nothing,
                                   below if metric == "psnr" else None, flagged, records,
                                   (config.get("budget") or {}).get("test_crop"), dataset_channels([config]),
                                   draws_text(config))
        write_text_atomic(run_dir / TABLES / f"{metric}.md", markdown)
        write_frame(run_dir / TABLES / f"{metric}.csv", tables_to_csv(tables))
        rendered[metric] = markdown
    return rendered


def _decimals(metric: str) -> int:
    """The places tables round ``metric``'s means to (2 for one no longer registered)."""
    return next((m.decimals for m in metrics() if m.name == metric), 2)
