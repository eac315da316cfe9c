"""Where the suite writes: nothing it did not write is ever overwritten or deleted.

``bench run --out`` goes only into a new or empty folder or a run folder; ``bench denoise`` writes only
new files, never over an input or over another output of the same call; ``bench leaderboard --out``
goes only into a new or empty folder or an earlier leaderboard's, never into a run folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denoise_bench import plugins
from helpers import ToyPlugin, bench_output

RUN = ["run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--test-images", "1",
       "--no-progress"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _png(path: Path, seed: int, side: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def toy() -> None:
    plugins.register_plugin(ToyPlugin(), name="toy")


@pytest.fixture
def median_run(tmp_path: Path, toy: None) -> Path:
    """A run folder of the per-image median filter on one gray image (sample crops included)."""
    code, output = bench_output(*RUN, "--out", str(tmp_path / "run"))
    assert code == 0, output
    return tmp_path / "run"


def test_a_run_goes_only_into_a_new_or_empty_folder_or_a_run_folder(tmp_path: Path, toy: None) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "records.csv").write_text("my own records\n")
    (mine / "tables").mkdir()
    (mine / "tables" / "psnr.md").write_text("my own table\n")
    before = _snapshot(mine)
    code, output = bench_output(*RUN, "--out", str(mine))
    assert code == 2 and output.count("\n") == 1, output
    assert f"--out {mine} holds files and is no run folder" in output
    assert _snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["records.csv", "tables"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = bench_output(*RUN, "--out", str(empty))
    assert code == 0 and (empty / "config.json").is_file(), output
    code, output = bench_output(*RUN, "--out", str(empty))  # a run folder: continued
    assert code == 0 and "1 job(s) already finished" in output, output


def test_denoise_never_writes_over_an_input_or_a_file_it_did_not_write(median_run: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _png(photos / "a.png", 1)
    before = _snapshot(photos)
    denoise = ["denoise", "--run", str(median_run), "--method", "median3"]
    code, output = bench_output(*denoise, str(photos), "--out", str(photos))  # out is the input folder
    assert code == 2 and output.count("\n") == 1 and f"--out {photos} holds input images" in output, output
    code, output = bench_output(*denoise, str(photos / "a.png"), "--out", str(photos))  # the folder of an input file
    assert code == 2 and f"--out {photos} holds input images" in output, output
    assert _snapshot(photos) == before
    # Two inputs of one name would be written to one file: nothing is written.
    _png(tmp_path / "other" / "a.jpg", 2)
    out = tmp_path / "out"
    code, output = bench_output(*denoise, str(photos / "a.png"), str(tmp_path / "other" / "a.jpg"), "--out", str(out))
    assert code == 2 and output.count("\n") == 1, output
    assert f"{photos / 'a.png'} and {tmp_path / 'other' / 'a.jpg'} would both be written to {out / 'a.png'}" in output
    assert not out.exists()
    # A file already in --out is not overwritten: nothing is written.
    (out / "keep").mkdir(parents=True)
    (out / "a.png").write_bytes(b"a file of the user's")
    _png(photos / "b.png", 3)
    code, output = bench_output(*denoise, str(photos), "--out", str(out))
    assert code == 2 and output.count("\n") == 1 and f"{out / 'a.png'} exists" in output, output
    assert (out / "a.png").read_bytes() == b"a file of the user's" and not (out / "b.png").exists()
    code, output = bench_output(*denoise, str(photos / "b.png"), "--out", str(out))  # a new name is written
    assert code == 0 and (out / "b.png").is_file(), output
    # The same file named twice is denoised once.
    code, output = bench_output(*denoise, str(photos / "a.png"), str(photos / "a.png"), "--out", str(tmp_path / "twice"))
    assert code == 0 and output.count(" -> ") == 1, output


def test_a_leaderboard_goes_only_into_a_new_or_empty_folder_or_an_earlier_leaderboard(median_run: Path,
                                                                                       tmp_path: Path) -> None:
    assert (median_run / "samples").is_dir()
    before = _snapshot(median_run)
    code, output = bench_output("leaderboard", str(median_run), "--out", str(median_run))
    assert code == 2 and output.count("\n") == 1 and f"--out {median_run} is a run folder" in output, output
    assert _snapshot(median_run) == before  # its samples/ above all
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "index.html").write_text("my own page")
    code, output = bench_output("leaderboard", str(median_run), "--out", str(mine))
    assert code == 2 and f"--out {mine} holds files and is no leaderboard folder" in output, output
    assert (mine / "index.html").read_text() == "my own page"
    board = tmp_path / "board"
    for _ in range(2):  # a new folder, then the leaderboard's own
        code, output = bench_output("leaderboard", str(median_run), "--out", str(board))
        assert code == 0 and (board / "samples").is_dir(), output


def test_perf_and_export_write_only_where_they_wrote_before(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "perf.md").write_text("my own notes")
    code, output = bench_output("perf", "--methods", "unet", "--steps", "1", "--rounds", "1", "--device", "cpu",
                          "--out", str(mine))
    assert code == 2 and f"--out {mine} holds files and is no perf folder" in output, output
    assert (mine / "perf.md").read_text() == "my own notes"
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights from elsewhere")
    code, output = bench_output("export", str(tmp_path / "run"), "--method", "unet", "--out", str(weights))
    assert code == 2 and output.count("\n") == 1 and "exists and is no denoise-bench export" in output, output
    assert weights.read_bytes() == b"weights from elsewhere"
