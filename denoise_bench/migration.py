"""Run folders of older results formats read as today's: one upgrade step per format version, in memory.

Every run folder's ``config.json`` records the results format it was written in (``format_version``).
When a folder is read, its ``config.json``, ``environment.json``, ``records.csv`` (and ``pending.csv``)
and ``curves.csv`` are upgraded here, one version at a time, to the shape :data:`RESULTS_FORMAT`
writes; every other reader sees only today's shape and holds no fallback for older folders. Nothing is
written back: a folder the suite did not write in this invocation is never changed on disk (resuming
one rewrites its files as a run always does, in today's format).

A change of what a run folder holds or means bumps :data:`RESULTS_FORMAT` and adds one step for the
version it leaves behind: a function per file that changed, taking that file as the old version wrote
it and returning it as the next version writes it. A step keeps the values of its own time (what
runs of that version trained and scored with), never today's defaults, so that a later change of a
default cannot give old results a new meaning. ``docs/run-folder.md`` lists the versions.

Format versions:

1. Everything written before versions were counted past 1, in the shapes it grew through: fields
   added over its life are missing from older folders of it.
2. Every field present: ``config.json`` records ``engine``, ``budgets`` (each method's budget, every
   budget field), ``noise_policy`` and every request field; ``environment.json`` the CPU model;
   records carry ``method_options``, ``training_set``, ``dataset_digest`` and the floor
   (``floor_psnr``, ``floor_ssim``); curve points ``floor_psnr``.
3. The request records ``skip_longer_than`` (``--skip-longer-than``): runs before it ran every job.
4. ``config.json`` records ``dataset_channels``, gray (1) or colour (3) as the run read each set, since a
   ``folder`` set is read as its files are (gray files as gray). Before, a folder was read as colour unless
   ``channels`` said otherwise: its request gains ``channels=3``, so that it resumes, is evaluated and
   is recorded as it ran. The request records ``repeats`` (``--repeats``): none in older folders, whose
   protocol's rule by set name gave each set its noise draws. The request records ``stop_on_divergence``
   (off before), and curve points ``input_psnr``, ``output_std`` and ``residual_ratio`` (empty in older curves).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from denoise_bench.errors import BenchError
from denoise_bench.experiment import canonical_options
from denoise_bench.schema import CURVE_COLUMNS, RECORD_COLUMNS

RESULTS_FORMAT = 4  # the version this code writes; bump it (and add a step below) when a run folder changes
OLDEST_FORMAT = 1  # the oldest version a step upgrades from

Config = dict[str, Any]


def checked_version(found: object, path: Path) -> int:
    """The results format ``config.json`` at ``path`` records, if this code reads it; else a BenchError naming it."""
    if isinstance(found, int) and not isinstance(found, bool) and found > RESULTS_FORMAT:
        raise BenchError(f"{path.parent} was written by a newer version of denoise-bench (results format {found}, "
                         f"this version reads formats {OLDEST_FORMAT} to {RESULTS_FORMAT}); upgrade denoise-bench to read it")
    if not isinstance(found, int) or isinstance(found, bool) or found < OLDEST_FORMAT:
        raise BenchError(f"{path.parent} was written by an incompatible version of denoise-bench "
                         f"(results format {found}, this version reads formats {OLDEST_FORMAT} to {RESULTS_FORMAT})")
    return found


# --- version 1 -> 2 --------------------------------------------------------------------------------------

# What runs of format 1 trained with where their config.json does not say: the engine before it could be
# switched, and the budget fields added during format 1 (the official rule, each network's own init,
# and the init rule's former name "official" for it).
_V1_ENGINE = {"precision": "fp32", "channels_last": False, "compile": "off"}
_V1_BUDGET: dict[str, Any] = {"lr_rule": "official", "init": "own", "lr_scale": 1.0}
_V1_INIT_NAMES = {"official": "own"}
# Every request field but the grid (methods, noises, datasets), at the value a run of format 1 ran with where
# its config.json does not record it (eval_every, curve_images, engine, tensorboard, weights_from and
# test_noises were added during format 1).
_V1_REQUEST: dict[str, Any] = {"seeds": [0], "profile": "quick", "overrides": {}, "protocol": "nb2nb", "noise_policy": "fresh",
                               "train_dataset": None, "data_dir": None, "method_options": {}, "dataset_options": {},
                               "checkpoint_every": 200, "eval_every": 0, "curve_images": None, "engine": dict(_V1_ENGINE),
                               "tensorboard": False, "weights_from": None, "test_noises": []}
# (The request's engine is the one such a run trained with, not "auto": replayed or resumed on a CPU with AMX,
# where auto means bf16, it would otherwise ask for a run other than the one its folder holds.)


def _v1_budget(budget: Mapping[str, Any]) -> dict[str, Any]:
    full = _V1_BUDGET | dict(budget)
    return full | {"init": _V1_INIT_NAMES.get(full["init"], full["init"])}


def _config_1_to_2(config: Config) -> Config:
    """Fill what format 1 added over its life: the engine (fp32 eager before it was recorded), each
    method's budget (the run's own before the official profile gave each its own), the budget fields
    added since (:data:`_V1_BUDGET`, the init rule's former name read as its new one), the noise policy
    (always fresh before there was a choice) and the request fields added since (an ``init`` override
    of the former name read as the new one)."""
    budget = _v1_budget(config.get("budget") or {})
    methods = [m["name"] for m in config.get("methods") or [] if isinstance(m, dict) and "name" in m]
    budgets = {name: budget for name in methods} | dict(config.get("budgets") or {})
    request = config.get("request")
    if isinstance(request, dict):
        request = _V1_REQUEST | request
        overrides = request["overrides"]
        if isinstance(overrides, dict) and overrides.get("init") in _V1_INIT_NAMES:
            request["overrides"] = overrides | {"init": _V1_INIT_NAMES[overrides["init"]]}
    return config | {
        "format_version": 2,
        "budget": budget,
        "budgets": {name: _v1_budget(b) if isinstance(b, dict) else b for name, b in budgets.items()},
        "engine": _V1_ENGINE | dict(config.get("engine") or {}),
        "noise_policy": config.get("noise_policy") or "fresh",
        **({"request": request} if isinstance(request, dict) else {}),
    }


def _environment_1_to_2(environment: dict[str, Any]) -> dict[str, Any]:
    """Runs of format 1 recorded the CPU's architecture (``processor``) before its model (``cpu_model``)."""
    if environment and "cpu_model" not in environment:
        return environment | {"cpu_model": environment.get("processor") or environment.get("device_name")}
    return environment


def _records_1_to_2(records: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Records of format 1 may lack the columns it added over its life, or (resumed by later code) hold
    rows without their values. ``method_options`` and ``training_set`` are taken from ``config.json``:
    the options the run gave each method, canonical against the method's defaults where it is installed,
    and the training set of a trained method (``--train-dataset`` or the dataset itself, as its train
    split's id where it is installed here). ``dataset_digest`` and the floor stay unknown (NaN): readers
    take the first as the set its name says, the second from any record of the same input
    (``results.with_floor``)."""
    records = _with_columns(records, RECORD_COLUMNS)
    for column in ("method_options", "training_set"):
        records[column] = records[column].astype(object)
    if records.empty:
        return records
    missing = records.method_options.isna()
    options = {m: _recorded_options(config, m) for m in set(records.loc[missing, "method"])}
    records.loc[missing, "method_options"] = records.loc[missing, "method"].map(options)
    trained = records["iterations"].fillna(0) > 0
    missing = records.training_set.isna()
    records.loc[missing & ~trained, "training_set"] = ""
    missing &= trained
    sets = {d: _recorded_training_set(config, d) for d in set(records.loc[missing, "dataset"])}
    records.loc[missing, "training_set"] = records.loc[missing, "dataset"].map(sets)
    return records


def _curves_1_to_2(curves: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Curve points of format 1 may lack the floor on their images (``floor_psnr``): unknown (NaN)."""
    return _with_columns(curves, CURVE_COLUMNS)


def _with_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with today's ``columns`` in their order (those it lacks empty), then any others it has."""
    return frame.reindex(columns=[*columns, *(c for c in frame.columns if c not in columns)])


def _recorded_options(config: Config, method: str) -> str:
    """A method's options as records carry them, from the run's ``config.json``."""
    given = next((m.get("options") for m in config.get("methods") or [] if m.get("name") == method), None)
    if not given:
        return ""
    return canonical_options(given, getattr(installed("method", method), "options", None))


def _recorded_training_set(config: Config, dataset: str) -> str:
    """The training set of a dataset's trained methods: ``--train-dataset`` or the dataset itself, as
    its train split's id where the dataset is installed here, else by name (what identifies it)."""
    name = str(config.get("train_dataset") or dataset)
    dataset_cls = installed("dataset", name)
    if dataset_cls is None:
        return name
    try:
        return dataset_cls(None, **(config.get("dataset_options") or {})).training_set_id()  # type: ignore[operator]
    except BenchError:  # it refuses the recorded options without its data (a folder that is gone)
        return name


def installed(kind: str, name: str) -> object | None:
    """A method or dataset class from the registry, or None when it is not installed here: results may
    name plugins this machine lacks."""
    from denoise_bench.plugins import get_registry  # lazily: results are read without loading plugins

    try:
        return getattr(get_registry(), kind)(name)
    except BenchError:
        return None


# --- version 2 -> 3 --------------------------------------------------------------------------------------

def _config_2_to_3(config: Config) -> Config:
    """Record ``skip_longer_than`` in the request: no limit, as every run of format 2 ran each of its jobs."""
    request = config.get("request")
    if not isinstance(request, dict):
        return config | {"format_version": 3}
    return config | {"format_version": 3, "request": {"skip_longer_than": None} | request}


def _environment_2_to_3(environment: dict[str, Any]) -> dict[str, Any]:
    """Unchanged: formats 3 and 4 changed only config.json (the step of both)."""
    return environment


# --- version 3 -> 4 --------------------------------------------------------------------------------------

FOLDER = "folder"  # the registry name of the dataset read from any folder (datasets/folder.py)
_V3_FOLDER_CHANNELS = "3"  # how format 3 read a folder without a channels option: colour, gray files repeated


def _config_3_to_4(config: Config) -> Config:
    """Record ``repeats`` in the request (none: the protocol's rule by name gave each set its draws),
    ``stop_on_divergence`` (off: no run of format 3 could turn it on) and how each
    set was read (``dataset_channels``), as format 3 read it: a folder as colour unless its
    ``channels`` option said otherwise (its request gains that option, so that a resumed or evaluated run reads
    it again so), a named set as its class says where it is installed here (else it is not listed). (Format 4's
    curves also carry the noisy input's PSNR and the estimate's diagnostics; read from older curves, those
    columns are empty, as for any column a file lacks.)"""
    recorded_request = config.get("request")
    request: dict[str, Any] = ({"repeats": None, "stop_on_divergence": False} | recorded_request
                               if isinstance(recorded_request, dict) else {})
    names = [*(request.get("datasets") or []), *([request["train_dataset"]] if request.get("train_dataset") else [])]
    options = dict(config.get("dataset_options") or request.get("dataset_options") or {})
    upgraded = config | ({"request": request} if request else {})
    if FOLDER in names and "channels" not in options:
        options["channels"] = _V3_FOLDER_CHANNELS
        upgraded = upgraded | {"dataset_options": options}
        if request:
            upgraded = upgraded | {"request": request | {"dataset_options": options}}
    channels: dict[str, int] = {}
    recorded = [*(config.get("datasets") or []), *([config["train_dataset"]] if config.get("train_dataset") else [])]
    for name in recorded:
        if not isinstance(name, str):
            continue
        if name.startswith(f"{FOLDER}:"):
            channels[name] = int(options["channels"])
            continue
        dataset_channels = getattr(installed("dataset", name), "channels", None)
        if isinstance(dataset_channels, int):
            channels[name] = dataset_channels
    return upgraded | {"format_version": 4, "dataset_channels": channels}


# --- the steps, by the version they upgrade from ---------------------------------------------------------

_CONFIG_STEPS: dict[int, Callable[[Config], Config]] = {1: _config_1_to_2, 2: _config_2_to_3, 3: _config_3_to_4}
_ENVIRONMENT_STEPS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _environment_1_to_2,
                                                                              2: _environment_2_to_3,
                                                                              3: _environment_2_to_3}
# records and jobs kept their shape from format 2 on (jobs.csv since format 1), curves gained columns that read as
# empty where a file lacks them (results.read_curves): no step.
_ROW_STEPS: dict[str, dict[int, Callable[[pd.DataFrame, Config], pd.DataFrame]]] = {
    "records": {1: _records_1_to_2}, "curves": {1: _curves_1_to_2}, "jobs": {}}


def upgrade_config(config: Config, version: int) -> Config:
    """``config.json`` of results format ``version`` as :data:`RESULTS_FORMAT` writes it."""
    for step in range(version, RESULTS_FORMAT):
        config = _CONFIG_STEPS[step](config)
    return config


def upgrade_environment(environment: dict[str, Any], version: int) -> dict[str, Any]:
    """``environment.json`` of a run folder of results format ``version`` as today's."""
    for step in range(version, RESULTS_FORMAT):
        environment = _ENVIRONMENT_STEPS[step](environment)
    return environment


def upgrade_rows(kind: str, frame: pd.DataFrame, version: int, config: Config) -> pd.DataFrame:
    """Rows of a run folder's ``kind`` file (``records``, ``curves``, ``jobs``) of results format
    ``version`` as today's; ``config`` is the folder's ``config.json``, upgraded. Today's records read
    an empty ``method_options`` or ``training_set`` (a CSV cell reads back as missing) as no options and
    no training set."""
    for step in range(version, RESULTS_FORMAT):
        if step in _ROW_STEPS[kind]:
            frame = _ROW_STEPS[kind][step](frame, config)
    if kind == "records" and not frame.empty:
        frame = frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), "")
                                for c in ("method_options", "training_set") if c in frame})
    return frame


def stored_json(path: Path) -> object:
    """A JSON file of a run folder as stored; a damaged one is a BenchError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from None
