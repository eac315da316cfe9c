"""Run tables keep what did not run in sight: skipped and failed jobs, and a run where nothing ran."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.cli.commands import main
from denoise_bench.plausibility import IMPLAUSIBLE_MARK, IMPLAUSIBLE_NOTE
from denoise_bench.results import (BELOW_FLOOR_MARK, CONFIG, FLOOR, FLOOR_NOTE, JOBS, NOTHING_RAN, RECORDS,
                                   low_budget_warnings, nothing_ran, with_floor, write_frame, write_json,
                                   write_tables)
from denoise_bench.schema import JOB_COLUMNS, RECORD_COLUMNS
from helpers import ToyPlugin, bench, run_folder_config

GAUSSIAN = {"train": "gaussian:sigma=0-50", "tests": ["gaussian:sigma=25", "gaussian:sigma=0-50"]}
SALT = {"train": "salt:p=0.05", "tests": ["salt:p=0.05"]}
N2N_ON_SALT = "n2n assumes zero-mean noise; salt is not"


def _job(method: str, train_noise: str, status: str, error: str | None = None, seed: int = 0,
         dataset: str = "skimage") -> dict:
    return dict.fromkeys(JOB_COLUMNS) | {"method": method, "dataset": dataset, "train_noise": train_noise, "seed": seed,
                                         "uses_noise_level": method == "bm3d", "status": status, "error": error}


def _write_run(path: Path, jobs: list[dict], records: list[dict]) -> Path:
    path.mkdir(parents=True)
    methods = {row["method"]: {} for row in [*jobs, *records]}
    write_json(path / CONFIG, run_folder_config(methods, protocol={"id": "nb2nb-v1"}, noise=[GAUSSIAN, SALT]))
    write_frame(path / JOBS, pd.DataFrame(jobs, columns=JOB_COLUMNS))
    write_frame(path / RECORDS, pd.DataFrame(records, columns=RECORD_COLUMNS))
    return path


def _record(method: str, test_noise: str, psnr: float, seed: int = 0) -> dict:
    return dict.fromkeys(RECORD_COLUMNS) | {
        "run_id": "r", "protocol": "nb2nb-v1", "profile": "quick", "method": method, "supervision": "clean",
        "uses_noise_level": False, "train_noise": GAUSSIAN["train"], "test_noise": test_noise, "dataset": "skimage",
        "image": "camera", "repeat": 0, "seed": seed, "psnr": psnr, "ssim": 0.8, "input_psnr": 20.0, "input_ssim": 0.4,
        "seconds": 0.1, "train_seconds": 60.0, "iterations": 800}


def test_nothing_ran_names_each_method_and_noise_once_with_its_reason() -> None:
    jobs = pd.DataFrame([_job("n2n", "salt:p=0.05", "skipped", N2N_ON_SALT, seed=s, dataset=d)
                         for s in (0, 1) for d in ("bsd68", "set12")]
                        + [_job("iddp", "salt:p=0.05", "failed", "RuntimeError: out of\n  memory")])
    assert nothing_ran(jobs) == ("nothing ran: every job was skipped or failed: "
                                 f"n2n on salt:p=0.05 skipped ({N2N_ON_SALT}); "
                                 "iddp on salt:p=0.05 failed (RuntimeError: out of memory)")
    assert nothing_ran(pd.concat([jobs, pd.DataFrame([_job("unet", "salt:p=0.05", "done")])])) is None
    assert nothing_ran(pd.DataFrame()) is None


def test_skipped_and_failed_jobs_stay_visible_in_the_tables(tmp_path: Path) -> None:
    """A failed seed of a method that has numbers, a skipped method, and a block where nothing ran."""
    run = _write_run(tmp_path / "run", jobs=[
        _job("unet", GAUSSIAN["train"], "done"),
        _job("unet", GAUSSIAN["train"], "failed", "RuntimeError: CUDA out of\nmemory", seed=1),
        _job("n2n", SALT["train"], "skipped", N2N_ON_SALT),
        _job("bm3d", SALT["train"], "skipped", "bm3d has no treatment for salt noise"),
    ], records=[_record("unet", t, 28.0) for t in GAUSSIAN["tests"]])
    markdown = write_tables(run)["psnr"]
    gaussian, salt = markdown.split("## skimage, trained on ")[1:]
    assert "- unet (seed 1) failed: RuntimeError: CUDA out of memory" in gaussian
    # The block without a single record still has a row per test setting, each cell saying what happened.
    assert "| salt:p=0.05  | skipped | skipped |" in salt
    assert f"- n2n (seed 0) skipped: {N2N_ON_SALT}" in salt and "- bm3d† (seed 0) skipped: bm3d has no" in salt
    table = pd.read_csv(run / "tables" / "psnr.csv")
    salt_rows = table[table["train noise"] == SALT["train"]]
    assert list(salt_rows["test noise"]) == SALT["tests"] and set(salt_rows.n2n) == {"skipped"}
    assert NOTHING_RAN not in markdown  # unet did run


def test_a_run_where_nothing_ran_is_an_error_that_says_why(tmp_path: Path) -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "n2n,bm3d", "--noise", "salt:p=0.05", "--profile", "smoke",
                                       "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    last = [line for line in result.output.splitlines() if line.strip()][-1]
    assert last.startswith("error: nothing ran: every job was skipped or failed: "
                           f"n2n on salt:p=0.05 skipped ({N2N_ON_SALT}); bm3d on salt:p=0.05 skipped (bm3d has no "), last
    markdown = (out / "tables" / "psnr.md").read_text()
    assert markdown.startswith(f"# PSNR (protocol nb2nb-v1, profile smoke)\n\n{NOTHING_RAN}\n")
    assert "| salt:p=0.05  | skipped | skipped |" in markdown and f"- n2n (seed 0) skipped: {N2N_ON_SALT}" in markdown


def _floored(record: dict, floor: float | None) -> dict:
    return record | {"floor_psnr": floor, "floor_ssim": None if floor is None else 0.6}


def _cells(markdown: str) -> tuple[list[str], dict[str, list[str]]]:
    """The column names of a markdown table, and its cells by test setting."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    return split[0][1:], {row[0]: row[1:] for row in split[2:]}


def test_tables_of_records_written_before_the_floor_have_no_floor(tmp_path: Path) -> None:
    records = [_record("unet", t, 28.0) for t in GAUSSIAN["tests"]]
    old_columns = [c for c in RECORD_COLUMNS if not c.startswith("floor_")]
    run = _write_run(tmp_path / "run", jobs=[_job("unet", GAUSSIAN["train"], "done")], records=[])
    write_frame(run / RECORDS, pd.DataFrame(records, columns=old_columns))  # an old-format records.csv
    markdown = write_tables(run)["psnr"]
    assert _cells(markdown) == (["noisy input", "unet"], {t: ["20", "28"] for t in GAUSSIAN["tests"]})
    assert FLOOR_NOTE not in markdown
    assert list(pd.read_csv(run / "tables" / "psnr.csv").columns) == ["dataset", "train noise", "test noise",
                                                                        "noisy input", "unet"]


def test_the_floor_of_a_noisy_input_is_taken_from_any_record_that_has_it() -> None:
    old = pd.DataFrame([_record("unet", "gaussian:sigma=25", 28.0)]).drop(columns=["floor_psnr", "floor_ssim"])
    new = pd.DataFrame([_floored(_record("n2n", "gaussian:sigma=25", 27.0), 25.5),
                        _floored(_record("n2n", "gaussian:sigma=0-50", 27.0), 26.0)])
    filled = with_floor(pd.concat([old, new], ignore_index=True)).set_index(["method", "test_noise"])
    assert filled.loc[("unet", "gaussian:sigma=25"), "floor_psnr"] == 25.5  # same input: same floor
    assert filled.loc[("n2n", "gaussian:sigma=0-50"), "floor_psnr"] == 26.0
    other_image = with_floor(pd.concat([old.assign(image="coins"), new], ignore_index=True))
    assert other_image[other_image.image == "coins"].floor_psnr.isna().all()  # another input: no floor


def test_methods_below_the_floor_at_one_setting_share_one_warning() -> None:
    records = [_floored(_record(m, "gaussian:sigma=25", psnr), 25.5) for m, psnr in (("unet", 25.0), ("n2n", 24.0), ("iddp", 26.0))]
    records += [_floored(_record("unet", "gaussian:sigma=0-50", 24.5), 25.0)]
    warnings = [w for w in low_budget_warnings(pd.DataFrame(records)) if "below the floor" in w]
    assert warnings == [
        "on skimage, gaussian:sigma=25, unet 25.00, n2n 24.00 dB score below the floor, a 3x3 box filter of the noisy "
        "input (25.50 dB): not learned more than that.",
        "on skimage, gaussian:sigma=0-50, unet 24.50 dB scores below the floor, a 3x3 box filter of the noisy "
        "input (25.00 dB): not learned more than that."]


def test_a_trained_method_below_the_floor_is_marked_and_warned_about(tmp_path: Path) -> None:
    records = [_floored(_record("unet", t, 28.0), 25.5) for t in GAUSSIAN["tests"]]
    records += [_floored(_record("n2n", "gaussian:sigma=25", 24.0), 25.5),  # below the floor, above the input
                _floored(_record("n2n", "gaussian:sigma=0-50", 27.0), 25.5)]
    records += [_floored(_record("bm3d", t, 24.0), 25.5) | {"iterations": 0, "uses_noise_level": True}
                for t in GAUSSIAN["tests"]]  # per-image: nothing learned, never marked
    run = _write_run(tmp_path / "run", jobs=[_job(m, GAUSSIAN["train"], "done") for m in ("unet", "n2n", "bm3d")],
                     records=records)
    markdown = write_tables(run)["psnr"]
    header, rows = _cells(markdown)
    assert header == ["noisy input", FLOOR, "unet", "n2n", "bm3d†"]
    assert rows["gaussian:sigma=25"] == ["20", "25.5", "28", f"24 {BELOW_FLOOR_MARK}", "24"]
    assert rows["gaussian:sigma=0-50"] == ["20", "25.5", "28", "27", "24"]
    assert FLOOR_NOTE in markdown
    assert ("> **Warning:** on skimage, gaussian:sigma=25, n2n 24.00 dB scores below the floor, a 3x3 box filter "
            "of the noisy input (25.50 dB)" in markdown)
    assert BELOW_FLOOR_MARK not in write_tables(run)["ssim"].replace(FLOOR_NOTE, "")  # the mark is PSNR's
    warnings = low_budget_warnings(pd.DataFrame(records))
    assert len([w for w in warnings if "below the floor" in w]) == 1
    assert not [w for w in warnings if "below its noisy input" in w]
    table = pd.read_csv(run / "tables" / "psnr.csv")
    assert table[FLOOR].tolist() == [25.5, 25.5] and table.n2n.tolist() == [24.0, 27.0]  # the CSV stays numbers


def test_a_method_that_returned_nan_on_one_image_has_no_mean_and_is_flagged(tmp_path: Path) -> None:
    """Not the mean over the images that happened to be finite: NaN, marked, with a warning that says why."""
    records = [_record("unet", "gaussian:sigma=25", 28.0) | {"image": image} for image in ("camera", "coins")]
    records += [_record("n2n", "gaussian:sigma=25", 27.0) | {"image": "camera"},
                _record("n2n", "gaussian:sigma=25", math.nan) | {"image": "coins", "ssim": math.nan}]
    run = _write_run(tmp_path / "run", jobs=[_job(m, GAUSSIAN["train"], "done") for m in ("unet", "n2n")],
                     records=records)
    rendered = write_tables(run)
    header, rows = _cells(rendered["psnr"])
    assert header == ["noisy input", "unet", "n2n"] and rows["gaussian:sigma=25"] == ["20", "28", f"nan {IMPLAUSIBLE_MARK}"]
    assert "n2n scores implausibly on 1 of 2 records of skimage, gaussian:sigma=25 (1 PSNR NaN" in rendered["psnr"]
    assert IMPLAUSIBLE_NOTE in rendered["psnr"]
    assert pd.read_csv(run / "tables" / "ssim.csv").n2n.isna().all()  # SSIM alike


def test_scores_no_denoiser_reaches_from_the_noisy_input_are_flagged_in_the_run_tables(tmp_path: Path) -> None:
    exact = _record("n2n", "gaussian:sigma=25", math.inf) | {"ssim": 1.0}  # the clean image itself
    near = _record("unet", "gaussian:sigma=0-50", math.inf) | {"input_psnr": 52.0}  # noise under a grey level
    records = [exact, near, _record("unet", "gaussian:sigma=25", 45.5), _record("n2n", "gaussian:sigma=0-50", 44.0)]
    run = _write_run(tmp_path / "run", jobs=[_job(m, GAUSSIAN["train"], "done") for m in ("unet", "n2n")],
                     records=records)
    header, rows = _cells(write_tables(run)["psnr"])
    assert header == ["noisy input", "n2n", "unet"]
    assert rows["gaussian:sigma=25"] == ["20", f"inf {IMPLAUSIBLE_MARK}", f"45.5 {IMPLAUSIBLE_MARK}"]  # a 25.5 dB gain
    assert rows["gaussian:sigma=0-50"] == ["36", "44", "inf"]  # a 24 dB gain; inf on a near-clean input
    warnings = low_budget_warnings(pd.DataFrame(records))
    assert [w.split(" (")[0] for w in warnings if "implausibly" in w] == [
        "n2n scores implausibly on 1 of 1 records of skimage, gaussian:sigma=25",
        "unet scores implausibly on 1 of 1 records of skimage, gaussian:sigma=25"]


def test_each_table_says_how_many_test_images_its_numbers_average(tmp_path: Path) -> None:
    records = [_record("unet", "gaussian:sigma=25", 28.0) | {"image": image} for image in ("camera", "coins", "moon")]
    records += [_record("dip", "gaussian:sigma=25", 27.0), _record("unet", "gaussian:sigma=25", 28.0, seed=1)]
    run = _write_run(tmp_path / "run", jobs=[_job("unet", GAUSSIAN["train"], "done")], records=records)
    for markdown in write_tables(run).values():
        assert "Each number averages 3 test images, 2 seeds (dip: 1 image)." in markdown


def _table_rows_hold_their_columns(markdown: str) -> None:
    """Every line of every pipe table has as many cell separators (unescaped '|') as its header."""
    for table in re.findall(r"(?:^\|.*\n)+", markdown, flags=re.MULTILINE):
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(counts) == 1, table


def test_names_and_reasons_reach_the_markdown_tables_escaped(tmp_path: Path) -> None:
    # A dataset named with '|' and a reason holding HTML and a newline: kept raw, they broke the table's rows
    # and put live HTML into tables/*.md.
    odd = "folder:a|b"
    records = [_record("unet", t, 28.0) | {"dataset": odd} for t in GAUSSIAN["tests"]]
    run = _write_run(tmp_path / "run", jobs=[
        _job("unet", GAUSSIAN["train"], "done", dataset=odd),
        _job("n2n", GAUSSIAN["train"], "failed", "ValueError: <img src=x onerror=alert(1)>\n| line", dataset=odd),
    ], records=records)
    markdown = write_tables(run)["psnr"]
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)> \\| line" in markdown
    assert "## folder:a\\|b, trained on" in markdown
    _table_rows_hold_their_columns(markdown)
    assert bench("table", str(run)).output.count("&lt;img") == 2  # bench table prints them as it writes them
