"""Run tables keep what did not run in sight: skipped and failed jobs, and a run where nothing ran."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.cli import main
from denoise_bench.results import CONFIG, JOBS, NOTHING_RAN, RECORDS, RESULTS_FORMAT, nothing_ran, write_frame, write_json, write_tables
from denoise_bench.schema import JOB_COLUMNS, RECORD_COLUMNS
from helpers import ToyPlugin

GAUSSIAN = {"train": "gaussian:sigma=0-50", "tests": ["gaussian:sigma=25", "gaussian:sigma=0-50"]}
SALT = {"train": "salt:p=0.05", "tests": ["salt:p=0.05"]}
N2N_ON_SALT = "n2n assumes zero-mean noise; salt is not"


def _job(method: str, train_noise: str, status: str, error: str | None = None, seed: int = 0,
         dataset: str = "skimage") -> dict:
    return dict.fromkeys(JOB_COLUMNS) | {"method": method, "dataset": dataset, "train_noise": train_noise, "seed": seed,
                                         "uses_noise_level": method == "bm3d", "status": status, "error": error}


def _write_run(path: Path, jobs: list[dict], records: list[dict]) -> Path:
    path.mkdir(parents=True)
    write_json(path / CONFIG, {"format_version": RESULTS_FORMAT, "protocol": {"id": "nb2nb-v1"}, "profile": "quick",
                               "noise": [GAUSSIAN, SALT]})
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
