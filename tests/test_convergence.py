"""The caveat every leaderboard carries: how far from converged its trained rows are, off their curves."""

from __future__ import annotations

import pandas as pd

from denoise_bench.report.convergence import convergence_caveat, doubling_gains


def _curve(method: str, points: dict[int, float], test_noise: str = "gaussian:sigma=25") -> pd.DataFrame:
    return pd.DataFrame({"method": method, "dataset": "bsd68", "test_noise": test_noise, "step": list(points),
                         "psnr": list(points.values())})


def test_gain_is_read_over_the_last_doubling_and_the_largest_over_test_settings() -> None:
    curves = pd.concat([_curve("unet", {1500: 26.0, 3000: 26.5, 6000: 27.0}),
                        _curve("unet", {3000: 25.0, 6000: 26.0}, "gaussian:sigma=0-50"),
                        _curve("iddp", {1000: 25.0, 3000: 25.1, 6000: 25.15}),
                        _curve("short", {6000: 20.0})])  # no point at or before half its steps: left out
    gains = doubling_gains(curves)
    assert [(g.method, g.half, g.last) for g in gains] == [("unet", 3000, 6000), ("iddp", 3000, 6000)]
    assert round(gains[0].gain, 2) == 1.0 and round(gains[1].gain, 2) == 0.05


def test_caveat_names_who_still_climbs_and_who_is_flat() -> None:
    records = pd.DataFrame({"method": ["unet", "iddp", "bm3d"], "iterations": [6000, 6000, 0]})
    curves = pd.concat([_curve("unet", {3000: 26.5, 6000: 27.0}), _curve("iddp", {3000: 25.1, 6000: 25.15})])
    text = convergence_caveat(records, curves)
    assert text.startswith("6000 training steps.")
    assert "not converged: unet +0.50 dB" in text and "flat" in text and "iddp +0.05" in text
    unmeasured = convergence_caveat(records, pd.DataFrame())
    assert "not measured" in unmeasured and "not converged" in unmeasured
