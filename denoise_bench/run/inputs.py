"""The images a run trains and tests on, each dataset split loaded once and each test case built once.

Noise reaches the images one of two ways, and this is the one place that tells them apart. For a
synthetic family the noise is drawn onto clean images: by the training view at every step, and with
a fixed seed per test image (``denoise_bench.evaluate``). For a *captured* family
(``NoiseFamily.captured``, e.g. ``real``) the noisy images are the dataset's own captures, scored
against its references (``denoise_bench.real_noise``).
"""

from __future__ import annotations

import torch

from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset, images_digest
from denoise_bench.errors import BenchError
from denoise_bench.evaluate import TestCase, make_test_cases
from denoise_bench.images import to_chw
from denoise_bench.noise import NoiseSpec
from denoise_bench.run.planning import RunPlan
from denoise_bench.real_noise import RealScene, build_real_view, make_real_test_cases, real_scenes
from denoise_bench.supervision import Supervision, TrainingView, build_view


class RunData:
    """Loads each dataset split once per process and builds each (dataset, test noise) case list once."""

    def __init__(self, p: RunPlan) -> None:
        self.plan = p
        self._clean: dict[tuple[str, str], list[CleanImage]] = {}
        self._scenes: dict[tuple[str, str], list[RealScene]] = {}
        self._cases: dict[tuple[str, str], list[TestCase]] = {}
        self._digests: dict[tuple[str, bool], str] = {}

    def training_view(self, supervision: Supervision, dataset: Dataset, noise: NoiseSpec, crop: int,
                      seed: int) -> TrainingView:
        """Training crops of ``dataset``'s training set, limited to what ``supervision`` allows."""
        p = self.plan
        if noise.family.captured:
            return build_real_view(supervision, self.scenes(dataset, TRAIN), p.device, seed)
        return build_view(supervision, self.train(dataset, crop), noise, p.policy, p.device, seed)

    def test_cases(self, dataset: Dataset, noise: NoiseSpec) -> list[TestCase]:
        """The noisy test inputs of ``dataset`` at ``noise``: the same for every method of the run."""
        key = (dataset.name, str(noise))
        if key not in self._cases:
            crop = self.plan.budget.test_crop
            cases = (make_real_test_cases(dataset.name, self.scenes(dataset, TEST), noise, crop) if noise.family.captured
                     else make_test_cases(dataset.name, self.test(dataset), noise, self.plan.protocol, crop))
            for case in cases:  # refused by name here, not as an error from deep inside a method or a metric
                h, w = case.clean_u8.shape[-2:]
                why = self.plan.protocol.unscorable(h, w)
                if why:
                    raise BenchError(f"dataset {dataset.name!r}: test image {case.image_id!r} is {h}x{w} pixels; {why}")
            self._cases[key] = cases
        return self._cases[key]

    def test_digest(self, dataset: Dataset, noise: NoiseSpec) -> str:
        """What makes ``dataset``'s test split that set (``data.images_digest``): of all its clean images, or
        for a captured family of its scenes' captures and references. Records carry it, so that two sets
        under one name are never ranked as one; computed once per process from the images loaded anyway."""
        key = (dataset.name, noise.family.captured)
        if key not in self._digests:
            if noise.family.captured:
                self.scenes(dataset, TEST)
                scenes = self._scenes[(dataset.name, TEST)]  # all of them, not only the first test_images
                items = [(s.id, [*s.captures, *([] if s.clean is None else [s.clean])]) for s in scenes]
            else:
                items = [(image.id, [image.pixels]) for image in self.clean(dataset, TEST)]
            self._digests[key] = images_digest(items)
        return self._digests[key]

    def clean(self, dataset: Dataset, split: str) -> list[CleanImage]:
        key = (dataset.name, split)
        if key not in self._clean:
            self._clean[key] = dataset.images(split)
        return self._clean[key]

    def shortest_train_side(self, dataset: Dataset) -> int:
        """The shortest side among the images of ``dataset``'s training set."""
        return min(min(im.pixels.shape[:2]) for im in self.clean(self.plan.training_source(dataset), TRAIN))

    def train(self, dataset: Dataset, crop: int) -> list[torch.Tensor]:
        """The training images of ``dataset``'s training set, checked against the ``crop`` side the method cuts."""
        source = self.plan.training_source(dataset)
        if source.channels != dataset.channels:
            raise BenchError(f"training set {source.name!r} has {source.channels} channel(s), test set {dataset.name!r} has {dataset.channels}")
        images = self.clean(source, TRAIN)
        small = [im for im in images if min(im.pixels.shape[:2]) < crop]
        if small:
            h, w = small[0].pixels.shape[:2]
            raise BenchError(f"training image {small[0].id!r} of {source.name!r} is {h}x{w}, smaller than the "
                             f"{crop}x{crop} crop ({len(small)} image(s) in all); choose a smaller --crop-size")
        return [to_chw(im.pixels) for im in images]

    def test(self, dataset: Dataset) -> list[CleanImage]:
        images = self.clean(dataset, TEST)
        limit = self.plan.budget.test_images
        return images[:limit] if limit else images

    def scenes(self, dataset: Dataset, split: str) -> list[RealScene]:
        """Real-noise scenes: the training source's for TRAIN, the first ``test_images`` for TEST."""
        source = self.plan.training_source(dataset) if split == TRAIN else dataset
        key = (source.name, split)
        if key not in self._scenes:
            self._scenes[key] = real_scenes(source, split)
        scenes = self._scenes[key]
        limit = self.plan.budget.test_images
        return scenes[:limit] if split == TEST and limit else scenes
