"""The time a grid will take, said before it starts: the timed probe, the dry run's jobs, the progress
lines' estimate corrected by finished units, and folders that cannot be loaded refused before any job."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
import torch
from PIL import Image

from denoise_bench import plugins
from denoise_bench.cli.commands import main
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.supervision import Supervision
from denoise_bench.run.grid import unit_jobs, units
from denoise_bench.run.progress import GridProgress
from denoise_bench.run.folder import ResultSink
from denoise_bench.run.runner import RunRequest, plan
from denoise_bench.run.dry_run import estimate_text
from denoise_bench.run.time_estimate import ProbeLoad, UnitCost, estimate_units, probe_load
from denoise_bench.threads import ThreadChoice, usable_cores
from denoise_bench.run.unit_runner import UnitRunner
from helpers import MethodPlugin


def _plan(tmp_path: Path, methods: list[str], **overrides: int):
    request = RunRequest(methods=methods, noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         overrides=overrides, out=tmp_path / "run", progress=False)
    return plan(request)


def test_the_probe_estimates_a_unit_within_a_factor_of_two_of_running_it(tmp_path: Path) -> None:
    # A ratio, so that the machine's speed cancels out. Factor 2 is what the estimate claims; the
    # probe times the same training loop and evaluation the unit runs, so what it misses is the
    # unit's fixed costs (building the net, loading the images, writing records and checkpoints),
    # which 60 steps keep small, and other load changing between the probe and the run. The probe
    # and the run are each measured three times, interleaved, and the closest pair is compared, so that a
    # burst of someone else's work on a shared machine does not fail the test (with two trainings and the
    # suite's two workers on two cores, one pair of two came out at 0.06 and the other at 2.2).
    p = _plan(tmp_path, ["unet"], iterations=60)
    (unit,) = units(p)
    ratios = []
    for attempt in range(3):
        estimate = estimate_units(p, [unit])[unit].seconds
        start = time.perf_counter()
        UnitRunner(p, lambda line: None).run_unit(unit, ResultSink(tmp_path / f"sink{attempt}"), set())
        ratios.append((time.perf_counter() - start) / estimate)
    closest = min(ratios, key=lambda r: abs(np.log(r)))
    assert 0.5 <= closest <= 2.0, ratios


class _SlowFirstFit(Method):
    """A per-image optimiser whose first fit in a process pays a one-off cost (as oneDNN's primitives and
    the allocator's pools make a real one's first fit slow), then a fixed cost per step: 20 ms, so that a
    scheduling delay of some milliseconds on a loaded machine stays small against the 100 ms the probe's
    extra steps take."""

    name = "slowfirst"
    description = "sleeps: one-off 0.4 s, then 20 ms per step"
    citation = "none"
    supervision = Supervision.NONE
    trainable = False
    official_budget = {"per_image_iterations": 100}
    started = False

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        if not _SlowFirstFit.started:
            _SlowFirstFit.started = True
            time.sleep(0.4)
        time.sleep(0.02 * self.setup.budget.per_image_iterations)
        return noisy


def test_a_per_image_optimisers_first_fit_does_not_hide_its_cost_per_step(tmp_path: Path) -> None:
    # The probe times the fit at 1 and 1 + PROBE_STEPS steps. Had the one-off cost of the first fit been in
    # the first of the two, the cost per step would come out as nothing: a Set12 run of zsn2n was once
    # estimated at 2 minutes and took 105.
    plugins.register_plugin(MethodPlugin(_SlowFirstFit), name="slowfirst")
    p = plan(RunRequest(methods=["slowfirst"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                        overrides={"per_image_iterations": 100, "test_images": 1}, out=tmp_path / "run",
                        progress=False))
    (unit,) = units(p)
    estimate = estimate_units(p, [unit])[unit].seconds
    # One test image at one test setting: 100 steps of 20 ms are 2 s; at least half of that must be seen.
    assert estimate >= 1.0, estimate


def test_the_progress_line_starts_from_the_probe_and_scales_it_by_how_far_finished_units_were_off(
        tmp_path: Path) -> None:
    p = _plan(tmp_path, ["unet", "n2n", "bm3d"])
    p.request.seeds = [0, 1]
    grid = units(p)
    estimates = {"unet": 100.0, "n2n": 50.0, "bm3d": 10.0}
    costs = {u: UnitCost(estimates[u.method], 0.0, {"skimage": 2}) for u in grid}
    now = [0.0]
    lines: list[str] = []
    progress = GridProgress(p, grid, set(), lines.append, lambda: now[0], costs=costs)
    assert progress.seconds_left() == pytest.approx(2 * (100 + 50 + 10))  # before any unit: the probe as it is
    now[0] = 200.0  # unet 0 took twice its estimate
    (job,) = unit_jobs(p, grid[0])
    progress.job_finished(job | {"status": "done", "seconds": 200.0})
    # unet 1 by unet's ratio (2), the others by the ratio of all finished units (also 2 so far)
    assert progress.seconds_left() == pytest.approx(2 * 100 + 2 * (2 * 50 + 2 * 10))
    assert lines[0].endswith("elapsed 3m20s, about 7m20s left")


def test_dry_run_shows_each_jobs_engine_options_images_and_time_and_the_total(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--dry-run", "--methods", "iddp,bm3d", "--profile", "smoke",
                                       "--test-images", "8", "--threads", "1", "--precision", "fp32",
                                       "--method-option", "iddp:beta1=0.9"])  # fp32 asked: auto is bf16 on a CPU with AMX
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("run folder: ") and "1 torch thread (--threads), engine fp32," in lines[0]
    assert lines[1] == "test sets: skimage (gray)"
    assert lines[2].startswith("  job  iddp on skimage, train gaussian:sigma=0-50, seed 0: about ")
    # skimage has 5 test images: a limit of 8 scores 5, and says so
    assert "on 5 skimage image(s); budget: 30 iterations x batch 2" in lines[3]
    assert "beta1=0.9*" in lines[4] and "network=unet3 " in lines[4]
    assert lines[5].startswith("  job  bm3d on skimage") and "(train 0s, test " in lines[5]
    assert lines[-1].startswith("2 job(s), 0 skipped cell(s); estimated time on this machine: ~")
    assert " timed probe at load " in lines[-1]  # how sure it is: the load it was taken at
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("make", ["empty", "not images"])
def test_a_folder_without_readable_images_is_refused_with_exit_2_before_any_job(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    if make == "not images":
        (folder / "a.png").write_text("not a picture")
        Image.fromarray(np.zeros((80, 80), np.uint8)).save(folder / "train.png")  # one good image is not enough
    out = tmp_path / "run"
    for extra in (["--dry-run"], ["--out", str(out)]):
        result = CliRunner().invoke(main, ["run", "--dataset", str(folder), "--methods", "unet", "--profile", "smoke",
                                           *extra])
        assert result.exit_code == 2, result.output
        assert "no image files" in result.output if make == "empty" else "a.png: not a readable image" in result.output
        assert not out.exists()  # refused before the run folder was written


def test_a_run_records_its_thread_count_and_why(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "bm3d", "--profile", "smoke", "--test-images", "1",
                                       "--threads", "1", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    said = next(i for i, line in enumerate(lines) if line.startswith("estimated time on this machine: ~"))
    assert said < next(i for i, line in enumerate(lines) if line.startswith("[1/1 jobs]"))  # before the first job
    assert json.loads((out / "config.json").read_text())["threads"] == {"count": 1, "why": "--threads"}


@pytest.mark.parametrize("load, said", [
    # The quick grid that said ~40 min at a load of 10 on 2 cores: the time were the cores free too, and why.
    (ProbeLoad(10.0, 2, 1), "estimated time on this machine: ~40 min, or ~7 min if the cores free up (4 job(s); from a "
                            "9s timed probe at load 10.0 on 2 cores, more load than cores: the time follows the load "
                            "while it runs)"),
    (ProbeLoad(1.5, 2, 1), "estimated time on this machine: ~40 min, or ~32 min if the cores free up (4 job(s); from a "
                           "9s timed probe at load 1.5 on 2 cores, cores shared with other work: the time follows the "
                           "load while it runs)"),
    (ProbeLoad(0.2, 2, 1), "estimated time on this machine: ~40 min (4 job(s); from a 9s timed probe at load 0.2 on "
                           "2 cores; longer if the load rises)"),
    (None, "estimated time on this machine: ~40 min (4 job(s); from a 9s timed probe)"),  # a GPU: not the cores' time
])
def test_the_estimate_says_the_load_it_was_taken_at_and_the_time_were_the_cores_free(load: ProbeLoad | None,
                                                                                      said: str) -> None:
    costs = {"unit": UnitCost(2400.0, 0.0, {"skimage": 5})}
    assert estimate_text(costs, 4, 9.0, (), load) == said  # type: ignore[arg-type]


def test_the_load_is_read_for_a_cpu_run_only() -> None:
    cpu = SimpleNamespace(device=torch.device("cpu"), threads=ThreadChoice(1, "--threads"))
    assert probe_load(cpu, load=lambda: 3.25) == ProbeLoad(3.25, usable_cores(), 1)  # type: ignore[arg-type]

    def no_load_average() -> float:
        raise OSError("no load average here")

    assert probe_load(cpu, load=no_load_average) is None  # type: ignore[arg-type]
    gpu = SimpleNamespace(device=torch.device("cuda", 0), threads=ThreadChoice(1, "--threads"))
    assert probe_load(gpu, load=lambda: 3.25) is None  # type: ignore[arg-type]
