"""Requests that would silently run nothing or the wrong thing are refused up front, in one line:
empty grids, dataset options no dataset reads, and noise levels that are not numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from denoise_bench import plugins
from denoise_bench.data import CleanImage, Dataset
from denoise_bench.errors import BenchError
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.supervision import Supervision
from denoise_bench.testing import check_dataset
from helpers import MethodPlugin, ToyPlugin, bench_output


@pytest.mark.parametrize("flag, value, said", [
    ("--noise", " ", "no noise (--noise) given"), ("--noise", ",", "no noise (--noise) given"),
    ("--seeds", "", "no seed (--seeds) given"), ("--dataset", "", "no dataset (--dataset) given"),
    ("--dataset", " , ", "no dataset (--dataset) given"), ("--methods", "", "no methods given")])
def test_an_empty_grid_is_refused(tmp_path: Path, flag: str, value: str, said: str) -> None:
    code, output = bench_output("run", "--methods", "bm3d", "--profile", "smoke", "--out", str(tmp_path / "run"), flag, value)
    assert code == 2 and output.startswith(f"error: {said}") and output.count("\n") == 1, output
    assert not (tmp_path / "run").exists()


def test_an_evaluation_with_no_test_set_or_no_methods_says_so(tmp_path: Path) -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")
    code, _ = bench_output("run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--no-progress",
                     "--out", str(tmp_path / "run"))
    assert code == 0
    for args, said in ((["--dataset", ""], "no dataset (--dataset) given"),
                       (["--dataset", "skimage", "--methods", ""], "no methods (--methods) given")):
        code, output = bench_output("evaluate", "--run", str(tmp_path / "run"), *args, "--out", str(tmp_path / "eval"))
        assert code == 2 and output.startswith(f"error: {said}"), output


def _folder(path: Path) -> Path:
    path.mkdir()
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path / f"im{i}.png")
    return path


def test_a_dataset_option_no_dataset_reads_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "images")
    code, output = bench_output("run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--dataset", str(folder),
                          "--dataset-option", "chanels=1", "--profile", "smoke", "--dry-run")
    assert code == 2 and output.count("\n") == 1, output
    assert output.startswith("error: --dataset-option chanels: no dataset of this run reads it "
                             "(folder takes path, channels, name); did you mean channels?")
    code, output = bench_output("run", "--methods", "bm3d", "--dataset", "skimage", "--dataset-option", "channels=1",
                          "--profile", "smoke", "--dry-run")
    assert code == 2 and "(skimage takes none)" in output
    code, output = bench_output("run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--dataset", f"skimage,{folder}",
                          "--dataset-option", "channels=1", "--profile", "smoke", "--dry-run")
    assert code == 0, output  # read by one of the run's datasets: the folder


def test_every_dataset_declares_the_options_it_reads() -> None:
    registry = get_registry()
    assert registry.dataset("folder").option_names == ("path", "channels", "name")
    assert registry.dataset("fmd").option_names == ("types", "captures")
    assert all(registry.dataset(name).option_names == () for name in ("skimage", "bsd68", "set12", "bsd300"))


class Oracle(Method):
    """Told the noise level, like BM3D: bench denoise gives it --sigma."""

    name = "oracle"
    description = "scales by the noise level it is told (test plugin)"
    citation = "none"
    supervision = Supervision.NONE
    trainable = False
    uses_noise_level = True

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return noisy * (1 - noise.levels["sigma"] / 255)


@pytest.mark.parametrize("sigma", ["nan", "inf", "-5", "0", "300"])
def test_bench_denoise_refuses_a_sigma_that_is_no_noise_level(tmp_path: Path, sigma: str) -> None:
    plugins.register_plugin(MethodPlugin(Oracle), name="oracle")
    code, output = bench_output("run", "--methods", "oracle", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                          "--no-progress", "--out", str(tmp_path / "run"))
    assert code == 0, output
    image = tmp_path / "noisy.png"
    Image.fromarray(np.full((20, 20), 128, dtype=np.uint8)).save(image)
    code, output = bench_output("denoise", str(image), "--run", str(tmp_path / "run"), "--method", "oracle", "--sigma", sigma,
                          "--out", str(tmp_path / "out"))
    assert code == 2 and output.startswith(f"error: --sigma {float(sigma):g}: ") and output.count("\n") == 1, output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec, levels, said", [
    ("gaussian:sigma=25", {"sigma": math.nan}, r"sigma=nan of gaussian noise is not a number in \[0, 255\]"),
    ("gaussian:sigma=25", {"sigma": -1.0}, r"sigma=-1 of gaussian noise"),
    ("poisson:lam=30", {"lam": 0.0}, r"lam=0 of poisson noise is not a number in \(0, 1e\+06\]")])
def test_a_noise_level_that_is_not_a_number_in_range_is_refused(spec: str, levels: dict, said: str) -> None:
    with pytest.raises(BenchError, match=said):
        NoiseInfo(parse_spec(spec, get_registry().noise_families), levels)
    assert NoiseInfo(parse_spec("gaussian:sigma=25", get_registry().noise_families), {"sigma": 25.0})


class Sized(Dataset):
    """Reads an option it does not declare."""

    name = "sized"
    description = "random images of a chosen size (test plugin)"
    channels = 1

    def load(self, split: str) -> list[CleanImage]:
        side = int(self.options.get("side", "16"))
        return [CleanImage("a", np.zeros((side, side, 1), dtype=np.uint8))]


def test_the_dataset_kit_refuses_an_option_the_dataset_does_not_declare() -> None:
    assert check_dataset(Sized) == []
    failures = check_dataset(Sized, side="20")
    assert failures and "option(s) side that its option_names () do not declare" in failures[0]
    Declared = type("Declared", (Sized,), {"option_names": ("side",)})
    assert check_dataset(Declared, side="20") == []
