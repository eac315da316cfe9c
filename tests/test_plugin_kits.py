"""Every built-in dataset and noise family passes the plugin author's conformance kits, and each check
of the kits fails on a plugin broken in the way it looks for."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset
from denoise_bench.noise import GAUSSIAN, POISSON, SIGNAL_INDEPENDENT, ZERO_MEAN, NoiseFamily, Param
from denoise_bench.plugins import BUILTIN_PLUGINS, get_registry
from denoise_bench.remote_set import RemoteSet
from denoise_bench.testing import (DATASET_CHECKS, NOISE_CHECKS, ConformanceError, DatasetConformance, DatasetSetup,
                                   NoiseConformance, NoiseSetup, check_dataset, check_noise_family)

# --- the built-ins pass ----------------------------------------------------------------------------

NEEDS_DATA_DIR = {"bsd68", "set12", "train400", "cbsd68", "set14"}


def _builtin(table: dict) -> list[str]:
    return sorted(name for name, obj in table.items()
                  if (obj.__module__ if isinstance(obj, type) else obj.sampler.__module__) in BUILTIN_PLUGINS)


@pytest.mark.parametrize("check", sorted(NOISE_CHECKS))
@pytest.mark.parametrize("family", _builtin(get_registry().noise_families))
def test_builtin_noise_family_conforms(family: str, check: str) -> None:
    noise = get_registry().noise_families[family]
    if noise.captured and check != "declaration":
        pytest.skip("a captured family draws no noise")
    NOISE_CHECKS[check](NoiseSetup(noise))


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in (TRAIN, TEST):
        (tmp_path / split).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / split / f"{split}{i}.png")
    return tmp_path


@pytest.mark.parametrize("check", sorted(DATASET_CHECKS))
@pytest.mark.parametrize("dataset", _builtin(get_registry().datasets))
def test_builtin_dataset_conforms(dataset: str, check: str, request: pytest.FixtureRequest) -> None:
    cls = get_registry().dataset(dataset)
    if issubclass(cls, RemoteSet):
        pytest.skip(f"{dataset} downloads its images; the offline suite does not")
    options = {"path": str(request.getfixturevalue("image_folder"))} if dataset == "folder" else {}
    data_dir = request.getfixturevalue("data_dir") if dataset in NEEDS_DATA_DIR else None
    DATASET_CHECKS[check](DatasetSetup(cls, data_dir, options))


class TestSkimageThroughTheKit(DatasetConformance):
    """The pytest classes a plugin's own suite subclasses run too."""

    dataset_class = get_registry().dataset("skimage")


class TestGaussianThroughTheKit(NoiseConformance):
    family = GAUSSIAN
    specs = ("gaussian:sigma=15",)


# --- broken datasets -------------------------------------------------------------------------------


class _Tiny(Dataset):
    name = "tiny"
    description = "two random gray images per split"
    channels = 1

    def load(self, split: str) -> list[CleanImage]:
        rng = np.random.default_rng(0 if split == TRAIN else 1)
        return [CleanImage(f"{split}{i}", rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)) for i in range(2)]


class _SpacedName(_Tiny):
    name = "tiny set"


class _RepeatedIds(_Tiny):
    name = "repeated"

    def load(self, split: str) -> list[CleanImage]:
        return [CleanImage("same", image.pixels) for image in super().load(split)]


class _Shuffled(_Tiny):
    name = "shuffled"

    def load(self, split: str) -> list[CleanImage]:
        images = super().load(split) * 8
        order = np.random.default_rng(int.from_bytes(os.urandom(4), "little")).permutation(len(images))
        return [dataclasses.replace(images[i], id=f"{images[i].id}-{k}") for k, i in enumerate(order)]


class _CrashesWithoutData(_Tiny):
    name = "crashes"

    def check(self, split: str) -> None:
        if self.data_dir is None:
            raise TypeError("unsupported operand type(s) for /: 'NoneType' and 'str'")


@pytest.mark.parametrize(("dataset_class", "check", "message"), [
    (_SpacedName, "declaration", "name 'tiny set' must be one non-empty word"),
    (_RepeatedIds, "images", "repeats image ids ['same']"),
    (_Shuffled, "is_stable", "in a different order on each load"),
    (_CrashesWithoutData, "refuses_with_bench_error", "without a data directory it raised TypeError"),
])
def test_dataset_kit_names_what_is_broken(dataset_class: type[Dataset], check: str, message: str) -> None:
    assert DATASET_CHECKS[check](DatasetSetup(_Tiny)) is None  # the same check passes the sound dataset
    with pytest.raises(ConformanceError, match=re.escape(message)):
        DATASET_CHECKS[check](DatasetSetup(dataset_class))


def test_check_dataset_passes_a_good_plugin_and_reports_a_broken_one() -> None:
    assert check_dataset(_Tiny) == []
    failures = check_dataset(_RepeatedIds)
    assert [f.split(":", 1)[0] for f in failures] == ["images"], failures


# --- broken noise families -------------------------------------------------------------------------


def _biased(x, levels, g):  # type: ignore[no-untyped-def]
    return GAUSSIAN.sampler(x, levels, g) + 0.01


def _global_rng(x, levels, g):  # type: ignore[no-untyped-def]
    return x + levels["sigma"].view(-1, 1, 1, 1) / 255 * torch.randn(x.shape)


def _float64(x, levels, g):  # type: ignore[no-untyped-def]
    return GAUSSIAN.sampler(x, levels, g).double()


def _raises(x, levels, g):  # type: ignore[no-untyped-def]
    raise RuntimeError("sampler bug")


def _toy(base: NoiseFamily, name: str, **changes: object) -> NoiseFamily:
    """``base`` under another name (its presets renamed with it), with ``changes``."""
    rename = {"preset_train": base.preset_train and base.preset_train.replace(base.name, name, 1),
              "preset_tests": tuple(t.replace(base.name, name, 1) for t in base.preset_tests)}
    return dataclasses.replace(base, name=name, **(rename | changes))


UNBOUNDED_SIGMA = Param("sigma", "standard deviation", 0.0, math.inf)
ZERO_LAM = Param("lam", "photon count", 0.0, 100.0)  # lam = 0 allowed: poisson(0) / 0 is NaN


@pytest.mark.parametrize(("family", "check", "message"), [
    (_toy(GAUSSIAN, "wrong-property", properties=frozenset({"zero mean"})),
     "declaration", "declares unknown properties ['zero mean']"),
    (_toy(GAUSSIAN, "unbounded", params=(UNBOUNDED_SIGMA,), preset_train=None, preset_tests=()),
     "level_ranges", "declare the finite range of values the sampler supports"),
    (_toy(POISSON, "zero-lam", params=(ZERO_LAM,)),
     "level_ranges", "gives NaN or infinite values on a constant 0.0 image"),
    (_toy(GAUSSIAN, "float64", sampler=_float64), "sample_shape", "into torch.float64"),
    (_toy(GAUSSIAN, "global-rng", sampler=_global_rng), "seeding", "two draws with generator seed 11 differ"),
    (_toy(GAUSSIAN, "biased", sampler=_biased), "statistics", f"declares {ZERO_MEAN} but"),
    (_toy(GAUSSIAN, "wrong-variance", variance=lambda x, levels: 2 * GAUSSIAN.variance(x, levels)),
     "statistics", "its declared variance is"),
    (_toy(POISSON, "not-signal-independent", variance=None,
                         properties=POISSON.properties | {SIGNAL_INDEPENDENT}),
     "statistics", f"declares {SIGNAL_INDEPENDENT} but"),
])
def test_noise_kit_names_what_is_broken(family: NoiseFamily, check: str, message: str) -> None:
    with pytest.raises(ConformanceError, match=re.escape(message)):
        NOISE_CHECKS[check](NoiseSetup(family))


def test_check_noise_family_reports_a_sampler_that_raises_instead_of_raising() -> None:
    assert check_noise_family(GAUSSIAN) == []
    failures = check_noise_family(_toy(GAUSSIAN, "raises", sampler=_raises))
    assert failures and all("RuntimeError: sampler bug" in f for f in failures), failures
    assert {f.split("] ", 1)[1].split(":", 1)[0] for f in failures} == {"level_ranges", "sample_shape", "seeding", "statistics"}
