"""A method whose results do not depend on the seed (Method.seeded False, as BM3D) is scored under one seed of a
run and its result recorded under each other seed, instead of being run again; a resumed run does the same."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.cli.commands import main
from denoise_bench.method import MethodSetup, NoiseInfo
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import get_profile
from denoise_bench.schema import JOB_KEY
from denoise_bench.testing import check_method
from helpers import Median3, MethodPlugin


class CountedMedian(Median3):
    """The 3x3 median, counting its calls; it draws no random numbers, so it declares itself seedless."""

    name = "counted"
    seeded = False
    calls = 0

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        type(self).calls += 1
        return super().denoise(noisy, noise)


class SeededCount(CountedMedian):
    """The same, declared seeded: run for every seed, as any method was before."""

    name = "seeded"
    seeded = True
    calls = 0


def _run(out: Path) -> str:
    result = CliRunner().invoke(main, ["run", "--methods", "counted,seeded", "--noise", "gaussian:sigma=25", "--seeds",
                                       "0,1,2", "--profile", "smoke", "--test-images", "1", "--no-progress",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def counted() -> type[CountedMedian]:
    CountedMedian.calls = SeededCount.calls = 0
    plugins.register_plugin(MethodPlugin(CountedMedian, SeededCount), name="counted")
    return CountedMedian


def test_a_seedless_method_runs_once_and_is_recorded_under_every_seed(tmp_path: Path, counted) -> None:
    output = _run(tmp_path / "run")
    records = pd.read_csv(tmp_path / "run" / "records.csv")
    jobs = pd.read_csv(tmp_path / "run" / "jobs.csv")
    per_seed = len(records[(records.method == "seeded") & (records.seed == 0)])  # images scored under one seed
    assert per_seed > 0 and SeededCount.calls - counted.calls == 2 * per_seed  # seeds 1 and 2 copied seed 0's result
    assert "seed 1: the result of seed 0, recorded again (counted does not depend on the seed)" in output
    assert (jobs.status == "done").all() and sorted(jobs[jobs.method == "counted"].seed) == [0, 1, 2]
    ours = records[records.method == "counted"].drop(columns="seed").sort_values(["test_noise", "image"])
    theirs = records[records.method == "seeded"]
    assert len(ours) == len(theirs) > 0  # as many records as a method run for each seed
    by_seed = [part.drop(columns=["seed", "seconds"]).reset_index(drop=True)
               for _, part in records[records.method == "counted"].groupby("seed")]
    assert all(part.equals(by_seed[0]) for part in by_seed)
    assert theirs.psnr.mean() == pytest.approx(ours.psnr.mean())  # the tables' numbers: the same filter, same noise


def test_a_resumed_run_records_the_missing_seeds_from_the_finished_one(tmp_path: Path, counted) -> None:
    out = tmp_path / "run"
    _run(out)
    jobs, records = pd.read_csv(out / "jobs.csv"), pd.read_csv(out / "records.csv")
    lost = (jobs.method == "counted") & (jobs.seed > 0)  # as if killed after seed 0's job
    jobs[~lost].to_csv(out / "jobs.csv", index=False)
    records[~((records.method == "counted") & (records.seed > 0))].to_csv(out / "records.csv", index=False)
    output = _run(out)
    assert "seed 2: the result of seed 0, recorded again" in output, output
    assert set(pd.read_csv(out / "jobs.csv").status) == {"done"}
    again = pd.read_csv(out / "records.csv")
    key = JOB_KEY + ["test_noise", "image", "repeat"]
    columns = key + ["psnr", "ssim", "noise_seed"]
    assert again.sort_values(key)[columns].reset_index(drop=True).equals(records.sort_values(key)[columns].reset_index(drop=True))


def test_bm3d_is_seedless_because_its_result_is_the_same_for_every_seed() -> None:
    bm3d = get_registry().method("bm3d")
    assert bm3d.seeded is False
    noisy = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    info = NoiseInfo(parse_spec("gaussian:sigma=25", get_registry().noise_families), {"sigma": 25.0})
    budget = get_profile("smoke").override()
    outputs = [bm3d(MethodSetup(channels=1, budget=budget, seed=seed)).denoise(noisy, info) for seed in (0, 7)]
    assert torch.equal(outputs[0], outputs[1])


class SeedDependent(Median3):
    """Wrongly declared seedless: its estimate moves with the seed."""

    name = "seed-dependent"
    seeded = False

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return super().denoise(noisy, noise) + 1e-3 * self.setup.seed


def test_the_conformance_kit_refuses_a_seedless_declaration_the_method_does_not_keep() -> None:
    (failure,) = [f for f in check_method(SeedDependent, channels=(1,)) if "seeded" in f]
    assert "declares seeded = False, but seeds 7 and 8 differ" in failure
    assert not [f for f in check_method(CountedMedian, channels=(1,)) if "seeded" in f]
