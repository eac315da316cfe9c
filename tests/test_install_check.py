"""The install check after the README's first command: a run made as the reference run was is compared
score by score with it, and says clearly whether it matches; any other run is not compared."""

from __future__ import annotations

import pandas as pd

from denoise_bench.report.install_check import KEY, check_scores, install_check_text, read_expected


def _expected() -> pd.DataFrame:
    rows = [("quick", "skimage", "gaussian:sigma=0-50", "gaussian:sigma=25", "unet", "", 600, 3, 26.50, 0.3),
            ("quick", "skimage", "gaussian:sigma=0-50", "gaussian:sigma=25", "bm3d", "", 0, 3, 29.50, 0.05)]
    frame = pd.DataFrame(rows, columns=[*KEY, "psnr", "tolerance_db"])
    return frame.assign(source="results/quick-reference")


def _records(unet: list[float], bm3d: list[float], iterations: int = 600) -> pd.DataFrame:
    rows = []
    for method, scores, steps in (("unet", unet, iterations), ("bm3d", bm3d, None)):
        for i, psnr in enumerate(scores):
            rows.append({"profile": "quick", "dataset": "skimage", "train_noise": "gaussian:sigma=0-50",
                         "test_noise": "gaussian:sigma=25", "method": method, "method_options": None,
                         "iterations": steps, "image": f"im{i}", "psnr": psnr})
    return pd.DataFrame(rows)


def test_scores_within_tolerance_say_the_install_works() -> None:
    text = install_check_text(_records([26.4, 26.6, 26.7], [29.5, 29.49, 29.52]), _expected())
    assert text is not None and "results/quick-reference" in text
    assert text.count(": ok") == 2 and text.endswith("this install works as it should.")


def test_a_score_outside_its_tolerance_is_named_and_the_verdict_says_so() -> None:
    text = install_check_text(_records([25.0, 25.1, 25.2], [29.5, 29.5, 29.5]), _expected())
    assert text is not None
    assert "unet" in text and "OFF by -1.40 dB" in text
    assert "1 of 2 scores are outside their tolerance" in text and "works as it should" not in text


def test_a_run_made_otherwise_is_not_compared() -> None:
    assert install_check_text(_records([26.5] * 3, [29.5] * 3, iterations=1000)[lambda r: r.method == "unet"],
                              _expected()) is None
    assert not check_scores(_records([26.5] * 2, [29.5] * 2), _expected())  # two test images, not three


def test_the_packaged_reference_is_of_the_first_command() -> None:
    expected = read_expected()
    assert set(expected.profile) == {"quick"} and set(expected.dataset) == {"skimage"}
    assert {"unet", "n2n", "bm3d"} <= set(expected.method)
    assert (expected.tolerance_db > 0).all() and expected.source.str.contains("results/").all()
    # A score that moves between machines (IDDP collapsing under the quick rule) would call a working install broken.
    assert "iddp" not in set(expected.method) and (expected.tolerance_db <= 0.6).all()
