"""Progress a person can follow: a line after each job with the time left, and bars inside per-image methods."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.run import scoring
from denoise_bench.cli.commands import main
from denoise_bench.run.grid import unit_jobs, units
from denoise_bench.run.progress import NO_ESTIMATE, GridProgress, duration
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.methods import dip
from denoise_bench.run.runner import RunRequest, plan, run, run_unit
from denoise_bench.schema import job_key
from denoise_bench.supervision import Supervision
from helpers import MethodPlugin, Median3

COUNTER = re.compile(r"^\[(\d+)/(\d+) jobs\] ")


class Flaky(Method):
    """Fails while ``failing`` is set: a job that an interrupted run left to its resume."""

    name = "flaky"
    description = "identity that fails on demand (test plugin)"
    citation = "-"
    supervision = Supervision.NONE
    trainable = False
    failing = True

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        if Flaky.failing:
            raise RuntimeError("not today")
        return noisy.clone()


@pytest.fixture
def test_methods() -> Iterator[None]:
    plugins.register_plugin(MethodPlugin(Median3, Flaky), name="progress-test-methods")
    Flaky.failing = True
    yield


def _counters(lines: list[str]) -> list[tuple[int, int]]:
    return [(int(m[1]), int(m[2])) for line in lines if (m := COUNTER.match(line))]


# --- the estimate, on a fake clock -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _grid(tmp_path: Path, seeds: list[int]):
    # bm3d has no treatment for Poisson-Gaussian noise: its cells are skipped and cost nothing.
    request = RunRequest(methods=["unet", "median3", "bm3d"], noises=["poisson-gaussian:lam=30,sigma=10"],
                         datasets=["skimage"], seeds=seeds, profile="smoke", out=tmp_path / "r", progress=False)
    p = plan(request)
    return p, units(p)


def _job(p, unit, status: str = "done", seconds: float = 1.0) -> dict[str, Any]:
    (job,) = unit_jobs(p, unit)
    return job | {"status": status, "seconds": seconds}


def test_each_unit_is_estimated_by_its_methods_mean_and_skipped_cells_cost_nothing(tmp_path: Path, test_methods) -> None:
    p, grid = _grid(tmp_path, seeds=[0, 1])
    assert [(u.method, u.seed) for u in grid] == [("unet", 0), ("median3", 0), ("bm3d", 0),
                                                   ("unet", 1), ("median3", 1), ("bm3d", 1)]
    lines: list[str] = []
    clock = Clock()
    progress = GridProgress(p, grid, set(), lines.append, clock)
    steps = [(100, "done", 100.0 * 3),  # unet 0; then median3 0 (no mean of its own yet: all units' 100), unet 1, median3 1
             (10, "done", 100 + 10),  # median3 0 took 10: unet 1 and median3 1 left
             (0, "skipped", 110),  # bm3d 0: skipped, free
             (200, "done", 10),  # unet 1 took 200 (unet's mean now 150); median3 1 left
             (10, "done", 0)]  # bm3d 1 is free
    for unit, (seconds, status, left) in zip(grid, steps):
        clock.now += seconds
        progress.job_finished(_job(p, unit, status, seconds))
        assert progress.seconds_left() == pytest.approx(left)
    clock.now += 1
    progress.job_finished(_job(p, grid[-1], "skipped"))
    assert _counters(lines) == [(n, 6) for n in range(1, 7)]
    assert lines[0] == ("[1/6 jobs] unet on skimage (poisson-gaussian:lam=30,sigma=10, seed 0) done in 1m40s; "
                        "elapsed 1m40s, about 5m00s left")
    assert lines[2].startswith("[3/6 jobs] bm3d on skimage (poisson-gaussian:lam=30,sigma=10, seed 0) skipped; elapsed")
    assert lines[-1] == "[6/6 jobs] bm3d on skimage (poisson-gaussian:lam=30,sigma=10, seed 1) skipped; elapsed 5m21s"


def test_no_estimate_until_a_unit_has_a_job_done_and_failures_do_not_count(tmp_path: Path, test_methods) -> None:
    p, grid = _grid(tmp_path, seeds=[0])
    lines: list[str] = []
    clock = Clock()
    progress = GridProgress(p, grid, set(), lines.append, clock)
    clock.now = 5
    progress.job_finished(_job(p, grid[0], "failed", 5.0))
    assert lines[-1].endswith(f"failed after 5s; elapsed 5s, {NO_ESTIMATE}")
    clock.now = 65
    progress.job_finished(_job(p, grid[1], "done", 60.0))
    assert lines[-1].endswith("done in 1m00s; elapsed 1m05s, about 0s left")  # only bm3d's free cell is left


def test_a_resumed_grid_counts_the_finished_jobs_as_done_and_estimates_from_this_invocation(
        tmp_path: Path, test_methods) -> None:
    p, grid = _grid(tmp_path, seeds=[0, 1])
    finished = {job_key(job) for unit in grid[:3] for job in unit_jobs(p, unit)}  # seed 0, earlier
    lines: list[str] = []
    clock = Clock()
    progress = GridProgress(p, grid, finished, lines.append, clock)
    assert (progress.done, progress.total) == (3, 6)
    clock.now = 30
    progress.job_finished(_job(p, grid[3]))
    progress.job_finished(_job(p, grid[0]))  # an executor may run a finished job again: not counted twice
    assert _counters(lines) == [(4, 6)]
    assert progress.seconds_left() == pytest.approx(30)  # median3 1 by the only unit timed here


@pytest.mark.parametrize("seconds,text", [(0.4, "0s"), (42, "42s"), (59.6, "1m00s"), (1264, "21m04s"),
                                          (3720, "1h02m"), (90061, "25h01m")])
def test_durations_read_like_a_clock(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# --- real runs -----------------------------------------------------------------------------------------


def test_a_run_prints_a_counted_line_after_each_job_even_without_progress_bars(tmp_path: Path, test_methods) -> None:
    result = CliRunner().invoke(main, ["run", "--methods", "unet,median3", "--noise", "gaussian:sigma=25", "--profile",
                                       "smoke", "--iterations", "3", "--test-images", "1", "--seeds", "0,1",
                                       "--no-progress", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if COUNTER.match(line)]
    assert _counters(lines) == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert lines[0].startswith("[1/4 jobs] unet on skimage (gaussian:sigma=25, seed 0) done in ")
    assert all(re.search(r"; elapsed \d+s, about \d+s left$", line) for line in lines[:3]), lines
    assert re.search(r"\) done in \d+s; elapsed \d+s$", lines[-1])


def test_a_resumed_run_counts_on_from_the_jobs_already_finished(tmp_path: Path, test_methods) -> None:
    request = RunRequest(methods=["median3", "flaky"], noises=["gaussian:sigma=25"], datasets=["skimage"],
                         profile="smoke", overrides={"test_images": 1}, out=tmp_path / "r", progress=False)
    first: list[str] = []
    run(plan(request), echo=first.append)
    assert _counters(first) == [(1, 2), (2, 2)]
    assert [line for line in first if line.startswith("[2/2 jobs]")][0].startswith(
        "[2/2 jobs] flaky on skimage (gaussian:sigma=25, seed 0) failed after ")
    Flaky.failing = False
    again = RunRequest.from_run_dir(tmp_path / "r")
    again.progress = False
    second: list[str] = []
    run(plan(again), echo=second.append)
    assert _counters(second) == [(2, 2)]  # median3 counted as done before; only flaky ran
    assert [line for line in second if COUNTER.match(line)][0].startswith(
        "[2/2 jobs] flaky on skimage (gaussian:sigma=25, seed 0) done in ")


class Dying:
    """An executor that runs the first unit as a worker would (run_unit, into its part) and loses the rest."""

    def run_units(self, run_dir: Path, units: list, echo: Any) -> Iterator[tuple[Any, BaseException | None]]:
        for i, unit in enumerate(units):
            if i == 0:
                run_unit(str(run_dir), unit)
                yield unit, None
            else:
                yield unit, RuntimeError("the job died")


def test_jobs_run_by_an_executor_are_counted_from_their_parts_and_dead_ones_as_failed(tmp_path: Path,
                                                                                      test_methods) -> None:
    request = RunRequest(methods=["median3", "flaky"], noises=["gaussian:sigma=25"], datasets=["skimage"],
                         profile="smoke", overrides={"test_images": 1}, out=tmp_path / "r", progress=False)
    lines: list[str] = []
    run(plan(request), echo=lines.append, executor=Dying())
    counted = [line for line in lines if COUNTER.match(line)]
    assert _counters(counted) == [(1, 2), (2, 2)]
    assert counted[0].startswith("[1/2 jobs] median3 on skimage (gaussian:sigma=25, seed 0) done in ")
    assert counted[1].startswith("[2/2 jobs] flaky on skimage (gaussian:sigma=25, seed 0) failed after ")


class Bars:
    """Stands in for tqdm: records each bar's arguments and how far it got."""

    made: list["Bars"] = []

    def __init__(self, iterable: Any = None, **kwargs: Any) -> None:
        self.iterable, self.kwargs, self.n = iterable, kwargs, 0
        Bars.made.append(self)

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            self.n += 1
            yield item

    def update(self, n: int = 1) -> None:
        self.n += n

    def __enter__(self) -> "Bars":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("progress", [True, False])
def test_dip_shows_a_bar_over_each_images_iterations_and_bm3d_one_over_its_images(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, progress: bool) -> None:
    Bars.made = []
    monkeypatch.setattr(dip, "tqdm", Bars)
    monkeypatch.setattr(scoring, "tqdm", Bars)
    request = RunRequest(methods=["dip", "bm3d"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         overrides={"test_images": 2, "per_image_iterations": 4},
                         method_options={"dip": {"width": "8", "input_depth": "4"}}, out=tmp_path / "r",
                         progress=progress)
    result = run(plan(request), echo=lambda _: None)
    assert result.failed.empty, result.failed
    # The time probe's short fits (1 and 6 steps, denoise_bench.run.time_estimate) aside: those of the run go to 4.
    fits = [b for b in Bars.made if b.kwargs.get("desc") == "dip fit" and len(b.iterable) == 4]
    tests = {b.kwargs["desc"]: b for b in Bars.made if str(b.kwargs.get("desc")).startswith("test ")}
    assert len(fits) == 2 and all(b.n == 4 and b.kwargs["leave"] is False for b in fits)  # one per test image
    # BM3D (and every method) is followed image by image by scoring's bar over the test cases.
    cases = len(pd.read_csv(tmp_path / "r" / "records.csv").query("method == 'bm3d'"))
    assert tests["test bm3d gaussian:sigma=25"].kwargs["total"] == cases == tests["test bm3d gaussian:sigma=25"].n
    assert {b.kwargs["disable"] for b in [*fits, *tests.values()]} == {not progress}
