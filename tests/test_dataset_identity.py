"""One key, one record: two images of one id (``a.png``, ``a.jpg``) and a request that names a seed,
method, dataset or training noise twice are refused when the run is planned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from denoise_bench import plugins
from denoise_bench.cli import main
from denoise_bench.data import TEST, CleanImage, Dataset
from denoise_bench.errors import BenchError
from helpers import ToyPlugin

RUN = ["run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--no-progress"]


def _bench(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _png(path: Path, seed: int, side: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(autouse=True)
def toy() -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")


# --- one key, one record -------------------------------------------------------------------------

def test_two_images_of_one_name_in_a_folder_are_refused_when_planned(tmp_path: Path) -> None:
    _png(tmp_path / "data" / "a.png", 1)
    Image.open(_png(tmp_path / "b.png", 2)).save(tmp_path / "data" / "a.jpg")
    code, output = _bench(*RUN, "--dataset", str(tmp_path / "data"), "--dry-run")
    assert code == 2 and output.count("\n") == 1, output
    assert "a.jpg and a.png are both image 'a'" in output


class Twice(Dataset):
    """A plugin dataset whose loader gives one id to two images."""

    name = "twice"
    channels = 1

    def load(self, split: str) -> list[CleanImage]:
        pixels = np.zeros((8, 8, 1), np.uint8)
        return [CleanImage("x", pixels), CleanImage("x", pixels + 1)]


def test_a_dataset_that_gives_one_id_to_two_images_is_refused() -> None:
    with pytest.raises(BenchError, match="dataset 'twice': two images of the 'test' split have the id 'x'"):
        Twice().images(TEST)


@pytest.mark.parametrize("flags, said", [
    (["--seeds", "0,1,0"], "--seeds names 0 twice"),
    (["--methods", "median3,bm3d,median3"], "--methods names median3 twice"),
    (["--dataset", "skimage,skimage"], "--dataset names skimage twice"),
    (["--noise", "gaussian:sigma=25", "--noise", "gaussian:sigma=25"],
     "--noise gaussian:sigma=25 and gaussian:sigma=25 both train on gaussian:sigma=25"),
    (["--noise", "gaussian", "--noise", "gaussian:sigma=0-50"],
     "--noise gaussian and gaussian:sigma=0-50 both train on gaussian:sigma=0-50"),
])
def test_a_request_naming_a_job_twice_is_refused_when_planned(tmp_path: Path, flags: list[str], said: str) -> None:
    args = [*RUN, "--out", str(tmp_path / "run")]
    for flag in flags:
        if flag in args:  # replace RUN's value of this flag
            del args[args.index(flag):args.index(flag) + 2]
    code, output = _bench(*args, *flags)
    assert code == 2 and output.count("\n") == 1 and said in output, output
    assert not (tmp_path / "run").exists()
