"""The divergence guard: a curve that falls below its noisy input after having been above it marks its row
"diverged at step N" on the run's tables and the boards, and ``--stop-on-divergence`` ends such a training."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from denoise_bench import plugins
from denoise_bench.divergence import divergence_warnings, divergences, with_input_psnr
from denoise_bench.errors import BenchError
from denoise_bench.network_method import NetworkMethod
from denoise_bench.report.convergence import convergence_caveat
from denoise_bench.results import CHECKPOINTS, CURVES, read_curves
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.supervision import NoisyBatch, Supervision

from helpers import MethodPlugin


def _curve(method: str, psnrs: list[float], inputs: float | None = 20.0, test_noise: str = "gaussian:sigma=25") -> pd.DataFrame:
    steps = [1000 * (i + 1) for i in range(len(psnrs))]
    frame = pd.DataFrame({"method": method, "dataset": "bsd68", "test_noise": test_noise, "seed": 0, "step": steps,
                          "psnr": psnrs, "records": 2})
    return frame if inputs is None else frame.assign(input_psnr=inputs)


def test_a_curve_that_falls_below_its_input_after_being_above_it_diverged_there() -> None:
    curves = pd.concat([_curve("iddp", [22.0, 25.0, 19.0, 5.0]), _curve("slow", [18.0, 19.0, 19.5, 21.0]),
                        _curve("fine", [22.0, 24.0, 25.0, 25.5]), _curve("nan", [22.0, math.nan])])
    found = divergences(curves)
    assert set(found) == {"iddp", "nan"}  # a curve that never rose above its input is under-trained, not diverged
    assert found["iddp"].step == 3000 and found["iddp"].psnr == 19.0 and found["nan"].step == 2000
    assert "iddp diverged at step 3000" in found["iddp"].text() and found["iddp"].cell() == "diverged at step 3000"


def test_a_network_collapsed_to_a_constant_image_has_diverged_even_if_never_above_its_input() -> None:
    """IDDP from PyTorch's initialisation: under its input from the first point, then a constant image."""
    never_above = _curve("iddp", [12.3, 5.0, 5.0]).assign(output_std=[0.02, 0.0, 0.0])
    textured = _curve("slow", [12.0, 15.0, 18.0]).assign(output_std=[0.05, 0.08, 0.1])  # under-trained, not collapsed
    found = divergences(pd.concat([never_above, textured]))
    assert set(found) == {"iddp"} and found["iddp"].step == 2000 and found["iddp"].collapsed
    assert found["iddp"].cell() == "collapsed at step 2000"
    assert "its output was a constant image, 5.00 dB against the noisy input's 20.00" in found["iddp"].text()
    caveat = convergence_caveat(pd.DataFrame({"method": ["iddp"], "iterations": 3000}), never_above)
    assert "collapsed (a constant image, below the noisy input): iddp at step 2000" in caveat


def test_the_earliest_divergence_over_a_row_s_curves_counts() -> None:
    curves = pd.concat([_curve("iddp", [22.0, 22.0, 19.0]), _curve("iddp", [22.0, 19.0, 19.0], test_noise="gaussian:sigma=0-50")])
    assert divergences(curves)["iddp"].step == 2000


def test_curves_made_before_the_input_was_recorded_take_it_from_the_records() -> None:
    curves = _curve("iddp", [22.0, 19.0], inputs=None)
    assert divergences(curves) == {}  # not judged without the input's score
    records = pd.DataFrame({"method": "bm3d", "dataset": "bsd68", "test_noise": "gaussian:sigma=25",
                            "image": ["a", "b", "c"], "repeat": 0, "input_psnr": [19.0, 21.0, 30.0]})
    filled = with_input_psnr(curves, records)
    assert list(filled.input_psnr) == [20.0, 20.0]  # the first two cases: the curves' "records"
    assert divergences(filled)["iddp"].step == 2000


def test_the_caveat_names_a_diverged_row_and_withholds_the_verdict() -> None:
    curves = pd.concat([_curve("iddp", [22.0, 25.0, 19.0, 5.0]), _curve("unet", [25.0, 26.0, 26.0, 26.0])])
    records = pd.DataFrame({"method": ["iddp", "unet"], "iterations": 4000})
    caveat = convergence_caveat(records, curves)
    assert "diverged (fell below the noisy input after having been above it): iddp at step 3000" in caveat
    assert "Every trained row has converged" not in caveat
    assert "converged (at most 0.05 dB): unet +0.00" in caveat
    assert divergence_warnings(curves, records)[0].startswith("iddp diverged at step 3000")


class Collapse(NetworkMethod):
    """A 3x3 box filter (above the noisy input at sigma=25) that its loss then drives to a constant black image."""

    name = "collapse"
    description = "denoises, then collapses"
    citation = "a test double"
    supervision = Supervision.NONE
    learning_rate = 0.05

    def build_network(self) -> nn.Module:
        channels = self.setup.channels
        conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect", bias=False)
        conv.config = {"kind": "box"}  # type: ignore[assignment]
        with torch.no_grad():
            conv.weight.zero_()
            for c in range(channels):
                conv.weight[c, c] = 1 / 9
        return conv

    def network_init(self) -> str:
        return "pytorch"  # keeps the box filter built above

    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        if progress < 0.3:  # hold the box filter: no gradient, so Adam leaves it
            return self.net(batch.noisy).sum() * 0.0
        return self.net(batch.noisy).square().mean()


@pytest.fixture()
def collapse() -> None:
    plugins.register_plugin(MethodPlugin(Collapse), name="collapse")
    yield
    plugins.unregister_plugin("collapse")
    plugins.reset_registry()


def _run(out: Path, stop: bool) -> pd.DataFrame:
    request = RunRequest(methods=["collapse"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         overrides={"iterations": 60}, out=out, progress=False, eval_every=10, stop_on_divergence=stop)
    result = run(plan(request), echo=lambda _: None)
    assert result.failed.empty, result.failed
    return result.records


def test_stop_on_divergence_ends_the_training_keeps_the_last_good_network_and_the_tables_say_so(tmp_path: Path, collapse: None) -> None:
    _run(tmp_path / "watched", stop=False)
    full = read_curves(tmp_path / "watched")
    step = divergences(full)["collapse"].step
    assert 10 < step < 60 and full.step.max() == 60  # without the guard it trains on to the end
    assert not list((tmp_path / "watched" / CHECKPOINTS).glob("*.last-good.pt"))
    assert "collapse diverged at step" in (tmp_path / "watched" / "tables" / "psnr.md").read_text()

    records = _run(tmp_path / "stopped", stop=True)
    curves = pd.read_csv(tmp_path / "stopped" / CURVES)
    assert curves.step.max() == step and len(records)  # stopped where it diverged, and scored there
    kept = list((tmp_path / "stopped" / CHECKPOINTS).glob("*.last-good.pt"))
    assert len(kept) == 1
    assert f"collapse diverged at step {step}" in (tmp_path / "stopped" / "tables" / "psnr.md").read_text()


def test_stop_on_divergence_needs_learning_curves(tmp_path: Path) -> None:
    request = RunRequest(methods=["unet"], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         out=tmp_path / "r", progress=False, stop_on_divergence=True)
    with pytest.raises(BenchError, match="--stop-on-divergence watches the learning curves: give --eval-every N"):
        plan(request)
