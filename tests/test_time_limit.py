"""``--skip-longer-than``: a unit the timed probe puts over the limit is not started; its jobs are recorded
as skipped with the estimate, listed under "not run" on the tables and the leaderboard, and stay skipped on
``--resume``. And a method that trains on each test image (a transductive CVF-SID) is probed at a few
steps, not fitted for its whole budget before the first job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from denoise_bench import plugins
from denoise_bench.errors import BenchError
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.results import read_jobs, read_records
from denoise_bench.run.grid import Unit, units
from denoise_bench.run.planning import RunPlan
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.run.time_estimate import PROBE_STEPS, UnitCost, estimate_units
from denoise_bench.run.time_limit import over_limit_reason, units_over_limit
from denoise_bench.supervision import Supervision
from helpers import MethodPlugin, Median3, bench_output

HOUR = 3600.0


def _request(tmp_path: Path, **fields) -> RunRequest:
    return RunRequest(**{"methods": ["median3", "n2n"], "noises": ["gaussian:sigma=25"], "datasets": ["skimage"],
                         "profile": "smoke", "out": tmp_path / "run", "progress": False} | fields)


@pytest.fixture
def median3() -> None:
    plugins.register_plugin(MethodPlugin(Median3), name="median3-time-limit")


def _fake_estimate(hours: dict[str, float]):
    """A stand-in for the timed probe: each unit of method m costs ``hours[m]`` of training."""
    def timed_estimate(p: RunPlan, grid: list[Unit]) -> tuple[dict[Unit, UnitCost], float]:
        return {u: UnitCost(hours[u.method] * HOUR, 0.0, {"skimage": 2}) for u in grid}, 0.1
    return timed_estimate


def test_only_timed_units_over_the_limit_are_skipped_and_the_reason_gives_the_estimate(tmp_path: Path, median3: None) -> None:
    p = plan(_request(tmp_path, skip_longer_than=2.0))
    over, under, untimed = (Unit(m, "gaussian:sigma=25", 0, ("skimage",)) for m in ("n2n", "median3", "bm3d"))
    costs = {over: UnitCost(1.5 * HOUR, 0.75 * HOUR, {"skimage": 5}), under: UnitCost(0.0, 1.9 * HOUR, {"skimage": 5}),
             untimed: UnitCost(0.0, 0.0, {"skimage": 5}, timed=False)}
    assert units_over_limit(p, costs) == {over: over_limit_reason(costs[over], 2.0)}
    assert over_limit_reason(costs[over], 2.0) == (
        "estimated 2h15m on this machine by the timed probe (train 1h30m, test 45m00s on 5 skimage image(s)), "
        "over --skip-longer-than 2 h")
    assert units_over_limit(plan(_request(tmp_path)), costs) == {}  # no limit: everything runs


def test_a_unit_over_the_limit_is_skipped_with_its_estimate_and_listed_as_not_run(
        tmp_path: Path, median3: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("denoise_bench.run.runner.timed_estimate", _fake_estimate({"median3": 0.001, "n2n": 10.0}))
    lines: list[str] = []
    result = run(plan(_request(tmp_path, skip_longer_than=2.0)), echo=lines.append)
    jobs = read_jobs(result.run_dir).set_index("method")
    assert jobs.loc["median3", "status"] == "done"
    assert jobs.loc["n2n", "status"] == "skipped"
    assert jobs.loc["n2n", "error"].startswith("estimated 10h00m on this machine by the timed probe")
    assert jobs.loc["n2n", "error"].endswith("over --skip-longer-than 2 h")
    assert set(read_records(result.run_dir).method) == {"median3"}  # n2n never trained nor scored
    assert not (result.run_dir / "checkpoints").exists() or not any((result.run_dir / "checkpoints").glob("n2n*"))
    # the total said before the run leaves out what will not run
    assert any("(1 job(s); " in line and "1 job(s) over --skip-longer-than are skipped" in line for line in lines)
    table = next(iter(result.tables.values()))
    assert "n2n" in table and "skipped: estimated 10h00m on this machine" in table

    code, out = bench_output("leaderboard", str(result.run_dir), "--out", str(tmp_path / "board"), "--no-html")
    assert code == 0, out
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "n2n" in board.split("Not run")[1] and "over --skip-longer-than 2 h" in board

    # A resume keeps the skip (the request's limit is unchanged) and re-times nothing that finished.
    monkeypatch.setattr("denoise_bench.run.runner.timed_estimate", _fake_estimate({"median3": 0.001, "n2n": 0.001}))
    code, out = bench_output("run", "--resume", str(result.run_dir), "--no-progress")
    assert code == 0, out
    assert read_jobs(result.run_dir).set_index("method").loc["n2n", "status"] == "skipped"


def test_the_dry_run_marks_the_units_over_the_limit(tmp_path: Path, median3: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("denoise_bench.cli.commands.timed_estimate", _fake_estimate({"median3": 0.001, "n2n": 10.0}))
    code, out = bench_output("run", "--dry-run", "--methods", "median3,n2n", "--noise", "gaussian:sigma=25",
                             "--profile", "smoke", "--skip-longer-than", "2", "--out", str(tmp_path / "run"))
    assert code == 0, out
    assert "  skip n2n on skimage, train gaussian:sigma=25, seed 0: estimated 10h00m" in out
    assert "  job  median3 on skimage" in out
    assert out.splitlines()[-1].startswith("1 job(s), 1 skipped cell(s); estimated time on this machine: ~4s")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("hours", ["0", "-1", "inf", "nan"])
def test_a_limit_that_is_not_a_positive_number_of_hours_is_refused(tmp_path: Path, hours: str) -> None:
    code, out = bench_output("run", "--methods", "bm3d", "--profile", "smoke", "--skip-longer-than", hours,
                             "--out", str(tmp_path / "run"))
    assert code == 2 and "--skip-longer-than" in out and "expected a number of hours above 0" in out, out
    assert not (tmp_path / "run").exists()


def test_a_limit_is_refused_under_an_executor_whose_units_run_elsewhere(tmp_path: Path, median3: None) -> None:
    with pytest.raises(BenchError, match="--skip-longer-than skips by the time a unit takes on this machine"):
        run(plan(_request(tmp_path, skip_longer_than=1.0)), echo=lambda line: None, executor=object())
    assert not (tmp_path / "run").exists()


class _FitsEachTestImage(Method):
    """Trains on each test image for the training budget (as a transductive CVF-SID does), on crops whose
    size does not depend on the image: 0.1 s per step (long enough that the evaluation's timing noise, tens of
    ms on a loaded machine, stays small against it), and nothing to train beforehand."""

    name = "fits-each"
    description = "sleeps 0.1 s per training step at test time"
    citation = "none"
    supervision = Supervision.NONE
    most_steps = 0  # the most steps any fit was asked for

    def test_fit_budget(self) -> str | None:
        return "iterations"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        steps = self.setup.budget.iterations
        _FitsEachTestImage.most_steps = max(_FitsEachTestImage.most_steps, steps)
        time.sleep(0.1 * steps)
        return noisy


def test_a_method_that_trains_on_each_test_image_is_probed_at_a_few_steps_per_case_not_per_pixel(
        tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(_FitsEachTestImage), name="fits-each")

    def estimate(side: int) -> float:
        p = plan(RunRequest(methods=["fits-each"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                            overrides={"iterations": 20_000, "test_images": 1, "test_crop": side},
                            out=tmp_path / f"run{side}", progress=False))
        (cost,) = estimate_units(p, units(p)).values()
        return cost.test_s

    small, large = estimate(64), estimate(256)
    # never fitted for its budget (20,000 steps would be 33 minutes here)
    assert _FitsEachTestImage.most_steps == 1 + PROBE_STEPS
    # one test case (one image, one test noise) of 20,000 steps of 0.1 s: 2000 s, within the claimed factor 2
    assert 1000 <= large <= 4000, large
    # crops of a fixed size: 16x the pixels is the same fit, where a per-pixel scaling would say 16x
    assert large / small == pytest.approx(1.0, rel=0.25), (small, large)


def test_a_leaderboard_takes_a_run_whose_every_job_was_skipped_and_lists_them_as_not_run(
        tmp_path: Path, median3: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A board's methods that this machine cannot afford: a run folder of skipped jobs and no records, merged
    # beside the runs that scored. Its empty records.csv once turned PSNR into text and crashed the ranking.
    monkeypatch.setattr("denoise_bench.run.runner.timed_estimate", _fake_estimate({"median3": 0.001, "bm3d": 0.001, "n2n": 10.0}))
    scored = run(plan(_request(tmp_path, methods=["median3", "bm3d"])), echo=lambda line: None).run_dir
    skipped = _request(tmp_path, methods=["n2n"], skip_longer_than=2.0, out=tmp_path / "over-limit")
    run(plan(skipped), echo=lambda line: None)
    assert read_jobs(tmp_path / "over-limit").status.tolist() == ["skipped"]
    code, out = bench_output("leaderboard", str(scored), str(tmp_path / "over-limit"), "--out", str(tmp_path / "board"),
                             "--no-html")
    assert code == 0, out
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "median3" in board.split("Not run")[0] and "bm3d" in board.split("Not run")[0]  # ranked and compared
    assert "n2n" in board.split("Not run")[1] and "estimated 10h00m on this machine" in board
