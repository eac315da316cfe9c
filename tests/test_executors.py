"""Grids run through an executor: submitit's local executor in separate processes, parts folded in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from denoise_bench import plugins
from denoise_bench.errors import BenchError
from denoise_bench.run.dispatch import make_executor
from denoise_bench.results import PARTS, read_jobs, read_records, write_tables
from denoise_bench.run.grid import Unit, units
from denoise_bench.run.lock import LOCK, run_lock
from denoise_bench.run.runner import RunRequest, plan, run, run_unit
from helpers import LostJobs, Median3, MethodPlugin, bench

pytest.importorskip("submitit")

GRID = ["--methods", "unet,n2n", "--noise", "gaussian:sigma=25", "--dataset", "skimage", "--profile", "smoke",
        "--iterations", "3", "--test-images", "1", "--no-progress"]
KEY = ["method", "dataset", "train_noise", "test_noise", "image", "repeat"]



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


def test_a_grid_through_the_pool_matches_the_same_grid_run_inline(tmp_path: Path) -> None:
    """--executor pool: the units as spawned processes, two at a time, each logging to a file of its own; the
    records those of the inline run, bit for bit."""
    inline, pooled = tmp_path / "inline", tmp_path / "pooled"
    assert bench("run", *GRID, "--out", str(inline)).exit_code == 0
    result = bench("run", *GRID, "--out", str(pooled), "--executor", "pool", "--executor-option", "jobs=2")
    assert result.exit_code == 0, result.output
    assert "running 2 job(s), 2 at a time on this machine" in result.output
    assert result.output.count("started ") == 2 and result.output.count("done ") >= 2
    logs = sorted(p.name for p in (pooled / "pool").iterdir())
    assert len(logs) == 2 and all(name.endswith(".log") for name in logs)
    assert not (pooled / PARTS).exists()
    jobs = pd.read_csv(pooled / "jobs.csv")
    assert sorted(jobs.method) == ["n2n", "unet"] and set(jobs.status) == {"done"}
    ours = pd.read_csv(pooled / "records.csv").sort_values(KEY).reset_index(drop=True)
    theirs = pd.read_csv(inline / "records.csv").sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_series_equal(ours.psnr, theirs.psnr)


def test_a_pool_job_that_fails_names_its_log(tmp_path: Path) -> None:
    """A plugin registered here only: a job's process cannot plan the grid, so every job fails, one at a time
    (jobs=1), each naming the log that says why."""
    plugins.get_plugin_manager().register(MethodPlugin(Median3), name="median3-here-only")
    plugins.reset_registry()
    out = tmp_path / "run"
    result = bench("run", "--methods", "median3,unet", "--noise", "gaussian:sigma=25", "--dataset", "skimage",
                   "--profile", "smoke", "--iterations", "3", "--test-images", "1", "--no-progress", "--out", str(out),
                   "--executor", "pool", "--executor-option", "jobs=1")
    assert result.exit_code == 1
    jobs = pd.read_csv(out / "jobs.csv").set_index("method")
    assert jobs.status.to_dict() == {"median3": "failed", "unet": "failed"}
    for method in ("median3", "unet"):
        assert "its process ended with exit code 1; its output is in" in jobs.error[method]
        log = next(p for p in (out / "pool").iterdir() if method in p.name)
        assert str(log) in jobs.error[method] and "unknown method 'median3'" in log.read_text()


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
    assert any("1 job(s) already finished" in m for m in messages), messages  # after the time estimate
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
    ("kubernetes", {}, "unknown executor 'kubernetes'; valid executors: inline, local, pool, slurm"),
    ("slurn", {}, r"unknown executor 'slurn' \(did you mean 'slurm'\?\)"),
    ("inline", {"timeout_min": "5"}, "--executor-option needs --executor local, slurm or pool"),
    ("pool", {"jobs": "0"}, "jobs='0': the number of jobs at a time must be a whole number of at least 1"),
    ("pool", {"jobs": "two"}, "jobs='two'"),
    ("pool", {"timeout_min": "5"}, "--executor pool takes --executor-option jobs=N only; unknown: timeout_min"),
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


# --- jobs that outlive the grid's process, run twice, or end without a word ---------------------------

def _smoke(out: Path, methods: list[str]) -> RunRequest:
    return RunRequest(methods=methods, noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                      overrides={"iterations": 3, "test_images": 1}, progress=False, out=out)


def test_a_unit_run_again_keeps_what_its_earlier_job_recorded_in_the_part(tmp_path: Path) -> None:
    """A job requeued (pre-emption, a time-out), or resubmitted by a resume after the first one had finished."""
    out = tmp_path / "run"
    p = plan(_smoke(out, ["n2n"]))
    run(p, echo=lambda _: None, executor=_NoJobs())  # writes the run folder; submits nothing
    (unit,) = units(p)
    run_unit(str(out), unit)  # the first job: it outlived the grid's process and finished
    run_unit(str(out), unit)  # the same unit once more: it used to overwrite the part with an empty one
    assert list(read_jobs(out).status) == ["done"] and len(read_records(out)) == 1
    resumed = run(plan(RunRequest.from_run_dir(out)), echo=lambda _: None, executor=LostJobs())
    assert list(resumed.jobs.status) == ["done"] and len(resumed.records) == 1


def test_a_resume_waits_for_a_job_of_the_killed_grid_that_still_runs_and_keeps_its_results(tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = plan(_smoke(out, ["n2n", "bm3d"]))
    run(p, echo=lambda _: None, executor=_NoJobs())
    trained = units(p)[0]
    run_unit(str(out), trained)  # the results the surviving job will have when it ends ...
    finished = tmp_path / "finished-part"
    shutil.move(out / PARTS / trained.slug, finished)  # ... not written yet
    part, holding, resume_waits, messages = out / PARTS / trained.slug, threading.Event(), threading.Event(), []

    def echo(message: str) -> None:
        messages.append(message)
        if "waiting" in message:
            resume_waits.set()

    def surviving_job() -> None:  # holds its part while it runs, as every job does, and ends once the resume waits
        with run_lock(part, lambda _: None):
            holding.set()
            # Not a fixed sleep: planning the resume can take longer than any sleep on a busy machine.
            resume_waits.wait(timeout=120)
            time.sleep(0.2)
            shutil.copytree(finished, part, dirs_exist_ok=True)

    job = threading.Thread(target=surviving_job)
    job.start()
    holding.wait()
    again = RunRequest.from_run_dir(out)
    again.progress = False
    resumed = run(plan(again), echo=echo)
    job.join()
    assert any(f"part folder {part} is in use by pid" in m and "waiting" in m for m in messages), messages
    assert not (out / PARTS).exists()  # folded in once it ended, never removed under it
    jobs = read_jobs(out).set_index("method")
    assert sorted(jobs.index) == ["bm3d", "n2n"] and set(jobs.status) == {"done"}
    # The surviving job's results were kept, and its unit was not run a second time.
    assert jobs.seconds["n2n"] == pd.read_csv(finished / "jobs.csv").seconds[0]
    assert sorted(read_records(out).method) == ["bm3d", "n2n"] == sorted(resumed.records.method)


class _SilentJobs:
    """An executor whose jobs all end normally without recording anything (their parts lost)."""

    def run_units(self, run_dir, units, echo):
        for unit in units:
            yield unit, None


@pytest.mark.parametrize("executor", [_SilentJobs(), _NoJobs()], ids=["silent jobs", "no outcome"])
def test_jobs_an_executor_leaves_unrecorded_are_failures_not_gaps(tmp_path: Path, executor) -> None:
    result = run(plan(_smoke(tmp_path / "run", ["bm3d", "n2n"])), echo=lambda _: None, executor=executor)
    assert sorted(result.jobs.method) == ["bm3d", "n2n"] and set(result.jobs.status) == {"failed"}
    assert len(result.failed) == 2  # so `bench run` exits 1, not 0
    assert sorted(read_jobs(tmp_path / "run").method) == ["bm3d", "n2n"]


def test_sigkill_of_the_grid_while_its_jobs_run_on_then_resume_loses_nothing(tmp_path: Path) -> None:
    """The grid's process is killed while a training job runs on (under Slurm jobs outlive it); a resume
    waits for that job, runs nothing twice and keeps every result."""
    out = tmp_path / "run"
    args = ["--methods", "n2n,bm3d", "--noise", "gaussian:sigma=25", "--dataset", "skimage", "--profile", "smoke",
            "--iterations", "300", "--test-images", "1", "--no-progress", "--executor", "local"]
    grid = subprocess.Popen([sys.executable, "-m", "denoise_bench.cli", "run", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / PARTS / Unit("n2n", "gaussian:sigma=25", 0, ("skimage",)).slug
    deadline = time.monotonic() + 60
    try:
        while not (part / "jobs.csv").exists() and not (part / LOCK).exists():  # the training job has started
            assert grid.poll() is None and time.monotonic() < deadline, "the grid ended before its training job started"
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        grid.kill()
        grid.wait(timeout=60)
    assert not (out / "records.csv").exists() or "n2n" not in (out / "records.csv").read_text()
    resumed = bench("run", "--resume", str(out), "--no-progress", "--executor", "local")
    assert resumed.exit_code == 0, resumed.output
    assert "waiting for it to end" in resumed.output and "submitted" not in resumed.output  # nothing run twice
    jobs = read_jobs(out)
    assert sorted(jobs.method) == ["bm3d", "n2n"] and set(jobs.status) == {"done"}
    assert sorted(read_records(out).method) == ["bm3d", "n2n"]
    assert not (out / PARTS).exists()
