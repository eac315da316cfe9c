"""The smoke profile checks the plumbing in seconds: a method whose own options set its cost (a network's own
width, passes per test image) runs with its ``smoke_options`` there, unless the run gives those options."""

from __future__ import annotations

from pathlib import Path

import pytest

from denoise_bench import plugins
from denoise_bench.method import MethodSetup
from denoise_bench.plugins import get_registry
from denoise_bench.run.grid import experiment_of
from denoise_bench.run.planning import RunPlan, plan, run_config
from denoise_bench.run.request import RunRequest
from helpers import Median3, MethodPlugin

PER_IMAGE_AND_CVF = ["s2s", "cvf-sid", "cvf-sid-oracle", "dip", "zsn2n"]


def _plan(tmp_path: Path, profile: str, options: dict[str, dict[str, str]] | None = None) -> RunPlan:
    return plan(RunRequest(methods=PER_IMAGE_AND_CVF, noises=["gaussian:sigma=25"], datasets=["skimage"],
                           profile=profile, method_options=options or {}, out=tmp_path / profile, progress=False))


def test_smoke_runs_self2self_cvf_sid_and_dip_small_unless_the_run_gives_their_options(tmp_path: Path) -> None:
    p = _plan(tmp_path, "smoke", {"s2s": {"predictions": "2"}})
    methods = {m.name: m for m in p.methods}
    options = {name: p.options_of(cls) for name, cls in methods.items()}
    # Measured on one thread of a 2-core machine at a load of 4 to 5: a smoke job of Self2Self went from 66 s
    # to 9 s, of CVF-SID from 130 s to 22 s, of DIP from 23 s to 6 s; ZS-N2N's (3 s) is left as it is.
    assert options == {"s2s": {"width": 16, "predictions": "2"}, "cvf-sid": {"width": 16},
                       "cvf-sid-oracle": {"width": 16}, "dip": {"width": 16}, "zsn2n": {}}
    s2s = methods["s2s"](MethodSetup(channels=1, budget=p.budget_of(methods["s2s"]), options=options["s2s"]))
    assert (s2s.opts["width"], s2s.opts["predictions"]) == (16, 2)  # what it builds
    # What ran is what is recorded: the run's config and each result's experiment.
    recorded = {m["name"]: m["options"] for m in run_config(p)["methods"]}
    assert recorded["cvf-sid"] == {"width": 16} and recorded["s2s"] == {"width": 16, "predictions": "2"}
    experiment = experiment_of(p, methods["s2s"], p.datasets[0], p.settings[0])
    assert experiment.method_options == "predictions=2,width=16"
    assert p.request.method_options == {"s2s": {"predictions": "2"}}  # the request stays what was asked


@pytest.mark.parametrize("profile", ["quick", "small", "cpu", "standard"])
def test_other_profiles_run_each_method_with_its_own_options(tmp_path: Path, profile: str) -> None:
    p = _plan(tmp_path, profile)
    assert {m.name: p.options_of(m) for m in p.methods} == {name: {} for name in PER_IMAGE_AND_CVF}
    assert experiment_of(p, p.methods[0], p.datasets[0], p.settings[0]).method_options == ""


def test_smoke_options_must_be_options_the_method_has() -> None:
    class Mistaken(Median3):
        name = "mistaken"
        smoke_options = {"width": 8}  # Median3 has no options

    plugins.register_plugin(MethodPlugin(Mistaken), name="mistaken")
    registry = get_registry()
    assert "mistaken" not in registry.methods
    [failure] = registry.failures
    assert "method 'mistaken' has no option(s) width" in failure.error
