"""Every built-in method passes the plugin author's conformance kit, and the kit catches breakage."""

from __future__ import annotations

import os
import re

import pytest
import torch

from denoise_bench.method import Method, NoiseInfo
from denoise_bench.network_method import NetworkMethod
from denoise_bench.plugins import BUILTIN_PLUGINS, get_registry
from denoise_bench.supervision import Supervision
from denoise_bench.testing import CHECKS, ConformanceError, ConformanceSetup, check_method

from helpers import Median3


def _builtin_methods() -> list[str]:
    return sorted(name for name, cls in get_registry().methods.items() if cls.__module__ in BUILTIN_PLUGINS)


# The contract does not depend on size: Self2Self's 100 predictions of its full-width network would
# take most of a minute per check on a CPU, and CVF-SID's eleven passes of its width-64 network about as long.
SMALL_OPTIONS = {"s2s": {"width": "8", "predictions": "2"}, "cvf-sid": {"width": "8"}, "cvf-sid-oracle": {"width": "8"},
                 "iddp-sup-start": {"warm_steps": "1"}}  # so that the checks' few steps reach IDDP's loss too


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("method", _builtin_methods())
def test_builtin_method_conforms(method: str, check: str) -> None:
    cls = get_registry().method(method)
    for channels in (1, 3):
        CHECKS[check](ConformanceSetup(cls, channels=channels, options=SMALL_OPTIONS.get(method, {})))


class _Unseeded(Median3):
    """Adds unseeded noise to its estimate: not reproducible."""

    name = "unseeded"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        seed = int.from_bytes(os.urandom(8), "little")
        return super().denoise(noisy, noise) + 1e-3 * torch.randn(noisy.shape, generator=torch.Generator().manual_seed(seed))


class _ShapeChanger(Median3):
    name = "shape-changer"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return super().denoise(noisy, noise)[..., 1:-1, 1:-1]


class _BatchMixer(Median3):
    """Claims batch_denoise but shifts each estimate by the mean of the whole batch."""

    name = "batch-mixer"
    batch_denoise = True

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return super().denoise(noisy, noise) + noisy.mean() - 0.5


class _ForgetfulTrainer(Method):
    """Trains a scale from noisy/clean batches but claims self-supervision, and keeps no state."""

    name = "forgetful"
    description = "test method"
    citation = "none"
    supervision = Supervision.NONE

    def __init__(self, setup):  # type: ignore[no-untyped-def]
        super().__init__(setup)
        self.scale = 1.0

    def fit(self, view, context):  # type: ignore[no-untyped-def]
        batch = view.sample(2, 32)
        self.scale = float(batch.noisy.mean()) + 0.5

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return noisy * self.scale


class _NeverSamples(_ForgetfulTrainer):
    name = "never-samples"

    def fit(self, view, context):  # type: ignore[no-untyped-def]
        pass


@pytest.mark.parametrize(("method_class", "check", "message"), [
    (_Unseeded, "deterministic_under_seed", "two runs with seed 7 differ"),
    (_ShapeChanger, "denoise_keeps_shape_dtype_device", "returned shape (1, 1, 62, 62)"),
    (_BatchMixer, "batch_denoise", "declares batch_denoise, but the estimates of a batch of two differ"),
    (_ForgetfulTrainer, "state_round_trip", "state_dict misses some state"),
    (_NeverSamples, "trains_on_declared_supervision", "fit never sampled the training view"),
])
def test_conformance_kit_names_what_is_broken(method_class: type[Method], check: str, message: str) -> None:
    with pytest.raises(ConformanceError, match=re.escape(message)):
        CHECKS[check](ConformanceSetup(method_class))


def test_check_method_reports_every_failure_and_passes_a_good_plugin() -> None:
    assert check_method(Median3) == []
    failures = check_method(_ShapeChanger, channels=(1, 3))
    assert len(failures) == 2 and all("denoise_keeps_shape_dtype_device" in f for f in failures), failures


class _Diverging(NetworkMethod):
    """A network method whose loss is NaN from the first step: the shared training loop stops it."""

    name = "diverging"
    description = "test method"
    citation = "none"
    supervision = Supervision.NONE

    def training_loss(self, batch, progress):  # type: ignore[no-untyped-def]
        return self.net(batch.noisy).mean() * float("nan")


def test_check_method_returns_a_diverging_method_as_failures_instead_of_raising() -> None:
    failures = check_method(_Diverging, channels=(1,))
    fitting = [name for name in CHECKS if name != "declaration"]  # every check but the declaration trains it
    assert [f.split("] ", 1)[1].split(":", 1)[0] for f in failures] == fitting, failures
    assert all("TrainingDiverged: diverging: loss became nan at step 1" in f for f in failures), failures
