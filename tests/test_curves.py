"""Learning curves (--eval-every): test scores during training, without disturbing the training."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from denoise_bench.report.leaderboard import write_leaderboard
from denoise_bench.results import CURVES
from denoise_bench.run.runner import RunRequest, plan, run


def _run(out: Path, eval_every: int) -> pd.DataFrame:
    request = RunRequest(methods=["iddp", "unet"], noises=["gaussian"], datasets=["skimage"], profile="smoke",
                         out=out, progress=False, eval_every=eval_every)
    result = run(plan(request), echo=lambda _: None)
    assert result.failed.empty, result.failed
    return result.records


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    base = tmp_path_factory.mktemp("curves")
    with_curves = _run(base / "curves", eval_every=10)
    without = _run(base / "plain", eval_every=0)
    return base / "curves", with_curves, without


def test_curve_points_at_every_interval_for_every_test_setting(runs: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    run_dir, _, _ = runs
    curves = pd.read_csv(run_dir / CURVES)
    assert set(curves.method) == {"iddp", "unet"}
    assert set(curves.test_noise) == {"gaussian:sigma=25", "gaussian:sigma=0-50"}
    for _, block in curves.groupby(["method", "test_noise"]):
        assert list(block.step) == [10, 20, 30]  # smoke profile: 30 steps
        assert block.train_seconds.is_monotonic_increasing
    # Every point of one step was measured at one instant of training, whatever the evaluation cost.
    assert (curves.groupby(["method", "step"]).train_seconds.nunique() == 1).all()


def test_last_curve_point_is_the_final_score(runs: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    run_dir, records, _ = runs
    curves = pd.read_csv(run_dir / CURVES)
    last = curves[curves.step == 30].set_index(["method", "test_noise"]).psnr
    final = records.groupby(["method", "test_noise"]).psnr.mean()
    pd.testing.assert_series_equal(last.sort_index(), final.sort_index(), check_names=False, rtol=1e-9)


def test_evaluating_during_training_does_not_change_the_result(runs: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    _, with_curves, without = runs
    key = ["method", "test_noise", "image", "repeat"]
    a = with_curves.sort_values(key).psnr.to_numpy()
    b = without.sort_values(key).psnr.to_numpy()
    assert (a == b).all()


def test_leaderboard_shows_the_learning_curves(runs: tuple[Path, pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    run_dir, _, _ = runs
    markdown = write_leaderboard([run_dir], tmp_path / "board")
    assert "# Learning curves" in markdown
    section = markdown.split("# Learning curves")[1]
    assert re.search(r"\|\s+step\s+\|\s+iddp\s+\|\s+unet\s+\|", section)
    assert re.search(r"\|\s+30 \| \d+\.\d\d \(\d+ s\)", section)
    assert len(pd.read_csv(tmp_path / "board" / "curves.csv")) == 12  # 2 methods x 2 settings x 3 steps


def test_curves_on_a_subset_of_the_test_images_and_a_resume_may_change_them(tmp_path: Path) -> None:
    """--curve-images keeps curves cheap on large test sets; changing curve options does not make a
    run folder a different experiment, so the same folder resumes with new ones."""
    out = tmp_path / "run"
    request = RunRequest(methods=["unet"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         out=out, progress=False, eval_every=10, curve_images=1)
    result = run(plan(request), echo=lambda _: None)
    curves = pd.read_csv(out / CURVES)
    assert set(curves.records) == {1} and result.records.image.nunique() == 2  # the final test still uses both
    first = result.records[result.records.image == result.records.image.iloc[0]].psnr.mean()
    assert curves[curves.step == 30].psnr.iloc[0] == pytest.approx(first)
    request.eval_every, request.curve_images = 15, None
    again = run(plan(request), echo=lambda _: None)  # nothing left to do, and not refused
    assert again.failed.empty and len(again.records) == len(result.records)


def test_curves_carry_the_floor_of_their_own_images(runs: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    run_dir, records, _ = runs
    curves = pd.read_csv(run_dir / CURVES)
    floor = records.drop_duplicates(["test_noise", "image", "repeat"]).groupby("test_noise").floor_psnr.mean()
    for test_noise, block in curves.groupby("test_noise"):
        assert block.floor_psnr.to_numpy() == pytest.approx(floor[test_noise])  # every image: the same floor


def test_two_runs_of_one_method_with_different_options_are_two_curves(tmp_path: Path) -> None:
    made = []
    for name, options in (("a", {}), ("b", {"iddp": {"beta1": "0.9"}})):
        request = RunRequest(methods=["iddp"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                             out=tmp_path / name, progress=False, eval_every=10, method_options=options)
        assert run(plan(request), echo=lambda _: None).failed.empty
        made.append(tmp_path / name)
    markdown = write_leaderboard(made, tmp_path / "board", html=False)
    section = markdown.split("# Learning curves")[1]
    assert re.search(r"\|\s+step\s+\|\s+iddp\s+\|\s+iddp \[beta1=0\.9\]\s+\|", section)  # not one averaged column
    board = pd.read_csv(tmp_path / "board" / "curves.csv")
    assert set(board.method) == {"iddp", "iddp [beta1=0.9]"}


def test_a_curve_is_drawn_on_its_own_images_only() -> None:
    from denoise_bench.report.plots import training_series

    final = pd.Series({"iterations": 30, "train_seconds": 3.0, "psnr": 27.0})  # over the whole set
    curve = pd.DataFrame({"step": [10, 20, 30], "train_seconds": [1.0, 2.0, 3.0], "psnr": [24.0, 25.0, 25.5]})
    assert training_series(final, curve).psnr.tolist() == [24.0, 25.0, 25.5]  # no jump to the whole set's 27.0
    assert training_series(final, curve.iloc[:0]).psnr.tolist() == [27.0]


def test_curves_carry_the_input_s_score_and_the_estimate_s_diagnostics(runs: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    run_dir, records, _ = runs
    curves = pd.read_csv(run_dir / CURVES)
    last = curves[curves.step == 30].set_index(["method", "test_noise"])
    inputs = records.groupby(["method", "test_noise"]).input_psnr.mean()
    pd.testing.assert_series_equal(last.input_psnr.sort_index(), inputs.sort_index(), check_names=False, rtol=1e-9)
    assert (curves.output_std > 0).all() and (curves.output_std < 0.5).all()
    assert (curves.residual_ratio > 0).all() and curves.residual_ratio.notna().all()


def test_diagnostics_of_known_estimates() -> None:
    import torch

    from denoise_bench.diagnostics import estimate_diagnostics

    clean_u8 = torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    clean = clean_u8.float()[None] / 255
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    oracle = estimate_diagnostics(noisy, clean_u8, clean)  # the estimated noise is the noise
    assert oracle["residual_ratio"] == pytest.approx(1.0) and oracle["output_std"] == pytest.approx(float(clean.std()), rel=1e-5)
    identity = estimate_diagnostics(noisy, clean_u8, noisy)  # all noise left in the estimate
    assert identity["residual_ratio"] == 0.0
    flat = estimate_diagnostics(noisy, clean_u8, torch.full_like(noisy, 0.5))  # collapsed: the image went into the residual
    assert flat["output_std"] == 0.0 and flat["residual_ratio"] > 2
