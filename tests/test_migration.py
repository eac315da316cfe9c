"""Run folders of older results formats read as today's, in memory, one step per version; a newer format,
and a damaged file, are refused with a message naming them."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from denoise_bench import migration
from denoise_bench.errors import BenchError
from denoise_bench.report.leaderboard_merge import merge_runs
from denoise_bench.migration import OLDEST_FORMAT, RESULTS_FORMAT, upgrade_config
from denoise_bench.run.planning import plan, run_config
from denoise_bench.profiles import Budget
from denoise_bench.run.request import RunRequest
from denoise_bench.results import (CONFIG, ENVIRONMENT, read_config, read_curves, read_environment, read_jobs,
                                   read_records, write_tables)
from denoise_bench.schema import CURVE_COLUMNS, JOB_COLUMNS, RECORD_COLUMNS

from helpers import bench

RESULTS = Path(__file__).resolve().parents[1] / "results"
# Format 1 folders from both ends of its life: the oldest (no engine, budgets, request fields added since,
# options, training sets, digests or floors in its records), and one whose environment lacks the CPU model.
OLDEST = RESULTS / "history" / "quick-main"  # a folder of results format 1, kept as it was published
NO_CPU_MODEL = RESULTS / "cpu-gaussian-a"


def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_oldest_format_reads_as_what_todays_code_writes(tmp_path: Path) -> None:
    assert json.loads((OLDEST / CONFIG).read_text())["format_version"] == OLDEST_FORMAT
    config = read_config(OLDEST)
    today = run_config(plan(RunRequest(methods=["bm3d"], noises=["gaussian:sigma=25"], datasets=["skimage"],
                                       profile="smoke", out=tmp_path / "run")))
    # threads: how fast a run went, which format 1 did not record and no reader needs.
    assert set(config) == set(today) - {"threads"}
    assert config["format_version"] == RESULTS_FORMAT
    assert set(config["request"]) == set(today["request"])
    assert config["engine"] == {"precision": "fp32", "channels_last": False, "compile": "off"}  # before engines
    methods = [m["name"] for m in config["methods"]]
    assert list(config["budgets"]) == methods  # the run's budget, for each method
    assert all(set(budget) == {f.name for f in fields(Budget)} for budget in config["budgets"].values())
    assert config["budget"]["lr_rule"] == "official" and config["budget"]["init"] == "own"


def test_records_and_curves_of_the_oldest_format_have_todays_columns() -> None:
    records = read_records(OLDEST)
    assert list(records.columns) == RECORD_COLUMNS
    assert set(records.method_options) == {""}  # every method at its defaults
    trained = records.iterations > 0
    assert set(records[trained].training_set) == {"Train400"} and set(records[~trained].training_set) == {""}
    assert records.dataset_digest.isna().all() and records.floor_psnr.isna().all()  # not known: not made up
    assert list(read_jobs(OLDEST).columns) == JOB_COLUMNS
    curves = read_curves(NO_CPU_MODEL)
    assert list(curves.columns) == CURVE_COLUMNS and curves.floor_psnr.isna().all()


def test_the_environment_of_the_oldest_format_names_its_cpu() -> None:
    stored = json.loads((NO_CPU_MODEL / ENVIRONMENT).read_text())
    assert "cpu_model" not in stored
    assert read_environment(NO_CPU_MODEL)["cpu_model"] == stored["processor"]


def test_reading_and_tabulating_an_older_folder_changes_none_of_its_files(tmp_path: Path) -> None:
    copy = _copy(OLDEST, tmp_path)
    before = {name: digest for name, digest in _digests(copy).items() if not name.startswith("tables")}
    read_records(copy), read_jobs(copy), read_environment(copy)
    merge_runs([copy])
    write_tables(copy)  # rewrites its tables in today's words (history keeps those of its day), nothing else
    after = _digests(copy)
    assert {name: digest for name, digest in after.items() if not name.startswith("tables")} == before
    assert any(name.startswith("tables") for name in after)


def test_every_version_has_a_step_to_the_next() -> None:
    """Bumping RESULTS_FORMAT without a step for the version left behind would fail every older folder."""
    versions = set(range(OLDEST_FORMAT, RESULTS_FORMAT))
    assert set(migration._CONFIG_STEPS) == versions and set(migration._ENVIRONMENT_STEPS) == versions
    for steps in migration._ROW_STEPS.values():
        assert set(steps) <= versions
    for step in (*migration._CONFIG_STEPS.values(), *migration._ENVIRONMENT_STEPS.values(),
                 *(s for steps in migration._ROW_STEPS.values() for s in steps.values())):
        assert step.__doc__, step.__name__  # what changed, said where it is undone


def test_an_upgrade_keeps_what_its_version_ran_with_and_what_the_folder_recorded() -> None:
    old = {"format_version": 1, "budget": {"iterations": 30, "init": "official"}, "engine": {"precision": "bf16"},
           "methods": [{"name": "unet"}], "request": {"methods": ["unet"], "overrides": {"init": "official"}}}
    config = upgrade_config(old, 1)
    assert config["budget"] == {"iterations": 30, "init": "own", "lr_rule": "official", "lr_scale": 1.0}
    assert config["budgets"] == {"unet": config["budget"]}
    assert config["engine"] == {"precision": "bf16", "channels_last": False, "compile": "off"}
    assert config["request"]["methods"] == ["unet"] and config["request"]["overrides"] == {"init": "own"}
    assert config["noise_policy"] == "fresh" and old["budget"]["init"] == "official"  # the stored dict is left alone


def test_a_folder_read_before_folders_were_read_as_their_files_are_stays_colour() -> None:
    # Format 3 read every folder as colour unless told: resumed or evaluated now, a folder of gray files would be
    # read as gray, and no longer be what its models were trained and its records scored on.
    old = {"format_version": 3, "datasets": ["folder:imgs", "bsd68"], "train_dataset": None,
           "dataset_options": {"path": "/gone/imgs"},
           "request": {"datasets": ["folder", "bsd68"], "train_dataset": None, "dataset_options": {"path": "/gone/imgs"}}}
    config = upgrade_config(old, 3)
    assert config["dataset_channels"] == {"folder:imgs": 3, "bsd68": 1}
    assert config["request"]["repeats"] is None  # the protocol's rule by set name gave its draws
    assert config["request"]["dataset_options"] == config["dataset_options"] == {"path": "/gone/imgs", "channels": "3"}
    told = old | {"dataset_options": {"path": "/gone/imgs", "channels": "1"}}
    told["request"] = old["request"] | {"dataset_options": told["dataset_options"]}
    assert upgrade_config(told, 3)["dataset_channels"] == {"folder:imgs": 1, "bsd68": 1}
    assert upgrade_config(told, 3)["request"]["dataset_options"]["channels"] == "1"


def test_a_folder_of_a_newer_format_is_refused_naming_its_version(tmp_path: Path) -> None:
    copy = _copy(OLDEST, tmp_path)
    config = json.loads((copy / CONFIG).read_text()) | {"format_version": RESULTS_FORMAT + 1}
    (copy / CONFIG).write_text(json.dumps(config))
    for args in (["table", str(copy)], ["leaderboard", str(copy), "--out", str(tmp_path / "board")]):
        result = bench(*args)
        assert result.exit_code == 2, result.output
        assert f"written by a newer version of denoise-bench (results format {RESULTS_FORMAT + 1}" in result.output
        assert f"reads formats {OLDEST_FORMAT} to {RESULTS_FORMAT}" in result.output
    with pytest.raises(BenchError, match="newer version"):
        read_records(copy)


def test_a_config_of_todays_format_without_what_it_always_records_is_refused(tmp_path: Path) -> None:
    copy = _copy(OLDEST, tmp_path)
    (copy / CONFIG).write_text(json.dumps({k: v for k, v in read_config(OLDEST).items() if k != "engine"}))
    with pytest.raises(BenchError, match=rf"{copy / CONFIG}: it has no engine \(a damaged or hand-edited file\)"):
        read_config(copy)


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]"])
def test_a_damaged_environment_file_is_an_error_naming_it(tmp_path: Path, damage: str) -> None:
    """It was read as "nothing recorded": the page then said "device: not recorded" of a run that recorded it."""
    copy = _copy(OLDEST, tmp_path)
    (copy / ENVIRONMENT).write_text(damage)
    result = bench("leaderboard", str(copy), "--out", str(tmp_path / "board"))
    assert result.exit_code == 2 and str(copy / ENVIRONMENT) in result.output, result.output
    assert "Traceback" not in result.output


def test_a_dataset_not_installed_here_is_its_own_training_set(tmp_path: Path) -> None:
    copy = _copy(OLDEST, tmp_path)
    records = pd.read_csv(copy / "records.csv").assign(dataset="elsewhere")
    records.to_csv(copy / "records.csv", index=False)
    trained = read_records(copy).query("iterations > 0")
    assert set(trained.training_set) == {"elsewhere"}


def test_a_folder_of_the_oldest_format_is_resumed_as_the_run_it_was(tmp_path: Path) -> None:
    out = tmp_path / "run"
    grid = ["--methods", "bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--test-images", "1", "--no-progress"]
    assert bench("run", *grid, "--out", str(out)).exit_code == 0
    config = json.loads((out / CONFIG).read_text())
    # As the oldest folders of format 1 recorded it: no engine, no per-method budgets, fewer budget and request fields.
    config = {k: v for k, v in config.items() if k not in ("engine", "budgets", "threads")} | {"format_version": 1}
    config["budget"] = {k: v for k, v in config["budget"].items() if k not in ("lr_rule", "init", "lr_scale")}
    config["request"] = {k: v for k, v in config["request"].items()
                         if k not in ("eval_every", "curve_images", "engine", "tensorboard", "weights_from", "test_noises")}
    (out / CONFIG).write_text(json.dumps(config))
    records = pd.read_csv(out / "records.csv")
    records.drop(columns=["method_options", "training_set", "dataset_digest", "floor_psnr", "floor_ssim"]).to_csv(
        out / "records.csv", index=False)
    result = bench("run", "--resume", str(out))
    assert result.exit_code == 0, result.output
    assert "1 job(s) already finished" in result.output
    assert json.loads((out / CONFIG).read_text())["format_version"] == RESULTS_FORMAT  # rewritten by this run
    assert list(pd.read_csv(out / "records.csv").columns) == RECORD_COLUMNS
