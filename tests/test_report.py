"""The HTML leaderboard: tables, plots and sample crops, rendered in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from denoise_bench.report.leaderboard import write_leaderboard
from denoise_bench.report.leaderboard_merge import RunInfo
from denoise_bench.report.about import about_html
from denoise_bench.report.plots import budget_figure, method_styles
from denoise_bench.report.sample_crops import ZOOM
from denoise_bench.results import BELOW_FLOOR_MARK, FLOOR, FLOOR_NOTE, read_curves, read_records
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.store.sample_files import sample_dir

from helpers import run_folder_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-gpu", "--virtual-time-budget=5000", "--window-size=1600,1200"]
SIGMA25 = "samples/skimage/gaussian_sigma=25/"


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
    assert re.search(r"<td>bm3d†</td>", page) and re.search(rf"<td>iddp( {BELOW_FLOOR_MARK})?</td>", page)
    images = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert all((board / src).is_file() for src in images)
    assert any(src.startswith("plots/psnr_vs_noise_skimage_gaussian") for src in images)
    assert any(src.startswith("plots/psnr_vs_budget_skimage_gaussian_sigma=25") for src in images)
    crops = [src for src in images if src.startswith(SIGMA25) and "/zoom/" not in src]
    details = [src for src in images if src.startswith(SIGMA25 + "zoom/")]
    assert len(crops) == len(details) == 4  # noisy, 2 methods, clean; each with its detail
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
    assert re.search(rf"<td>iddp( {BELOW_FLOOR_MARK})?</td>", dom)
    narrowest = re.search(r'data-narrowest-crop="(\d+)"', dom)
    assert narrowest and int(narrowest.group(1)) >= 256  # crops large enough to judge in a 1600 px window


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_a_page_of_runs_made_on_other_machines_fits_a_1400_px_window(board: Path, tmp_path: Path) -> None:
    """The About block tables where runs differ (machine, versions, commit); that table, as every table of
    the page, stays inside the window: the window never scrolls sideways."""
    run = board.parent / "run"
    other = tmp_path / "the-same-smoke-run-repeated-on-a-workstation-with-a-gpu"
    shutil.copytree(run, other)
    environment = json.loads((other / "environment.json").read_text())
    environment |= {"device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3 (MIG 3g.40gb, driver 550.90.07)",
                    "platform": "Linux-5.15.0-1071-nvidia-x86_64-with-glibc2.35", "python": "3.12.3",
                    "git_commit": "f" * 40, "versions": environment["versions"] | {"torch": "2.5.1+cu124"}}
    (other / "environment.json").write_text(json.dumps(environment))
    out = tmp_path / "board"
    write_leaderboard([run, other], out, exclude={str(run): ["bm3d"], str(other): ["iddp"]})
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size=")] + ["--window-size=1400,900"]
    dom = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          (out / "index.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert '<table class="differences">' in dom and "NVIDIA H100" in dom  # the table of what differs is there
    page, window = (re.search(rf'data-{name}-width="(\d+)"', dom) for name in ("page", "window"))
    assert page and window and int(window.group(1)) > 1000  # measured, in a window about 1400 px wide
    assert int(page.group(1)) <= int(window.group(1))  # nothing wider than the window: no sideways scrolling


def _run_files(board: Path) -> tuple[dict, dict]:
    run_dir = board.parent / "run"
    return json.loads((run_dir / "config.json").read_text()), json.loads((run_dir / "environment.json").read_text())


def test_page_says_what_the_numbers_were_made_under(board: Path) -> None:
    page = (board / "index.html").read_text()
    config, environment = _run_files(board)
    about = page[page.index("About these numbers"):page.index("</section>")]
    assert page.index("About these numbers") < page.index('<table class="sortable">')  # near the top
    budget = config["budget"]
    for expected in ["nb2nb-v1", config["protocol"]["description"], "smoke", f"{budget['iterations']} iterations",
                     f"batch {budget['batch_size']}", f"{budget['crop_size']}×{budget['crop_size']} crops",
                     f"width {budget['width']}", f"lr rule {budget['lr_rule']}", f"init {budget['init']}",
                     f"precision {config['engine']['precision']}", environment["git_commit"][:12],
                     environment["platform"].split("-")[0], f"torch {environment['versions']['torch']}"]:
        assert expected in about, expected
    assert f"CPU {environment['cpu_model']}" in about  # the smoke run trains on the CPU: its model is named
    assert re.search(r"Runs made</dt><dd>\d{4}-\d\d-\d\d", about)
    assert "Caveat</dt><dd>smoke profile" in about  # numbers that rank nothing say so, first
    assert re.search(r"Test images</dt><dd>Every row averages \d+ skimage test images\.", about)


def _run_info(name: str, budgets: dict[str, dict]) -> RunInfo:
    config = run_folder_config(profile="official", protocol={"id": "nb2nb-v1"}, budget={"iterations": 100, "batch_size": 4},
                               budgets=budgets)
    return RunInfo(Path(name), config, {}, "2025-01-02", "")


def _records(run_dir: str, iterations: dict[str, int], images: int = 3) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "iterations": n, "run_dir": run_dir, "profile": "official", "dataset": "bsd68",
                          "train_noise": "gaussian:sigma=25", "test_noise": "gaussian:sigma=25", "image": f"{i:02d}",
                          "psnr": 28.0, "input_psnr": 20.0} for m, n in iterations.items() for i in range(images)])


def test_per_method_budgets_are_shown_per_method_only_where_they_differ() -> None:
    common = {"batch_size": 4, "crop_size": 128, "width": 48, "lr_rule": "official", "init": "own"}
    runs = [_run_info("runs/a", {"n2n": common | {"iterations": 1000}, "nb2nb": common | {"iterations": 2000}})]
    about = about_html(runs, _records("runs/a", {"n2n": 1000, "nb2nb": 2000, "bm3d": 0}))
    assert "128×128 crops" in about and "batch 4" in about  # shared fields once
    assert "<th>training budget</th>" in about and "batch 4</td>" not in about  # a cell only for what differs
    # bm3d trains nothing: it has no budget of its own and joins its run's first row
    assert re.search(r"<td>n2n, bm3d</td><td>1000 iterations</td>.*<td>nb2nb</td><td>2000 iterations</td>", about)
    same = about_html([_run_info("runs/a", {"n2n": common, "nb2nb": common})], _records("runs/a", {"n2n": 100, "nb2nb": 100}))
    assert "<table" not in same and "2025-01-02" in same


def test_runs_that_agree_are_described_once_and_their_differences_in_words() -> None:
    def info(name: str, batch: int, commit: str) -> RunInfo:
        config = run_folder_config(dict.fromkeys(["unet", "n2n", "dip"], {}), profile="cpu", protocol={"id": "nb2nb-v1"},
                                   budget={"iterations": 6000, "batch_size": batch})
        environment = {"device": "cpu", "cpu_model": "Xeon", "git_commit": commit, "platform": "Linux-6.1-v1-x86_64"}
        return RunInfo(Path(name), config, environment, "2025-01-02", "")

    runs = [info("runs/a", 2, "a" * 40), info("runs/b", 2, "b" * 40), info("runs/c", 8, "b" * 40)]
    records = pd.concat([_records("runs/a", {"unet": 6000}), _records("runs/b", {"n2n": 6000}),
                         _records("runs/c", {"dip": 0}, images=1)])
    about = about_html(runs, records)
    assert about.count("CPU Xeon") == 1 and about.count("6000 iterations") == 1  # what all agree on, once
    assert "<th>commit</th>" in about and "<td>aaaaaaaaaaaa</td>" in about  # what differs, per run
    assert re.search(r"<td><code>runs/c</code></td><td>dip</td><td>batch 8</td>", about)
    assert "{" not in about and "'" not in about  # words, not dicts
    assert "Every row averages 3 bsd68 test images, except dip: 1 of bsd68." in about
    assert "no learning curve was recorded" in about  # how far from converged is said even when unmeasured


def test_dagger_is_explained_right_under_each_table_that_has_one(board: Path) -> None:
    page = (board / "index.html").read_text()
    notes = re.findall(r'</table></div>\s*<p class="note oracle-note">† bm3d†: told the true noise level of each test '
                       r"image", page)
    assert len(notes) == page.count('<table class="sortable">') == 2


def test_each_table_has_the_floor_row_and_says_what_it_means(board: Path) -> None:
    page = (board / "index.html").read_text()
    floors = _rows(page, FLOOR)
    noisy = _rows(page, "noisy input")
    assert len(floors) == len(noisy) == 2
    assert all(float(f["psnr"]) > float(n["psnr"]) for f, n in zip(floors, noisy))  # at these noise levels it denoises
    notes = re.findall(r'<p class="note floor-note">(.*?)</p>', page)
    assert len(notes) == 2 and notes[0] == html.escape(FLOOR_NOTE)


def _rows(page: str, method: str) -> list[dict[str, str]]:
    """Each table's row of ``method`` (marked below the floor or not), as header -> cell text."""
    found = []
    for table in re.findall(r'<table class="sortable">(.*?)</table>', page):
        heads = re.findall(r"<th>(.*?)</th>", table)
        for row in re.findall(r"<tr>(<td>.*?)</tr>", table):
            cells = re.findall(r"<td>(.*?)</td>", row)
            if cells[0].removesuffix(f" {BELOW_FLOOR_MARK}") == method:
                found.append(dict(zip(heads, cells)))
    return found


def test_short_intervals_are_flagged_and_per_image_methods_show_their_test_cost(board: Path) -> None:
    page = (board / "index.html").read_text()
    # The smoke profile tests on two images: every interval is marked, and the mark explained under its table.
    assert [row["gap to the method above (dB, 95% CI)"][-1] for row in _rows(page, "iddp") + _rows(page, "bm3d†")
            if row["gap to the method above (dB, 95% CI)"]] == ["‡", "‡"]
    assert page.count('<p class="note few-images-note">‡ interval over fewer than 5 common images') == 2
    # BM3D does not train: no iterations or training time, but its mean seconds per test image.
    bm3d = _rows(page, "bm3d†")
    assert {(row["iterations"], row["train s"]) for row in bm3d} == {("", "")}
    records = read_records(board.parent / "run")
    seconds = records[records.method == "bm3d"].groupby("test_noise").seconds.mean().round(3)
    assert sorted(float(row["test s/image"]) for row in bm3d) == sorted(seconds) and seconds.min() > 0
    assert all(int(row["iterations"]) > 0 for row in _rows(page, "iddp"))


def test_every_crop_has_a_zoomed_detail_of_its_centre(board: Path) -> None:
    folder = board / SIGMA25
    for crop_path in sorted(folder.glob("*.png")):
        crop = np.asarray(Image.open(crop_path))
        detail = np.asarray(Image.open(folder / "zoom" / crop_path.name))
        side_h, side_w = crop.shape[0] // ZOOM, crop.shape[1] // ZOOM
        top, left = (crop.shape[0] - side_h) // 2, (crop.shape[1] - side_w) // 2
        centre = crop[top:top + side_h, left:left + side_w]
        assert np.array_equal(detail, centre.repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)), crop_path.name
    page = (board / "index.html").read_text()
    assert f'src="{SIGMA25}zoom/bm3d.png"' in page


def test_css_uses_the_page_width_and_shows_crops_large(board: Path) -> None:
    style = re.search(r"<style>(.*?)</style>", (board / "index.html").read_text(), re.S).group(1)
    for value, unit in re.findall(r"max-width:\s*([\d.]+)(px|em|rem|%|vw)", style):
        pixels = float(value) * {"px": 1, "em": 16, "rem": 16}.get(unit, 0)
        assert unit in ("%", "vw") or pixels >= 1200, f"narrow max-width {value}{unit}"
    assert re.search(r"\.sample img \{[^}]*image-rendering: pixelated", style)
    assert "minmax(256px, 1fr)" in style  # no crop column narrower than 256 CSS px


def _marked(line: object) -> bool:
    return line.get_marker() not in (None, "", " ", "None", "none") and line.get_markersize() >= 5


def test_a_method_with_a_single_point_is_a_labelled_marker(board: Path) -> None:
    records = read_records(board.parent / "run")
    block = records[(records.dataset == "skimage") & (records.test_noise == "gaussian:sigma=25")]
    fig = budget_figure("skimage", "gaussian:sigma=25", block, pd.DataFrame(), method_styles(list(records.method)), {"bm3d"})
    ax = fig.axes[0]  # no learning curve, the same steps for all: only the time panel
    assert len(fig.axes) == 1 and ax.get_xlabel().startswith("training time (s")
    single = [line for line in ax.get_lines() if line.get_label() == "iddp"]
    assert len(single) == 1 and len(single[0].get_xdata()) == 1 and _marked(single[0])
    assert "iddp" in [text.get_text() for text in ax.texts]  # named beside the marker
    assert ax.get_ylabel() == "PSNR (dB)"


def test_learning_curves_are_lines_with_markers_against_steps_and_time(board: Path) -> None:
    records, curves = read_records(board.parent / "run"), read_curves(board.parent / "run")
    block = records[(records.dataset == "skimage") & (records.test_noise == "gaussian:sigma=25")]
    sel = curves[(curves.dataset == "skimage") & (curves.test_noise == "gaussian:sigma=25")]
    fig = budget_figure("skimage", "gaussian:sigma=25", block, sel, method_styles(list(records.method)), set())
    assert [ax.get_xlabel().split(" (")[0] for ax in fig.axes] == ["training steps", "training time"]
    for ax in fig.axes:
        line = next(line for line in ax.get_lines() if line.get_label() == "iddp")
        assert len(line.get_xdata()) == 3 and _marked(line)  # steps 10, 20 and the final 30
        assert "iddp" not in [text.get_text() for text in ax.texts]  # a line needs no name beside it


def test_a_row_named_by_its_options_keeps_its_method_crop(tmp_path: Path) -> None:
    # dip at a non-default width is the row "dip [width=4]"; the run saves its crop as dip.png.
    request = RunRequest(methods=["dip"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         out=tmp_path / "run", progress=False, method_options={"dip": {"width": "4"}},
                         overrides={"per_image_iterations": 2})
    assert run(plan(request), echo=lambda _: None).failed.empty
    write_leaderboard([tmp_path / "run"], tmp_path / "board")
    page = (tmp_path / "board" / "index.html").read_text()
    assert re.search(r"dip \[width=4\] [0-9.]+ dB", page), "the row's crop and caption are missing"
    assert (tmp_path / "board" / SIGMA25 / "dip.png").is_file()
