"""Requests that would silently run nothing or the wrong thing are refused up front, in one line:
empty grids and dataset options no dataset reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from denoise_bench import plugins
from denoise_bench.cli import main
from denoise_bench.plugins import get_registry
from helpers import ToyPlugin


def _bench(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("flag, value, said", [
    ("--noise", " ", "no noise (--noise) given"), ("--noise", ",", "no noise (--noise) given"),
    ("--seeds", "", "no seed (--seeds) given"), ("--dataset", "", "no dataset (--dataset) given"),
    ("--dataset", " , ", "no dataset (--dataset) given"), ("--methods", "", "no methods given")])
def test_an_empty_grid_is_refused(tmp_path: Path, flag: str, value: str, said: str) -> None:
    code, output = _bench("run", "--methods", "bm3d", "--profile", "smoke", "--out", str(tmp_path / "run"), flag, value)
    assert code == 2 and output.startswith(f"error: {said}") and output.count("\n") == 1, output
    assert not (tmp_path / "run").exists()


def test_an_evaluation_with_no_test_set_or_no_methods_says_so(tmp_path: Path) -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")
    code, _ = _bench("run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--no-progress",
                     "--out", str(tmp_path / "run"))
    assert code == 0
    for args, said in ((["--dataset", ""], "no dataset (--dataset) given"),
                       (["--dataset", "skimage", "--methods", ""], "no methods (--methods) given")):
        code, output = _bench("evaluate", "--run", str(tmp_path / "run"), *args, "--out", str(tmp_path / "eval"))
        assert code == 2 and output.startswith(f"error: {said}"), output


def _folder(path: Path) -> Path:
    path.mkdir()
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path / f"im{i}.png")
    return path


def test_a_dataset_option_no_dataset_reads_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "images")
    code, output = _bench("run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--dataset", str(folder),
                          "--dataset-option", "chanels=1", "--profile", "smoke", "--dry-run")
    assert code == 2 and output.count("\n") == 1, output
    assert output.startswith("error: --dataset-option chanels: no dataset of this run reads it "
                             "(folder takes path, channels, name); did you mean channels?")
    code, output = _bench("run", "--methods", "bm3d", "--dataset", "skimage", "--dataset-option", "channels=1",
                          "--profile", "smoke", "--dry-run")
    assert code == 2 and "(skimage takes none)" in output
    code, output = _bench("run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--dataset", f"skimage,{folder}",
                          "--dataset-option", "channels=1", "--profile", "smoke", "--dry-run")
    assert code == 0, output  # read by one of the run's datasets: the folder


def test_every_dataset_declares_the_options_it_reads() -> None:
    registry = get_registry()
    assert registry.dataset("folder").option_names == ("path", "channels", "name")
    assert registry.dataset("fmd").option_names == ("types", "captures")
    assert all(registry.dataset(name).option_names == () for name in ("skimage", "bsd68", "set12", "bsd300"))
