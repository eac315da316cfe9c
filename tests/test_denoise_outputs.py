"""bench denoise with a run's per-image method on a folder dataset, and its warning about outputs that look like
no denoising (an under-trained model's black or flat image), written all the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from denoise_bench import plugins
from denoise_bench.models.denoise_files import degenerate
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.supervision import Supervision
from helpers import Median3, MethodPlugin, bench


class Blackout(Method):
    """What an under-trained network can give: black, whatever the input."""

    name = "blackout"
    description = "all black (test plugin)"
    citation = "none"
    supervision = Supervision.NONE
    trainable = False

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return torch.zeros_like(noisy)


@pytest.fixture
def folder_run(tmp_path: Path) -> Path:
    """A run of two per-image methods on a folder of images (the 'folder' dataset, named folder:images)."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(40, 216, (40, 40, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    plugins.register_plugin(MethodPlugin(Median3, Blackout), name="per-image")
    run = tmp_path / "run"
    result = bench("run", "--methods", "median3,blackout", "--dataset", str(images), "--noise", "gaussian:sigma=25",
                    "--profile", "smoke", "--test-images", "1", "--no-progress", "--out", str(run))
    assert result.exit_code == 0, result.output
    return run


def test_a_per_image_method_of_a_folder_run_denoises_files(folder_run: Path, tmp_path: Path) -> None:
    result = bench("denoise", str(tmp_path / "images" / "im0.png"), "--run", str(folder_run), "--method", "median3",
                    "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output  # was: unknown dataset 'folder:images'
    assert (tmp_path / "o" / "im0.png").is_file() and "warning" not in result.output


def test_a_black_output_is_written_with_a_warning_naming_it(folder_run: Path, tmp_path: Path) -> None:
    result = bench("denoise", str(tmp_path / "images"), "--run", str(folder_run), "--method", "blackout",
                    "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    for name in ("im0.png", "im1.png"):
        assert (np.array(Image.open(tmp_path / "o" / name)) == 0).all()
        assert f"warning: {tmp_path / 'o' / name}: it is nearly flat" in result.output, result.output
    assert "far darker than its input" in result.output and "is blackout trained enough?" in result.output


@pytest.mark.parametrize("make,said", [
    (lambda x: np.full_like(x, np.nan), "NaN or infinite"),
    (lambda x: np.full_like(x, 0.5), "nearly flat"),
    (lambda x: x * 0.3, "far darker"),
    (lambda x: 1 - (1 - x) * 0.3, "far brighter"),
    (lambda x: x, ""),
    (lambda x: np.clip(x + 0.02, 0, 1), ""),  # a slight shift of level is no sign of anything
])
def test_degenerate_outputs_are_told_from_denoised_ones(make, said: str) -> None:
    pixels = np.random.default_rng(0).uniform(0.2, 0.8, (32, 32, 1)).astype(np.float32)
    doubt = degenerate(make(pixels), pixels)
    assert (said in doubt) if said else doubt == ""


def test_a_flat_input_may_give_a_flat_output() -> None:
    flat = np.full((16, 16, 1), 0.4, dtype=np.float32)
    assert degenerate(flat, flat) == ""
