"""The suite's one definition of converged (gain over the last doubling of steps), the caveat every board
carries and the convergence column of its tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from denoise_bench.report.convergence import CONVERGED_GAIN_DB, DoublingGain, convergence_caveat, doubling_gains
from denoise_bench.report.leaderboard_tables import CONVERGENCE, NO_CURVE, REFERENCE_GAP, leaderboard_tables
from denoise_bench.results import RECORDS
from test_leaderboard import _write_run


def _curve(method: str, points: dict[int, float], test_noise: str = "gaussian:sigma=25") -> pd.DataFrame:
    return pd.DataFrame({"method": method, "dataset": "bsd68", "test_noise": test_noise, "step": list(points),
                         "psnr": list(points.values())})


def test_gain_is_read_over_the_last_doubling_and_the_mean_over_test_settings() -> None:
    curves = pd.concat([_curve("unet", {1500: 26.0, 3000: 26.5, 6000: 27.0}),
                        _curve("unet", {3000: 25.0, 6000: 26.0}, "gaussian:sigma=0-50"),
                        _curve("iddp", {1000: 25.0, 3000: 25.1, 6000: 25.15}),
                        _curve("short", {6000: 20.0})])  # no point at or before half its steps: left out
    gains = doubling_gains(curves)
    assert [(g.method, g.half, g.last) for g in gains] == [("unet", 3000, 6000), ("iddp", 3000, 6000)]
    assert round(gains[0].gain, 2) == 0.75 and round(gains[1].gain, 2) == 0.05
    assert (gains[0].low, gains[0].high) == pytest.approx((0.5, 1.0))
    assert gains[0].cell() == "+0.75 not converged (3000-6000, curve; cells +0.50 to +1.00)"
    assert gains[1].cell() == "+0.05 converged (3000-6000, curve)"  # one cell: no range
    # A swing of one network between noise levels, more than the threshold each way, is no climbing.
    swinging = pd.concat([_curve("unet", {3000: 28.0, 6000: 28.2}), _curve("unet", {3000: 29.0, 6000: 28.82}, "gaussian:sigma=0-50")])
    assert doubling_gains(swinging)[0].status == "converged"


@pytest.mark.parametrize(("gain", "status"), [(0.3, "not converged"), (CONVERGED_GAIN_DB + 0.01, "not converged"),
                                              (CONVERGED_GAIN_DB, "converged"), (0.0500001, "converged"), (-0.02, "converged"),
                                              (-0.4, "falling")])
def test_converged_means_at_most_the_threshold_over_the_last_doubling(gain: float, status: str) -> None:
    assert CONVERGED_GAIN_DB == 0.05
    assert DoublingGain("unet", 3000, 6000, gain).status == status
    assert DoublingGain("unet", 3000, 6000, gain).converged == (status != "not converged")


def test_caveat_names_who_still_climbs_and_who_has_converged() -> None:
    records = pd.DataFrame({"method": ["unet", "iddp", "bm3d"], "iterations": [6000, 6000, 0]})
    curves = pd.concat([_curve("unet", {3000: 26.5, 6000: 27.0}), _curve("iddp", {3000: 25.1, 6000: 25.12})])
    text = convergence_caveat(records, curves)
    assert text.startswith("6000 training steps.")
    assert "not converged: unet +0.50 dB" in text and "converged (at most 0.05 dB): iddp +0.02" in text
    assert "Every trained row has converged" not in text
    settled = pd.concat([_curve("unet", {3000: 26.98, 6000: 27.0}), _curve("iddp", {3000: 25.1, 6000: 24.0})])
    text = convergence_caveat(records, settled)
    assert "falling (stopped climbing, and lost ground): iddp -1.10 dB" in text and "converged (at most 0.05 dB): unet +0.02" in text
    assert text.endswith("Every trained row has converged.")
    # A trained row without a curve is not measured, so the board cannot say every row converged.
    without = convergence_caveat(records, _curve("unet", {3000: 26.98, 6000: 27.0}))
    assert "no curve, not measured: iddp" in without and "Every trained row" not in without
    unmeasured = convergence_caveat(records, pd.DataFrame())
    assert "not measured" in unmeasured and "not converged" in unmeasured


def test_board_tables_give_each_trained_row_its_convergence(tmp_path: Path) -> None:
    n = 20
    records = pd.read_csv(_write_run(tmp_path / "a", {"unet": np.zeros(n), "n2n": np.full(n, -0.1),
                                                      "n2v": np.full(n, -0.5), "tiny": np.full(n, -0.001)}) / RECORDS)
    curves = pd.concat([_curve("unet", {1000: 26.0, 2000: 27.0, 4000: 27.02}), _curve("n2n", {2000: 26.0, 4000: 26.4})])
    table = leaderboard_tables(records, curves=curves)[("bsd68", "gaussian:sigma=25")].set_index("method")
    assert table.loc["unet", CONVERGENCE] == "+0.02 converged (2000-4000, curve)"
    assert table.loc["n2n", CONVERGENCE] == "+0.40 not converged (2000-4000, curve)"
    assert table.loc["n2v", CONVERGENCE] == NO_CURVE
    # a gap that rounds to zero is shown as 0.0, never -0.0
    assert table.loc["tiny", REFERENCE_GAP] == 0 and not np.signbit(table.loc["tiny", REFERENCE_GAP])
    assert pd.isna(table.loc["noisy input", CONVERGENCE])
    assert CONVERGENCE not in leaderboard_tables(records)[("bsd68", "gaussian:sigma=25")]  # no curves given


def test_a_board_carries_its_findings_and_the_convergence_note(tmp_path: Path) -> None:
    from denoise_bench.report.leaderboard import write_leaderboard
    from denoise_bench.results import CURVES, write_frame

    n = 20
    run = _write_run(tmp_path / "a", {"unet": np.zeros(n), "iddp": np.full(n, -2.0)})
    curve = pd.concat([_curve("unet", {3000: 27.0, 6000: 27.01}), _curve("iddp", {3000: 25.0, 6000: 25.5})])
    write_frame(run / CURVES, curve.assign(train_noise="gaussian:sigma=0-50", seed=0, ssim=0.8, train_seconds=1.0))
    findings = "IDDP is under the floor: its loss\n  falls as it blurs.\n\n* one <b>bullet</b>\n  continued, **bold** and `code`"
    markdown = write_leaderboard([run], tmp_path / "board", findings=findings)
    assert "## Findings\n\nIDDP is under the floor" in markdown
    assert "iddp +0.50 dB" in markdown and "`last doubling (dB)`" in markdown
    page = (tmp_path / "board" / "index.html").read_text()
    assert "<li>one &lt;b&gt;bullet&lt;/b&gt; continued, <strong>bold</strong> and <code>code</code></li>" in page and "<p>IDDP is under the floor: its loss falls as it blurs.</p>" in page
    assert "convergence-note" in page
    assert json.loads((tmp_path / "board" / "leaderboard.json").read_text())["findings"] == findings


def _experiment_records(row: str, iterations: int, psnr: list[float], test_images: int | None = None) -> pd.DataFrame:
    from denoise_bench.experiment import Experiment

    budget = json.dumps({"iterations": iterations, "test_images": test_images, "width": 8}, sort_keys=True)
    key = Experiment("unet", "", "gaussian:sigma=0-50", "train400", "clean", "small", budget, "{}", "{}", "fresh").key
    return pd.DataFrame({"method": row, "experiment": key, "dataset": "bsd68", "test_noise": "gaussian:sigma=25",
                         "image": [f"{i:02d}" for i in range(len(psnr))], "repeat": 0, "seed": 0, "psnr": psnr,
                         "iterations": iterations})


def test_a_run_of_half_the_steps_measures_the_doubling_and_wins_over_the_curve() -> None:
    from denoise_bench.report.convergence import RUNS, control_gains, gains_by_method

    records = pd.concat([_experiment_records("unet (24000)", 24_000, [28.0, 29.0, 30.0]),
                         # the half run scored more images: paired on the common ones; which images is no other experiment
                         _experiment_records("unet (12000)", 12_000, [27.9, 28.9, 29.7, 20.0], test_images=4),
                         _experiment_records("unet (5000)", 5_000, [26.0, 27.0, 28.0])])  # no run of 2500 steps
    gains = control_gains(records)
    assert [(g.method, g.half, g.last, g.source) for g in gains] == [("unet (24000)", 12_000, 24_000, RUNS)]
    assert gains[0].gain == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    assert gains[0].cell() == "+0.17 not converged (12000-24000, runs)"
    curve = _curve("unet (24000)", {12_000: 27.0, 24_000: 28.0})  # the curve's midpoint had not annealed: +1.00
    assert gains_by_method(curve, records)["unet (24000)"].source == RUNS
    assert "unet (24000) +0.17 dB" in convergence_caveat(records, curve)


def test_a_doubling_control_measures_the_rows_and_is_not_ranked(tmp_path: Path) -> None:
    """bench leaderboard --control: the run of half the steps pairs with the board's row (`runs`) without a
    row of its own; a run given both ways is refused."""
    from denoise_bench.report.leaderboard import write_leaderboard
    from denoise_bench.errors import BenchError

    n = 20
    full = _write_run(tmp_path / "full", {"unet": np.zeros(n), "n2n": np.full(n, -0.2)},
                      budget={"iterations": 1600, "test_images": 20})
    half = _write_run(tmp_path / "half", {"unet": np.full(n, -0.03), "n2n": np.full(n, -0.6)},
                      budget={"iterations": 800, "test_images": 20})
    markdown = write_leaderboard([full], tmp_path / "board", allow_mismatch=True, controls=[half])
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    assert sorted(set(table.method) - {"noisy input", "box3 of input (floor)"}) == ["n2n", "unet"]  # no control row
    cells = table.set_index("method")[CONVERGENCE]
    assert cells["unet"] == "+0.03 converged (800-1600, runs)" and cells["n2n"] == "+0.40 not converged (800-1600, runs)"
    assert "Doubling controls" in markdown and str(half) in markdown
    assert json.loads((tmp_path / "board" / "leaderboard.json").read_text())["controls"] == [str(half)]
    page = (tmp_path / "board" / "index.html").read_text()  # the page's caveat reads the controls too
    assert "not converged: n2n +0.40 dB" in page and "converged (at most 0.05 dB): unet +0.03" in page
    with pytest.raises(BenchError, match="both as a board's run and as a doubling control"):
        write_leaderboard([full, half], tmp_path / "board2", allow_mismatch=True, html=False, controls=[half])


def test_a_doubling_control_averages_each_runs_seeds_before_pairing_images() -> None:
    """Two seeds of the half run, one of the full: the full run against the mean of the half run's seeds."""
    from denoise_bench.report.convergence import control_gains

    full = _experiment_records("unet (24000)", 24_000, [28.0, 29.0])
    half = pd.concat([_experiment_records("unet (12000)", 12_000, [27.0, 28.0]),
                      _experiment_records("unet (12000)", 12_000, [27.6, 28.6]).assign(seed=1)])
    gains = control_gains(pd.concat([full, half]))
    assert len(gains) == 1 and gains[0].gain == pytest.approx(0.7)  # 28.0 - 27.3 and 29.0 - 28.3
