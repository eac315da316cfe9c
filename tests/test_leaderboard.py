"""Leaderboards: merging runs, refusing incomparable ones, paired bootstrap intervals, paper numbers.

The runs here are synthetic record files whose answer is known by construction.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.report.leaderboard import board_title, write_leaderboard
from denoise_bench.report.leaderboard_merge import merge_runs
from denoise_bench.report.leaderboard_tables import (FEW_IMAGES_NOTE, GAP_COLUMN, PAPER_GAP, PAPER_GAP_NOTE, REFERENCE_GAP,
                                              TEST_SECONDS, leaderboard_tables, read_paper_results)
from denoise_bench.plausibility import IMPLAUSIBLE_MARK, IMPLAUSIBLE_NOTE
from denoise_bench.results import (BELOW_FLOOR_MARK, CONFIG, FLOOR, FLOOR_NOTE, JOBS, RECORDS,
                                   write_frame, write_json)
from denoise_bench.schema import JOB_COLUMNS, RECORD_COLUMNS
from denoise_bench.report.significance import FEW_IMAGES_MARK, MIN_INTERVAL_IMAGES, all_pairs, paired_bootstrap
from helpers import run_folder_config, todays_options

IMAGES = [f"img{i:02d}" for i in range(20)]
BASE = np.random.default_rng(1).uniform(24, 30, len(IMAGES))  # per-image PSNR of a reference method


def _config(methods: Iterable[str] = (), **changes: object) -> dict:
    return run_folder_config(dict.fromkeys(methods, {}), **changes)


def _write_run(path: Path, offsets: dict[str, np.ndarray], dataset: str = "bsd68", test_noise: str = "gaussian:sigma=25",
               **config_changes: object) -> Path:
    """A run folder whose method ``m`` scores BASE + offsets[m] on each image."""
    rows = []
    for method, offset in offsets.items():
        for image, base, delta in zip(IMAGES, BASE, offset):
            row = dict.fromkeys(RECORD_COLUMNS)
            row |= {"run_id": path.name, "protocol": "nb2nb-v1", "profile": "quick", "method": method,
                    "supervision": "none", "uses_noise_level": method == "bm3d", "train_noise": "gaussian:sigma=0-50",
                    "test_noise": test_noise, "dataset": dataset, "image": image, "repeat": 0, "seed": 0,
                    "psnr": base + delta, "ssim": 0.8, "input_psnr": 20.0, "input_ssim": 0.4, "seconds": 0.1,
                    "train_seconds": 60.0, "iterations": 800, "device": "cpu", "method_options": todays_options(method)}
            rows.append(row)
    path.mkdir(parents=True)
    write_json(path / CONFIG, _config(offsets, **config_changes))
    write_frame(path / RECORDS, pd.DataFrame(rows, columns=RECORD_COLUMNS))
    return path


def test_constant_difference_has_a_degenerate_interval_and_is_not_a_tie() -> None:
    mean, low, high = paired_bootstrap(np.full(20, 0.3))
    assert (mean, low, high) == pytest.approx((0.3, 0.3, 0.3))


def test_bootstrap_interval_covers_the_true_mean_at_about_the_stated_rate() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        _, low, high = paired_bootstrap(rng.normal(0.5, 1.0, 40), samples=2000, seed=trial)
        covered += low <= 0.5 <= high
    assert 0.88 <= covered / 200 <= 0.99  # percentile bootstrap of a mean, n=40: close to 95 %


def test_pairs_find_the_known_winner_and_the_known_tie() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1.0, len(IMAGES))
    offsets = {"strong": np.full(len(IMAGES), 1.0), "base": np.zeros(len(IMAGES)), "coin": noise - noise.mean()}
    records = pd.concat([pd.DataFrame({"image": IMAGES, "method": m, "psnr": BASE + o}) for m, o in offsets.items()])
    pairs = {(d.first, d.second): d for d in all_pairs(records)}
    strong_vs_base = pairs[("strong", "base")]
    assert strong_vs_base.mean == pytest.approx(1.0) and not strong_vs_base.tie
    coin = pairs.get(("coin", "base")) or pairs[("base", "coin")]
    assert abs(coin.mean) < 1e-9 and coin.tie and coin.low < 0 < coin.high


def test_leaderboard_merges_runs_ranks_methods_and_marks_ties(tmp_path: Path) -> None:
    jitter = np.random.default_rng(5).normal(0, 0.8, len(IMAGES))
    a = _write_run(tmp_path / "a", {"iddp": np.full(len(IMAGES), 1.0), "unet": np.zeros(len(IMAGES))})
    b = _write_run(tmp_path / "b", {"n2v": jitter - jitter.mean() - 0.01})  # 0.01 dB below unet: a tie
    markdown = write_leaderboard([a, b], tmp_path / "board")
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    assert list(table.method) == ["iddp", "unet", "n2v", "noisy input"]
    gaps = dict(zip(table.method, table[GAP_COLUMN].fillna("")))
    assert gaps["iddp"] == ""
    assert gaps["unet"] == "1.00 [1.00, 1.00]"  # a constant 1 dB lead on every image
    assert gaps["n2v"].startswith("0.01 [-") and gaps["n2v"].endswith("tie")
    assert set(table.images.dropna()) == {20}
    assert "## bsd68, gaussian:sigma=25" in markdown
    pairs = pd.read_csv(tmp_path / "board" / "pairs.csv")
    assert len(pairs) == 3  # every pair of the three methods


def test_the_floor_of_one_run_marks_every_trained_row_below_it(tmp_path: Path) -> None:
    """A run written before the floor was recorded gets it from a run that recorded it (same inputs)."""
    n = len(IMAGES)
    old = _write_run(tmp_path / "old", {"n2v": np.full(n, -3.0), "unet": np.zeros(n), "bm3d": np.full(n, -2.0)})
    records = pd.read_csv(old / RECORDS)
    records.loc[records.method == "bm3d", ["iterations", "train_seconds"]] = 0  # per image: nothing learned
    write_frame(old / RECORDS, records.drop(columns=["floor_psnr", "floor_ssim"]))  # the old format
    new = _write_run(tmp_path / "new", {"iddp": np.full(n, -0.5)})
    records = pd.read_csv(new / RECORDS)
    write_frame(new / RECORDS, records.assign(floor_psnr=BASE - 1.0, floor_ssim=0.6))
    markdown = write_leaderboard([old, new], tmp_path / "board", html=False)
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("method")
    assert list(table.index) == ["unet", "iddp", "bm3d†", "n2v", "noisy input", FLOOR]  # a method keeps its name
    assert table["below floor"].tolist()[:4] == [False, False, False, True]  # bm3d† learns nothing: never marked
    assert f"| n2v {BELOW_FLOOR_MARK} " in markdown and f"| unet {BELOW_FLOOR_MARK}" not in markdown
    assert table.loc[FLOOR, "psnr"] == pytest.approx(round((BASE - 1.0).mean(), 2)) and table.loc[FLOOR, "images"] == n
    assert table.loc[FLOOR, "ssim"] == pytest.approx(0.6)
    assert FLOOR_NOTE in markdown
    assert "on bsd68, gaussian:sigma=25, n2v " in markdown and " dB scores below the floor, a 3x3 box filter" in markdown
    # Without the run that recorded it there is no floor, and nothing is marked.
    alone = write_leaderboard([old], tmp_path / "alone", html=False)
    assert FLOOR not in alone and BELOW_FLOOR_MARK not in alone
    assert "below floor" not in pd.read_csv(tmp_path / "alone" / "leaderboard.csv").columns


@pytest.mark.parametrize(("field", "value"), [
    ("protocol", {"id": "float-v1", "seed": 101}),
    ("profile", "smoke"),
    ("budget", {"iterations": 30, "test_images": 2}),
    ("noise_policy", "fixed"),
])
def test_incomparable_runs_are_refused_unless_allowed(tmp_path: Path, field: str, value: object) -> None:
    a = _write_run(tmp_path / "a", {"iddp": np.zeros(len(IMAGES))})
    b = _write_run(tmp_path / "b", {"unet": np.zeros(len(IMAGES))}, **{field: value})
    with pytest.raises(BenchError, match=rf"{field} of .* differs.*allow-mismatch|allow-mismatch.*{field} of"):
        merge_runs([a, b])
    markdown = write_leaderboard([a, b], tmp_path / "board", allow_mismatch=True)
    assert "Merged despite differences" in markdown and field in markdown


def test_a_refused_merge_names_the_budget_fields_that_differ_in_words(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", {"iddp": np.zeros(len(IMAGES))})
    budget = _config()["budget"]
    b = _write_run(tmp_path / "b", {"unet": np.zeros(len(IMAGES))},
                   budget=budget | {"iterations": 30, "test_images": 2})
    with pytest.raises(BenchError) as refused:
        merge_runs([a, b])
    message = str(refused.value)
    assert f"30 iterations vs {budget['iterations']} iterations" in message
    assert f"first 2 test images vs first {budget['test_images']} test images" in message
    assert "crops" not in message and "{" not in message  # only what differs, and no dict


def test_the_same_job_in_two_runs_is_refused(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", {"iddp": np.zeros(len(IMAGES))})
    b = _write_run(tmp_path / "b", {"iddp": np.ones(len(IMAGES))})
    with pytest.raises(BenchError, match="iddp on bsd68 .* appears in more than one run"):
        merge_runs([a, b])


def test_paper_numbers_sit_beside_ours_with_the_difference(tmp_path: Path) -> None:
    paper = read_paper_results()
    assert set(paper.source) == {"iddp-aaai2023"} and len(paper) == 60
    assert set(paper.protocol) == {"paper"}  # BSD300 colour, scored on luma
    iddp = paper[(paper.method == "iddp") & (paper.test_noise == "gaussian:sigma=25")]
    assert iddp.psnr.item() == pytest.approx(31.70)
    offsets = {"iddp": np.zeros(len(IMAGES)), "unet": np.full(len(IMAGES), 0.5)}
    records = pd.read_csv(_write_run(tmp_path / "a", offsets, dataset="bsd300") / RECORDS).assign(protocol="paper-v1")
    table = leaderboard_tables(records, paper)[("bsd300", "gaussian:sigma=25")]
    row = table[table.method == "iddp"].iloc[0]
    assert row["paper psnr"] == pytest.approx(31.70) and row["paper ssim"] == pytest.approx(0.897)
    assert row["psnr - paper"] == pytest.approx(round(BASE.mean() - 31.70, 2))
    assert row[PAPER_GAP] == pytest.approx(31.70 - 31.81)
    other = leaderboard_tables(records.assign(dataset="bsd68"), paper)[("bsd68", "gaussian:sigma=25")]
    assert "paper psnr" not in other.columns  # nothing published for this dataset


def test_a_colour_row_scored_on_all_channels_keeps_the_paper_gap_but_not_its_absolute_numbers(tmp_path: Path) -> None:
    offsets = {"iddp": np.zeros(len(IMAGES)), "unet": np.full(len(IMAGES), 0.5)}
    records = pd.read_csv(_write_run(tmp_path / "a", offsets, dataset="bsd300") / RECORDS)  # nb2nb-v1: RGB
    table = leaderboard_tables(records, read_paper_results())[("bsd300", "gaussian:sigma=25")].set_index("method")
    assert not {"paper psnr", "paper ssim", "psnr - paper"} & set(table.columns)
    assert table.loc["iddp", PAPER_GAP] == pytest.approx(31.70 - 31.81)
    # A gray set scores alike under both protocols: a published gray number would show under nb2nb.
    gray = read_paper_results().replace({"dataset": {"bsd300": "bsd68"}})
    table = leaderboard_tables(records.assign(dataset="bsd68"), gray)[("bsd68", "gaussian:sigma=25")].set_index("method")
    assert table.loc["iddp", "paper psnr"] == pytest.approx(31.70)


def test_the_leaderboard_says_how_the_paper_scored(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "a", {"iddp": np.zeros(len(IMAGES))}, dataset="bsd300")
    markdown = write_leaderboard([run], tmp_path / "board", html=False)
    assert "The IDDP paper scored BSD300 as protocol `paper`, on 8-bit BT.601 luma of colour images" in markdown


def test_cli_leaderboard_errors_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path), "--out", str(tmp_path / "board")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path} is not a run folder (no config.json)"


def test_every_method_gap_to_the_supervised_unet_sits_beside_the_paper_gap(tmp_path: Path) -> None:
    offsets = {"unet": np.zeros(len(IMAGES)), "iddp": np.full(len(IMAGES), -0.4), "bm3d": np.full(len(IMAGES), -1.0)}
    records = pd.read_csv(_write_run(tmp_path / "a", offsets) / RECORDS)  # BSD68: no paper numbers of its own
    table = leaderboard_tables(records, read_paper_results())[("bsd68", "gaussian:sigma=25")].set_index("method")
    assert table.loc["iddp", REFERENCE_GAP] == pytest.approx(-0.4)
    assert table.loc["bm3d†", REFERENCE_GAP] == pytest.approx(-1.0)
    assert table.loc["unet", REFERENCE_GAP] == 0
    # The paper (BSD300, sigma=25): iddp 31.70, bm3d 30.90 against unet 31.81.
    assert table.loc["iddp", PAPER_GAP] == pytest.approx(-0.11)
    assert table.loc["bm3d†", PAPER_GAP] == pytest.approx(-0.91)
    without = leaderboard_tables(records[records.method != "unet"], read_paper_results())[("bsd68", "gaussian:sigma=25")]
    assert REFERENCE_GAP not in without.columns and PAPER_GAP not in without.columns


def test_a_method_of_one_run_can_be_left_out(tmp_path: Path) -> None:
    """A training redone in a later run would otherwise appear twice; --exclude leaves the old one out."""
    old = _write_run(tmp_path / "old", {"unet": np.zeros(len(IMAGES)), "bm3d": np.full(len(IMAGES), 1.0)})
    new = _write_run(tmp_path / "new", {"unet": np.full(len(IMAGES), 2.0)})
    with pytest.raises(BenchError, match="appears in more than one run"):
        merge_runs([old, new])
    merged = merge_runs([old, new], exclude={str(old): ["unet"]})
    assert set(zip(merged.records.method, merged.records.run_dir)) == {("bm3d", str(old)), ("unet", str(new))}
    with pytest.raises(BenchError, match="--exclude names run"):
        merge_runs([old], exclude={str(new): ["unet"]})
    result = CliRunner().invoke(main, ["leaderboard", str(old), str(new), "--exclude", f"unet@{old}", "--no-html",
                                       "--out", str(tmp_path / "board")])
    assert result.exit_code == 0, result.output
    assert f"Left out: unet of `{old}`" in (tmp_path / "board" / "leaderboard.md").read_text()
    assert json.loads((tmp_path / "board" / "leaderboard.json").read_text())["exclude"] == {str(old): ["unet"]}


def _rewrite_records(run: Path, change) -> None:  # type: ignore[no-untyped-def]
    records = pd.read_csv(run / RECORDS)
    write_frame(run / RECORDS, change(records))


def test_intervals_over_fewer_than_five_images_are_flagged(tmp_path: Path) -> None:
    jitter = np.random.default_rng(2).normal(0, 0.5, len(IMAGES))
    run = _write_run(tmp_path / "a", {"unet": np.zeros(len(IMAGES)), "n2v": jitter - 1.0, "dip": np.full(len(IMAGES), -3.0)})
    _rewrite_records(run, lambda r: r[r.image.isin(IMAGES[:MIN_INTERVAL_IMAGES - 1])])  # a table of 4 images
    markdown = write_leaderboard([run], tmp_path / "board", html=False)
    gaps = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("method")[GAP_COLUMN]
    assert gaps["n2v"].endswith(f"] {FEW_IMAGES_MARK}") and gaps["dip"].endswith(f"] {FEW_IMAGES_MARK}"), gaps
    assert FEW_IMAGES_NOTE in markdown
    pairs = pd.read_csv(tmp_path / "board" / "pairs.csv")
    assert pairs["few images"].all() and len(pairs) == 3
    # Enough images everywhere: no mark, no footnote.
    whole = write_leaderboard([_write_run(tmp_path / "b", {"unet": np.zeros(len(IMAGES)), "n2v": jitter})],
                              tmp_path / "board2", html=False)
    assert FEW_IMAGES_MARK not in whole and not pd.read_csv(tmp_path / "board2" / "pairs.csv")["few images"].any()


def test_a_method_scored_on_a_subset_is_listed_after_the_ranked_ones_and_paired_on_its_images(tmp_path: Path) -> None:
    """DIP on a stated subset: its mean over 2 images must neither outrank the methods scored on all 20
    nor become the row the next method's gap is measured against (on 2 images)."""
    jitter = np.random.default_rng(3).normal(0, 0.5, len(IMAGES))
    run = _write_run(tmp_path / "a", {"unet": np.zeros(len(IMAGES)), "n2v": jitter - 1.0, "dip": np.full(len(IMAGES), 2.0)})
    _rewrite_records(run, lambda r: r[(r.method != "dip") | r.image.isin(IMAGES[:2])])
    markdown = write_leaderboard([run], tmp_path / "board", html=False)
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    assert list(table.method) == ["unet", "n2v", "dip", "noisy input"]  # dip's mean is the highest
    rows = table.set_index("method")
    assert rows.loc["dip", GAP_COLUMN] == "not ranked: 2 of 20 images"
    assert rows.loc["n2v", GAP_COLUMN].startswith(f"{1.0 - jitter.mean():.2f} [")  # paired with unet on all 20
    assert rows.loc["dip", REFERENCE_GAP] == pytest.approx(2.0)  # its paired difference, on its own images
    assert "follow the ranked rows, unranked" in markdown


def test_per_image_methods_show_their_test_seconds_instead_of_zero_training(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "a", {"unet": np.zeros(len(IMAGES)), "bm3d": np.full(len(IMAGES), 1.0)})
    _rewrite_records(run, lambda r: r.assign(
        iterations=np.where(r.method == "bm3d", 0, r.iterations),
        train_seconds=np.where(r.method == "bm3d", 0.0, r.train_seconds),
        seconds=np.where(r.method == "bm3d", np.where(r.image.isin(IMAGES[::2]), 10.0, 14.0), 0.25)))
    table = leaderboard_tables(pd.read_csv(run / RECORDS))[("bsd68", "gaussian:sigma=25")].set_index("method")
    assert table.loc["bm3d†", TEST_SECONDS] == pytest.approx(12.0)  # mean seconds per test image
    assert pd.isna(table.loc["bm3d†", "iterations"]) and pd.isna(table.loc["bm3d†", "train s"])
    assert (table.loc["unet", "iterations"], table.loc["unet", "train s"], table.loc["unet", TEST_SECONDS]) == (800, 60.0, 0.25)


def _write_jobs(run: Path, jobs: list[dict]) -> None:
    rows = [dict.fromkeys(JOB_COLUMNS) | {"dataset": "bsd68", "train_noise": "gaussian:sigma=0-50", "seed": 0,
                                          "uses_noise_level": False} | job for job in jobs]
    write_frame(run / JOBS, pd.DataFrame(rows, columns=JOB_COLUMNS))


def test_skipped_and_failed_methods_stay_on_the_leaderboard_with_their_reasons(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", {"unet": np.zeros(len(IMAGES)), "iddp": np.full(len(IMAGES), 0.5)})
    _write_jobs(a, [{"method": "unet", "status": "done"}, {"method": "iddp", "status": "done"},
                    {"method": "n2n", "status": "skipped", "error": "n2n assumes zero-mean noise; salt is not"},
                    {"method": "nb2nb", "status": "failed", "error": "RuntimeError: CUDA out of\nmemory"},
                    {"method": "b2u", "status": "failed", "error": "RuntimeError: killed"},
                    {"method": "bm3d", "dataset": "set12", "status": "skipped", "uses_noise_level": True,
                     "error": "no noise level for real captures"}])
    b = _write_run(tmp_path / "b", {"b2u": np.full(len(IMAGES), -0.5)})  # the failed b2u, redone in another run
    markdown = write_leaderboard([a, b], tmp_path / "board")
    table = markdown[markdown.index("## bsd68, gaussian:sigma=25"):]
    assert ("Not run (no numbers):\n\n- n2n, trained on gaussian:sigma=0-50 (seed 0) skipped: n2n assumes zero-mean "
            "noise; salt is not\n- nb2nb, trained on gaussian:sigma=0-50 (seed 0) failed: RuntimeError: CUDA out of "
            "memory\n") in table
    assert "b2u, trained on" not in markdown  # it has numbers after all
    # A job of a dataset that has no table is listed on its own.
    assert ("## Not run (no numbers in any table)\n\n- bm3d† on set12, trained on gaussian:sigma=0-50 (seed 0) "
            "skipped: no noise level for real captures\n") in markdown
    page = (tmp_path / "board" / "index.html").read_text()
    assert "<li>nb2nb, trained on gaussian:sigma=0-50 (seed 0) failed: RuntimeError: CUDA out of memory</li>" in page
    assert "<li>bm3d† on set12, trained on gaussian:sigma=0-50 (seed 0) skipped: no noise level for real captures</li>" in page


def test_a_leaderboard_of_runs_where_nothing_ran_says_why(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "a", {})
    _write_jobs(run, [{"method": "n2n", "status": "skipped", "error": "n2n assumes zero-mean noise; salt is not"}])
    with pytest.raises(BenchError, match=re.escape("the runs hold no evaluated records (nothing ran: every job was "
                                                   "skipped or failed: n2n on gaussian:sigma=0-50 skipped (n2n assumes")):
        write_leaderboard([run], tmp_path / "board")


def test_image_names_that_look_like_numbers_pair_across_runs(tmp_path: Path) -> None:
    # Set12 names its images "01".."12": a run folder holding only those must not read them back as
    # integers, or they would pair with nothing in a folder whose names also include BSD68's.
    names = [f"{i:02d}" for i in range(1, 6)]
    a = _write_run(tmp_path / "a", {"unet": np.zeros(len(IMAGES))})
    b = _write_run(tmp_path / "b", {"dip": np.full(len(IMAGES), 0.5)})
    for run, extra in ((a, ["test001"]), (b, [])):  # a mixes both kinds of name, b has only Set12's
        records = pd.read_csv(run / RECORDS, dtype={"image": str})
        keep = records.head(len(names) + len(extra)).assign(image=names + extra)
        write_frame(run / RECORDS, keep)
    merged = merge_runs([a, b])
    assert set(merged.records.loc[merged.records.method == "dip", "image"]) == set(names)
    write_leaderboard([a, b], tmp_path / "board")
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    dip = table.set_index("method").loc["dip"]
    assert dip[REFERENCE_GAP] == pytest.approx(0.5)  # paired on the five common images
    assert dip[GAP_COLUMN] == "not ranked: 5 of 6 images"


def test_an_infinite_or_nan_psnr_gap_is_undefined_never_a_tie(tmp_path: Path) -> None:
    n = len(IMAGES)
    exact = np.where(np.arange(n) == 0, np.inf, 0.5)  # the clean image itself on one image
    records = pd.read_csv(_write_run(tmp_path / "a", {"cheat": exact, "other": np.where(np.arange(n) == 0, np.inf, 0.0),
                                                      "unet": np.zeros(n)}) / RECORDS)
    table = leaderboard_tables(records)[("bsd68", "gaussian:sigma=25")].set_index("method")
    for method in ("other", "unet"):  # inf - inf is NaN, inf - x is inf: neither says "tie"
        gap = table.loc[method, GAP_COLUMN]
        assert "tie" not in gap and gap.startswith("undefined: PSNR inf or NaN on 1 of 20 common images"), gap
    pairs = {(d.first, d.second): d for d in all_pairs(records)}
    assert not any(d.tie for d in pairs.values() if d.nonfinite)


def test_implausible_scores_are_flagged_on_the_leaderboard_and_its_page(tmp_path: Path) -> None:
    n = len(IMAGES)
    run = _write_run(tmp_path / "a", {"cheat": np.where(np.arange(n) < 2, np.inf, 25.0), "unet": np.zeros(n)})
    markdown = write_leaderboard([run], tmp_path / "board")
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("method")
    assert table.loc["cheat", "implausible"] == n and table.loc["unet", "implausible"] == 0  # 25 dB over a 20 dB input
    assert f"| cheat {IMPLAUSIBLE_MARK} " in markdown and IMPLAUSIBLE_NOTE in markdown
    assert "cheat scores implausibly on 20 of 20 records of bsd68, gaussian:sigma=25 (2 exact" in markdown
    page = (tmp_path / "board" / "index.html").read_text()
    assert f"cheat {IMPLAUSIBLE_MARK}" in page and html.escape(IMPLAUSIBLE_NOTE) in page
    plain = _write_run(tmp_path / "b", {"unet": np.zeros(n)})
    write_leaderboard([plain], tmp_path / "plain", html=False)
    assert "implausible" not in pd.read_csv(tmp_path / "plain" / "leaderboard.csv").columns


def test_the_paper_gap_column_names_its_set_and_protocol_and_the_page_explains_it(tmp_path: Path) -> None:
    offsets = {"unet": np.zeros(len(IMAGES)), "iddp": np.full(len(IMAGES), -0.4)}
    for dataset in ("bsd68", "skimage"):
        records = pd.read_csv(_write_run(tmp_path / dataset, offsets, dataset=dataset) / RECORDS)
        table = leaderboard_tables(records, read_paper_results())[(dataset, "gaussian:sigma=25")]
        # The header says the number is the paper's, not a score of this run beside "vs unet".
        assert [c for c in table.columns if c.startswith("paper")] == ["paper's gap to unet (dB, BSD300 colour, protocol paper)"]
    assert set(read_paper_results()[lambda p: p.dataset == "bsd300"].protocol) == {"paper"}  # what the label says
    markdown = write_leaderboard([tmp_path / "bsd68"], tmp_path / "board")
    assert PAPER_GAP_NOTE in markdown and "BSD300 colour images, trained on Waterloo, scored by protocol paper" in markdown
    page = (tmp_path / "board" / "index.html").read_text()
    assert f'<p class="note paper-note">{html.escape(PAPER_GAP_NOTE)}</p>' in page


def test_option_values_and_names_reach_the_leaderboards_markdown_escaped(tmp_path: Path) -> None:
    # An option value holding HTML, a '|' and a newline was written into leaderboard.md as it was: live HTML,
    # and a row split in two (the page, index.html, escaped it).
    value = "<img src=x onerror=alert(1)>|x\ny"
    run = _write_run(tmp_path / "run", {"plug": np.ones(len(IMAGES)), "unet": np.zeros(len(IMAGES))},
                     dataset="folder:a|b")
    config = json.loads((run / CONFIG).read_text())
    config["methods"][0]["options"] = {"note": value}
    write_json(run / CONFIG, config)
    records = pd.read_csv(run / RECORDS, dtype={"method_options": object})
    records.loc[records.method == "plug", "method_options"] = f"note={value}"
    write_frame(run / RECORDS, records)
    write_leaderboard([run], tmp_path / "board", html=False)
    for name in ("leaderboard.md", "pairs.md"):
        markdown = (tmp_path / "board" / name).read_text()
        assert "<img" not in markdown and "note=&lt;img src=x onerror=alert(1)>\\|x y" in markdown, markdown
        for table in re.findall(r"(?:^\|.*\n)+", markdown, flags=re.MULTILINE):
            assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}) == 1, table
    assert "## folder:a\\|b, gaussian:sigma=25" in (tmp_path / "board" / "leaderboard.md").read_text()


def test_a_board_is_titled_by_what_it_ranks(tmp_path: Path) -> None:
    offsets = {"unet": np.zeros(len(IMAGES)), "bm3d": np.full(len(IMAGES), -1.0)}
    runs = [_write_run(tmp_path / dataset, offsets, dataset=dataset) for dataset in ("set12", "bsd68")]
    markdown = write_leaderboard(runs, tmp_path / "board")
    title = "Leaderboard: gaussian noise (trained on gaussian:sigma=0-50) on bsd68 and set12, profile quick"
    assert markdown.splitlines()[0] == f"# {title}"
    page = (tmp_path / "board" / "index.html").read_text()
    assert f"<title>{title} (denoise-bench)</title>" in page and f"<h1>{title}</h1>" in page
    # Merged rows of other noises and profiles; rows trained on nothing (per-image methods) add no training noise.
    records = pd.concat([pd.read_csv(runs[0] / RECORDS),
                         pd.read_csv(runs[0] / RECORDS).assign(test_noise="poisson:lam=30", train_noise="poisson:lam=5-50",
                                                              profile="cpu"),
                         pd.read_csv(runs[0] / RECORDS).assign(test_noise="poisson:lam=30", train_noise=None, profile="cpu")])
    assert board_title(records) == ("Leaderboard: gaussian and poisson noise (trained on gaussian:sigma=0-50 and "
                                    "poisson:lam=5-50) on set12, profiles quick and cpu")


def test_each_sets_tables_show_fixed_noise_levels_before_ranges(tmp_path: Path) -> None:
    offsets = {"unet": np.zeros(len(IMAGES)), "n2v": np.full(len(IMAGES), -1.0)}
    noises = ["gaussian:sigma=0-50", "gaussian:sigma=25", "gaussian:sigma=5", "speckle-like:v=0.1"]  # the last: not installed
    records = pd.concat([pd.read_csv(_write_run(tmp_path / f"{dataset}-{i}", offsets, dataset=dataset, test_noise=noise) / RECORDS)
                         for dataset in ("set12", "bsd68") for i, noise in enumerate(noises)])
    expected = [(dataset, noise) for dataset in ("bsd68", "set12")
                for noise in ["gaussian:sigma=5", "gaussian:sigma=25", "speckle-like:v=0.1", "gaussian:sigma=0-50"]]
    assert list(leaderboard_tables(records)) == expected  # the text's order would put sigma=0-50 first, sigma=5 last
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / CONFIG, _config(offsets))
    write_frame(run / RECORDS, records.assign(run_id="run"))
    markdown = write_leaderboard([run], tmp_path / "board")
    assert [line[3:] for line in markdown.splitlines() if line.startswith("## ")] == [f"{d}, {n}" for d, n in expected]
    page = (tmp_path / "board" / "index.html").read_text()
    assert re.findall(r"<h2>([^<]*, [^<]*)</h2>", page) == [f"{d}, {n}" for d, n in expected]
    pairs = pd.read_csv(tmp_path / "board" / "pairs.csv")
    assert list(dict.fromkeys(map(tuple, pairs[["dataset", "test noise"]].values))) == expected
