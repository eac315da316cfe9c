"""Methods that arrive trained (``Supervision.PRETRAINED``): declared, never trained here, and marked
wherever they are ranked, as a third-party package wrapping published weights would declare one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from denoise_bench import plugins
from denoise_bench.errors import BenchError
from denoise_bench.method import Method, NoiseInfo, validate_method_class
from denoise_bench.results import PRETRAINED_MARK, PRETRAINED_NOTE
from denoise_bench.supervision import Supervision
from helpers import Median3, MethodPlugin, bench


class PublishedBlur(Method):
    """A fixed 3x3 box filter standing in for published weights: trained elsewhere, on clean data."""

    name = "publishedblur"
    description = "fixed 3x3 box filter, as if loaded from published weights (test plugin)"
    citation = "test plugin"
    supervision = Supervision.PRETRAINED
    trainable = False
    input_multiple = 2  # padded side by side, not to a square

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        assert noisy.shape[-2] % 2 == 0 and noisy.shape[-1] % 2 == 0
        return F.avg_pool2d(F.pad(noisy, (1, 1, 1, 1), mode="reflect"), 3, stride=1)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    plugins.register_plugin(MethodPlugin(PublishedBlur, Median3), name="published")
    out = tmp_path / "run"
    result = bench("run", "--methods", "publishedblur,median3", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                   "--test-images", "1", "--no-progress", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_a_trainable_method_cannot_declare_itself_pretrained() -> None:
    class Trains(PublishedBlur):
        trainable = True

    with pytest.raises(BenchError, match="pretrained.*trainable = False"):
        validate_method_class(Trains)
    assert validate_method_class(PublishedBlur) == "publishedblur"


def test_the_results_table_marks_a_pretrained_method_and_says_so(run_dir: Path) -> None:
    text = (run_dir / "tables" / "psnr.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| test noise"))
    assert f" publishedblur{PRETRAINED_MARK} " in header and f"median3{PRETRAINED_MARK}" not in header
    assert PRETRAINED_NOTE in text and "not trained here" in text


def test_a_table_of_pretrained_methods_only_says_nothing_was_trained(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(PublishedBlur), name="published")
    out = tmp_path / "alone"
    result = bench("run", "--methods", "publishedblur", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                   "--test-images", "1", "--no-progress", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = (out / "tables" / "psnr.md").read_text()
    assert "not trained here (noise gaussian:sigma=25)" in text and "trained on gaussian:sigma=25" not in text


def test_the_leaderboard_marks_it_and_gives_no_training_noise(run_dir: Path, tmp_path: Path) -> None:
    board = tmp_path / "board"
    result = bench("leaderboard", str(run_dir), "--out", str(board), "--no-html")
    assert result.exit_code == 0, result.output
    text = (board / "leaderboard.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| publishedblur{PRETRAINED_MARK}"))
    assert "not trained here" in row and "gaussian:sigma=25" not in row
    other = next(line for line in text.splitlines() if line.startswith(f"| {Median3.name} "))
    assert "gaussian:sigma=25" in other
    assert PRETRAINED_NOTE in text
    # The paired comparisons name it with its mark as well.
    pairs = pd.read_csv(board / "pairs.csv")
    assert set(pairs.method) | set(pairs.vs) == {f"publishedblur{PRETRAINED_MARK}", Median3.name}


def test_a_table_where_nothing_was_trained_says_so_and_names_the_crops_it_scored(run_dir: Path, tmp_path: Path) -> None:
    # publishedblur arrived trained and median3 fits nothing: the heading said "trained on gaussian:sigma=25",
    # and no table said that the smoke profile scores 96x96 centre crops of the test images.
    text = (run_dir / "tables" / "psnr.md").read_text()
    assert "## skimage (gray), not trained here (noise gaussian:sigma=25)" in text and "trained on gaussian" not in text
    assert "Each number averages 1 test image, each scored on its centre 96x96 crop, not the whole image." in text
    board = tmp_path / "board"
    assert bench("leaderboard", str(run_dir), "--out", str(board), "--no-html").exit_code == 0
    assert "Each test image was scored on its centre 96x96 crop" in (board / "leaderboard.md").read_text()


def test_a_table_of_trained_and_pretrained_methods_names_those_not_trained_on_its_noise(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(PublishedBlur), name="published")
    out = tmp_path / "mixed"
    result = bench("run", "--methods", "publishedblur,unet", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                   "--test-images", "1", "--test-crop", "64", "--no-progress", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = (out / "tables" / "psnr.md").read_text()
    assert f"## skimage (gray), trained on gaussian:sigma=25 (publishedblur{PRETRAINED_MARK} not trained here)" in text
    assert "each scored on its centre 64x64 crop" in text
