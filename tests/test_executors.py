"""Grids run through an executor: submitit's local executor in separate processes, parts folded in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.cli import main
from denoise_bench.errors import BenchError
from denoise_bench.executors import make_executor
from denoise_bench.results import PARTS, read_jobs, read_records, write_tables
from denoise_bench.grid import units
from denoise_bench.runner import RunRequest, plan, run, run_unit
from helpers import LostJobs, MethodPlugin, Median3

pytest.importorskip("submitit")

GRID = ["--methods", "unet,n2n", "--noise", "gaussian:sigma=25", "--dataset", "skimage", "--profile", "smoke",
        "--iterations", "3", "--test-images", "1", "--no-progress"]
KEY = ["method", "dataset", "train_noise", "test_noise", "image", "repeat"]


def bench(*args: str):
    return CliRunner().invoke(main, list(args))


def test_a_grid_through_submitits_local_executor_matches_the_same_grid_run_inline(tmp_path: Path) -> None:
    inline, submitted = tmp_path / "inline", tmp_path / "submitted"
    assert bench("run", *GRID, "--out", str(inline)).exit_code == 0
    result = bench("run", *GRID, "--out", str(submitted), "--executor", "local", "--executor-option", "timeout_min=10")
    assert result.exit_code == 0, result.output
    assert "submitted 2 job(s) to local" in result.output
    # Each unit ran in its own process (submitit keeps a log folder per job) ...
    assert len([p for p in (submitted / "submitit").iterdir() if p.name.isdigit()]) == 2
    # ... its part was folded into the run folder, and the records are those of the inline run, bit for bit.
    assert not (submitted / PARTS).exists()
    jobs = pd.read_csv(submitted / "jobs.csv")
    assert sorted(jobs.method) == ["n2n", "unet"] and set(jobs.status) == {"done"}
    ours = pd.read_csv(submitted / "records.csv").sort_values(KEY).reset_index(drop=True)
    theirs = pd.read_csv(inline / "records.csv").sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_series_equal(ours.psnr, theirs.psnr)
    assert "unet" in (submitted / "tables" / "psnr.md").read_text()


def test_a_job_that_dies_on_the_worker_is_recorded_as_failed(tmp_path: Path) -> None:
    """A plugin installed here but not where the job runs: the worker cannot even plan the grid."""
    plugins.get_plugin_manager().register(MethodPlugin(Median3), name="median3-here-only")
    plugins.reset_registry()
    out = tmp_path / "run"
    result = bench("run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--dataset", "skimage", "--profile",
                   "smoke", "--test-images", "1", "--no-progress", "--out", str(out), "--executor", "local")
    assert result.exit_code == 1
    jobs = pd.read_csv(out / "jobs.csv")
    assert list(jobs.status) == ["failed"]
    assert "unknown method 'median3'" in jobs.error[0]


def test_parts_of_running_jobs_are_tabulated_and_a_resume_folds_them_in(tmp_path: Path) -> None:
    """The grid's process was killed while its jobs ran on: their parts are already readable."""
    out = tmp_path / "run"
    request = RunRequest(methods=["iddp", "n2n"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         overrides={"iterations": 3, "test_images": 1}, progress=False, out=out)
    p = plan(request)
    run(p, echo=lambda _: None, executor=_NoJobs())  # writes the run folder; submits nothing
    first = units(p)[0]
    run_unit(str(out), first)  # what a worker does
    assert (out / PARTS / first.slug / "records.csv").is_file()
    assert set(read_records(out).method) == {first.method}
    assert first.method in write_tables(out)["psnr"]
    messages: list[str] = []
    again = RunRequest.from_run_dir(out)
    again.progress = False
    resumed = run(plan(again), echo=messages.append)
    assert "1 job(s) already finished" in messages[0]
    assert not (out / PARTS).exists()
    jobs = read_jobs(out)
    assert sorted(jobs.method) == ["iddp", "n2n"] and set(jobs.status) == {"done"}
    # One record per method (one image, one test setting); the worker's record was kept, not redone.
    assert sorted(resumed.records.method) == ["iddp", "n2n"] and len(read_records(out)) == 2


def test_a_resubmitted_unit_runs_only_the_jobs_not_yet_finished(tmp_path: Path) -> None:
    """A resumed grid submits a unit again when one of its jobs is missing: the finished ones stay as they are."""
    out = tmp_path / "run"
    request = RunRequest(methods=["n2n"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         overrides={"iterations": 3, "test_images": 1}, progress=False, out=out)
    p = plan(request)
    run(p, echo=lambda _: None)  # inline: the unit's one job is done
    (unit,) = units(p)
    run_unit(str(out), unit)  # the worker of a resubmitted unit
    assert read_jobs(out / PARTS / unit.slug).empty  # nothing run again (it used to retrain and re-test)
    again = RunRequest.from_run_dir(out)
    again.progress = False
    resumed = run(plan(again), echo=lambda _: None, executor=LostJobs())
    jobs = read_jobs(out)
    assert list(jobs.status) == ["done"] and resumed.failed.empty  # a finished unit is not submitted again


class _NoJobs:
    def run_units(self, run_dir, units, echo):
        return iter(())


@pytest.mark.parametrize("name,options,message", [
    ("kubernetes", {}, "unknown executor 'kubernetes'; valid executors: inline, local, slurm"),
    ("inline", {"timeout_min": "5"}, "--executor-option needs --executor local or slurm"),
])
def test_bad_executor_choices_are_named(name: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        make_executor(name, options)


@pytest.mark.skipif(shutil.which("srun") is not None, reason="this machine is a Slurm cluster")
def test_slurm_without_slurm_is_a_clear_error(tmp_path: Path) -> None:
    result = bench("run", *GRID, "--out", str(tmp_path / "run"), "--executor", "slurm")
    assert result.exit_code == 2
    assert result.output.strip() == 'error: --executor slurm: Could not detect "srun", are you indeed on a slurm cluster?'
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_an_unknown_submitit_parameter_is_a_clear_error(tmp_path: Path) -> None:
    result = bench("run", *GRID, "--out", str(tmp_path / "run"), "--executor", "local", "--executor-option",
                   "gpus_per_nod=1")
    assert result.exit_code != 0
    assert "--executor-option" in result.output and "gpus_per_nod" in result.output
