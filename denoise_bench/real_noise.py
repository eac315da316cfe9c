"""Real noise: datasets that bring their own noisy captures (FMD) instead of a synthetic noise model.

``--noise real`` trains and tests on a dataset's own captures. The runner asks the family whether it
is ``captured``, never its name, so a plugin may register another family of captured noise (and a
dataset for it). Such a dataset implements ``real_scenes(split)`` (:class:`RealNoiseSource`): a
list of :class:`RealScene`, each several noisy captures of one field of view and, where the dataset
has one, its clean reference (FMD: the average of 50 captures). The runner then

* trains through a view built from the captures: a ``none`` method gets one random capture, a
  ``noisy-pairs`` method two different captures of the same scene (the Noise2Noise setting), a
  ``clean`` method a capture and its reference; self-supervised methods never see a reference;
* tests on every (capture, reference) pair of the test split, one record per capture (its index is
  the record's ``repeat``).

The ``real`` family itself is a built-in noise plugin (``denoise_bench.noises.real``); this module is
what the runner needs of any captured family. The ``real`` family has no parameters and cannot be
sampled. It declares zero-mean, pixel-independent noise: true of the shot and read noise of fluorescence microscopes (FMD is Poisson-Gaussian), which
is what methods like IDDP and Noise2Void rely on. A set of spatially correlated real noise (processed
sRGB phone photos) would need a family of its own that does not claim that. Methods that are told the
true noise level (BM3D here) are skipped: real noise has none to tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from denoise_bench.crops import CropSampler
from denoise_bench.errors import BenchError
from denoise_bench.evaluate import TestCase, centre_crop
from denoise_bench.images import to_chw
from denoise_bench.noise import NoiseSpec
from denoise_bench.supervision import Batch, Supervision, TrainingView, batch_of, data_home


@dataclass(frozen=True)
class RealScene:
    """Noisy captures of one scene, (H, W, C) uint8 each, and its clean reference if known."""

    id: str
    captures: tuple[np.ndarray, ...]
    clean: np.ndarray | None = None


@runtime_checkable
class RealNoiseSource(Protocol):
    def real_scenes(self, split: str) -> list[RealScene]:
        """The scenes of ``split``, in a fixed order."""


def require_real_source(dataset: object, noise: str = "real") -> RealNoiseSource:
    """``dataset`` if it has real noisy captures (for the captured family ``noise``); else the error that names it."""
    if not isinstance(dataset, RealNoiseSource):
        name = getattr(dataset, "name", type(dataset).__name__)
        raise BenchError(f"noise {noise!r} needs a dataset of real noisy captures (e.g. fmd); {name!r} has clean images only")
    return dataset


def real_scenes(dataset: object, split: str) -> list[RealScene]:
    """``dataset``'s scenes of ``split`` (at least one), or a clear error."""
    scenes = require_real_source(dataset).real_scenes(split)
    if not scenes:
        raise BenchError(f"dataset {getattr(dataset, 'name', '?')!r}: the {split!r} split has no real-noise scenes")
    return scenes


def make_real_test_cases(dataset: str, scenes: Sequence[RealScene], spec: NoiseSpec,
                         crop: int | None = None) -> list[TestCase]:
    """One test case per capture of every scene, scored against the scene's reference."""
    cases = []
    for scene in scenes:
        if scene.clean is None:
            raise BenchError(f"dataset {dataset!r}: test scene {scene.id!r} has no clean reference to score against")
        clean_u8 = centre_crop(to_chw(scene.clean), crop)
        for index, capture in enumerate(scene.captures):
            noisy = centre_crop(to_chw(capture), crop).float().div(255.0).unsqueeze(0)
            cases.append(TestCase(dataset, scene.id, clean_u8, spec, index, -1, noisy, {}))
    return cases


def build_real_view(supervision: Supervision, scenes: Sequence[RealScene], device: torch.device, seed: int) -> TrainingView:
    """A training view over real captures; like :func:`denoise_bench.supervision.build_view`, it
    hands out only what ``supervision`` allows."""
    pairs = [(scene, index) for scene in scenes for index in range(len(scene.captures))]
    if supervision is Supervision.NOISY_PAIRS:
        # Each capture with the next one of its scene: two independent noisy views of the same content.
        pairs = [(scene, index) for scene, index in pairs if len(scene.captures) > 1]
        if not pairs:
            raise BenchError("noisy-pairs training on real noise needs scenes with at least two captures")
    if supervision is Supervision.CLEAN and any(scene.clean is None for scene, _ in pairs):
        raise BenchError("clean-supervised training on real noise needs a reference for every training scene")
    nbytes = sum(scene.captures[0].nbytes * len(scene.captures) for scene in scenes)
    home = data_home(nbytes, device)
    tensors = {id(c): to_chw(c).to(home) for scene in scenes for c in scene.captures}
    first = [tensors[id(scene.captures[index])] for scene, index in pairs]
    planes: list[list[torch.Tensor]] = [first]
    if supervision is Supervision.NOISY_PAIRS:
        planes.append([tensors[id(scene.captures[(index + 1) % len(scene.captures)])] for scene, index in pairs])
    elif supervision is Supervision.CLEAN:
        references = {scene.id: to_chw(scene.clean).to(home) for scene in scenes}  # type: ignore[arg-type]
        planes.append([references[scene.id] for scene, _ in pairs])
    crop_gen = torch.Generator().manual_seed(seed)
    sampler = CropSampler(planes, crop_gen)

    def draw(batch_size: int, crop_size: int) -> Batch:
        crops = [c.to(device, non_blocking=True).float().div_(255) for c in sampler.sample(batch_size, crop_size)]
        return batch_of(supervision, crops)

    def rng_state() -> dict:
        return {"crop": crop_gen.get_state()}

    def set_rng_state(state: dict) -> None:
        crop_gen.set_state(state["crop"])

    channels = int(first[0].shape[0])
    return TrainingView(supervision, channels, len(sampler), device, draw, rng_state, set_rng_state)


def __getattr__(name: str) -> object:
    # The ``real`` family moved to the ``noises/`` plugin folder; ``from denoise_bench.real_noise import REAL``
    # keeps working, loaded on first use so that this core module never imports a plugin when it is imported.
    if name == "REAL":
        import importlib

        return importlib.import_module("denoise_bench.noises.real").REAL
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
