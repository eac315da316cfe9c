"""`bench run --config/--dry-run`, `--dataset PATH`, `bench --version`, `bench table` on the latest run, Ctrl-C,
the `next:` command after a run."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pandas as pd
import pytest

from denoise_bench import __version__, plugins
from denoise_bench.method import Method, TrainContext
from denoise_bench.noise import SYMMETRIC
from denoise_bench.supervision import Supervision
from denoise_bench.cli.commands import main, next_command
from denoise_bench.cli.request_options import request_of_options
from denoise_bench.run.request import DEFAULT_METHODS, RunRequest
from helpers import MethodPlugin, ToyPlugin, bench



class Passthrough(Method):
    name = "passthrough"
    description = "returns its input (test plugin)"
    citation = "none"
    supervision = Supervision.NONE

    def fit(self, view, context: TrainContext) -> None:
        pass

    def denoise(self, noisy, noise=None):
        return noisy


class Symmetric(Passthrough):
    name = "symmetric"
    requires = frozenset({SYMMETRIC})


class Interrupted(Passthrough):
    name = "interrupted"

    def fit(self, view, context: TrainContext) -> None:
        if context.checkpoint_path is not None:  # the run's training, not the time probe's short fit
            raise KeyboardInterrupt


@pytest.fixture
def test_methods():
    plugins.register_plugin(MethodPlugin(Passthrough, Symmetric, Interrupted), name="conveniences")
    yield
    plugins.unregister_plugin("conveniences")


def test_version() -> None:
    result = bench("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_dry_run_prints_jobs_skips_and_budgets_and_writes_nothing(tmp_path: Path, test_methods, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = bench("run", "--dry-run", "--methods", "passthrough,symmetric", "--noise", "gaussian:sigma=25,poisson:lam=30",
                   "--profile", "smoke", "--iterations", "7")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    job = next(i for i, line in enumerate(lines) if line.startswith("  job  passthrough on skimage, train poisson:lam=30"))
    assert "budget: 7 iterations x batch 2" in lines[job + 1]  # the job's details follow its line
    assert "  skip symmetric on skimage, train poisson:lam=30, seed 0: symmetric assumes symmetric noise; poisson is not" in lines
    assert lines[-1].startswith("3 job(s), 1 skipped cell(s); estimated time on this machine: ")
    assert not (tmp_path / "runs").exists()


def test_config_file_sets_flags_and_the_command_line_overrides_it(tmp_path: Path, test_methods) -> None:
    (tmp_path / "run.toml").write_text(
        'methods = ["passthrough"]\nnoise = ["gaussian:sigma=25"]\nprofile = "smoke"\nseeds = [3, 4]\n'
        'iterations = 5\ntest-images = 1\nprogress = false\n'
        '[method-option.passthrough]\n')
    out = tmp_path / "run"
    result = bench("run", "--config", str(tmp_path / "run.toml"), "--iterations", "6", "--seeds", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    request = json.loads((out / "config.json").read_text())["request"]
    assert request["methods"] == ["passthrough"] and request["noises"] == ["gaussian:sigma=25"]
    assert request["profile"] == "smoke" and request["overrides"]["test_images"] == 1
    assert request["overrides"]["iterations"] == 6 and request["seeds"] == [3]  # the command line wins

    replay = tmp_path / "replay"
    result = bench("run", "--config", str(out / "config.json"), "--out", str(replay))
    assert result.exit_code == 0, result.output
    assert json.loads((replay / "config.json").read_text())["request"] == request
    columns = ["method", "image", "test_noise", "psnr"]
    assert pd.read_csv(replay / "records.csv")[columns].equals(pd.read_csv(out / "records.csv")[columns])


def test_config_file_with_an_unknown_key_names_it_and_the_valid_ones(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('methods = "iddp"\nsigma = 25\n')
    result = bench("run", "--config", str(tmp_path / "run.toml"), "--dry-run")
    assert result.exit_code == 2
    assert "unknown key 'sigma'; valid keys: batch-size," in result.output and "method-option" in result.output


def test_config_file_values_are_checked_like_flags(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('profile = "huge"\n')
    result = bench("run", "--config", str(tmp_path / "run.toml"), "--dry-run")
    assert result.exit_code == 2 and "huge" in result.output


def test_dataset_path_uses_the_folder(tmp_path: Path, test_methods) -> None:
    import numpy as np
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((96, 96), 128, np.uint8)).save(tmp_path / "imgs" / "flat.png")
    out = tmp_path / "run"
    result = bench("run", "--methods", "passthrough", "--noise", "gaussian:sigma=25", "--dataset", str(tmp_path / "imgs"),
                   "--profile", "smoke", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    request = json.loads((out / "config.json").read_text())["request"]
    assert request["datasets"] == ["folder"] and request["dataset_options"]["path"] == str(tmp_path / "imgs")
    assert set(pd.read_csv(out / "records.csv").image) == {"flat"}


def test_table_without_an_argument_uses_the_latest_run(tmp_path: Path, test_methods, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, method in (("b", "passthrough"), ("a", "symmetric")):  # "a" runs last
        result = bench("run", "--methods", method, "--noise", "gaussian:sigma=25", "--profile", "smoke",
                       "--out", f"runs/{name}", "--no-progress")
        assert result.exit_code == 0, result.output
    os.utime(tmp_path / "runs" / "b" / "config.json", (1, 1))
    result = bench("table")
    assert result.exit_code == 0, result.output
    assert "runs/a" in result.output and "symmetric" in result.output and "passthrough" not in result.output


def test_table_without_an_argument_and_no_runs_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = bench("table")
    assert result.exit_code == 2 and "no run folders" in result.output


def test_ctrl_c_prints_the_resume_command_and_keeps_what_finished(tmp_path: Path, test_methods) -> None:
    out = tmp_path / "run"
    result = bench("run", "--methods", "passthrough,interrupted", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                   "--device", "cpu", "--out", str(out), "--no-progress")
    assert result.exit_code == 130, result.output
    assert f"resume with: bench run --resume {out} --device cpu" in result.output
    jobs = pd.read_csv(out / "jobs.csv")
    assert list(jobs.method) == ["passthrough"] and list(jobs.status) == ["done"]


def test_list_shows_options_requirements_properties_and_sources(test_methods) -> None:
    output = bench("list").output
    assert "options: lambda_start=2.0, lambda_end=20.0, t1='auto', eta=1.0" in output
    assert "needs pixel-independent+zero-mean noise" in output
    assert "from 'denoise_bench.methods.iddp' (distribution denoise-bench)" in output
    assert "from 'conveniences'" in output
    assert "properties: pixel-independent, signal-independent, symmetric, zero-mean; from" in output


def test_config_file_lr_scale_is_checked_like_the_flag(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text("lr-scale = inf\n")  # TOML has inf and nan
    result = bench("run", "--config", str(tmp_path / "run.toml"), "--dry-run")
    assert result.exit_code == 2 and "--lr-scale inf: expected a finite number above 0" in result.output, result.output


def test_the_next_command_keeps_the_runs_own_grid(tmp_path: Path) -> None:
    """After a smoke run of a Poisson grid, the next step is that grid under quick, not the default Gaussian job."""
    plugins.register_plugin(ToyPlugin(), name="toy")
    result = bench("run", "--methods", "median3", "--noise", "poisson", "--dataset", "skimage-color", "--seeds", "1",
                   "--profile", "smoke", "--test-images", "1", "--no-progress", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("next: ")]
    assert line == "next: bench run --methods median3 --noise poisson --dataset skimage-color --seeds 1 --profile quick"


def test_the_next_command_after_quick_is_a_dry_run_of_the_same_grid_under_small() -> None:
    asked = RunRequest(methods=["iddp", "nb2nb"], noises=["gaussian:sigma=25", "poisson-gaussian:lam=30,sigma=10"],
                       datasets=["folder"], profile="quick", method_options={"iddp": {"network": "unet"}},
                       dataset_options={"path": "my images"}, data_dir=Path("/elsewhere/sets"))
    step = next_command(asked)
    assert step.startswith("bench run --methods iddp,nb2nb --noise gaussian:sigma=25,poisson-gaussian:lam=30,sigma=10 "
                           "--dataset folder --method-option iddp:network=unet --dataset-option 'path=my images' "
                           "--data-dir /elsewhere/sets --profile small --dry-run   (about half an hour to an hour")
    # What it prints parses back into the same grid.
    words = shlex.split(step.split("   ")[0])[2:]
    again = request_of_options(main.commands["run"].make_context("run", words).params)
    assert (again.methods, again.noises, again.datasets, again.method_options, again.dataset_options) == (
        asked.methods, asked.noises, asked.datasets, asked.method_options, asked.dataset_options)
    default = RunRequest(methods=list(DEFAULT_METHODS), noises=["gaussian"], datasets=["skimage"], profile="smoke")
    assert next_command(default) == "bench run --profile quick"
