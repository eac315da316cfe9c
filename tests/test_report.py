"""The HTML leaderboard: tables, plots and sample crops, rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from denoise_bench.leaderboard import write_leaderboard
from denoise_bench.runner import RunRequest, plan, run
from denoise_bench.samples import sample_dir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-gpu", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    request = RunRequest(methods=["iddp", "bm3d"], noises=["gaussian"], datasets=["skimage"], profile="smoke",
                         out=base / "run", progress=False, eval_every=10)
    result = run(plan(request), echo=lambda _: None)
    assert result.failed.empty, result.failed
    write_leaderboard([base / "run"], base / "board")
    return base / "board"


def test_run_saves_sample_crops_of_every_method(board: Path) -> None:
    folder = sample_dir(board.parent / "run", "skimage", "gaussian:sigma=25")
    assert sorted(p.name for p in folder.glob("*.png")) == ["bm3d.png", "clean.png", "iddp.png", "noisy.png"]


def test_page_has_tables_plots_and_the_visual_grid(board: Path) -> None:
    page = (board / "index.html").read_text()
    assert page.count('<table class="sortable">') == 2  # sigma=25 and the range
    assert re.search(r"<td>bm3d†</td>", page) and "<td>iddp</td>" in page
    images = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert all((board / src).is_file() for src in images)
    assert any(src.startswith("plots/psnr_vs_noise_skimage_gaussian") for src in images)
    assert any(src.startswith("plots/psnr_vs_budget_skimage_gaussian_sigma=25") for src in images)
    assert sum("samples/skimage/gaussian_sigma=25/" in src for src in images) == 4  # noisy, 2 methods, clean
    for svg in (board / "plots").glob("*.svg"):
        assert (board / "plots" / f"{svg.stem}.png").is_file()  # PNG twin for papers


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_page_renders_in_headless_chromium(board: Path, tmp_path: Path) -> None:
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", "--dump-dom",
                          (board / "index.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count('data-sortable="ready"') == 2  # the sorting script ran on both tables
    images = len(re.findall(r"<img ", dom))
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert loaded and int(loaded.group(1)) == images > 0  # every plot and crop actually rendered
    assert "<td>iddp</td>" in dom
