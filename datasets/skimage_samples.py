"""The images bundled with scikit-image: the embedded default, so the first command works offline."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import skimage.data
from typing_extensions import override

from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset
from denoise_bench.hookspecs import hookimpl
from denoise_bench.images import to_channels

# Natural photographs only (no synthetic charts), split so that no scene is in both splits.
GRAY_SPLITS = {
    TRAIN: ("brick", "grass", "gravel", "moon", "clock", "cell", "page", "text", "hubble_deep_field", "rocket", "immunohistochemistry"),
    TEST: ("camera", "coins", "astronaut", "coffee", "chelsea"),
}
COLOUR_SPLITS = {
    TRAIN: ("hubble_deep_field", "rocket", "immunohistochemistry"),
    TEST: ("astronaut", "coffee", "chelsea"),
}


def _load(name: str, channels: int) -> CleanImage:
    loader: Callable[[], np.ndarray] = getattr(skimage.data, name)
    return CleanImage(name, to_channels(np.asarray(loader(), dtype=np.uint8), channels))


class SkimageGray(Dataset):
    name = "skimage"
    description = "photographs bundled with scikit-image (embedded, no download)"
    channels = 1

    @override
    def load(self, split: str) -> list[CleanImage]:
        return [_load(n, self.channels) for n in GRAY_SPLITS[split]]


class SkimageColour(Dataset):
    name = "skimage-color"
    description = "colour photographs bundled with scikit-image (embedded, no download)"
    channels = 3

    @override
    def load(self, split: str) -> list[CleanImage]:
        return [_load(n, self.channels) for n in COLOUR_SPLITS[split]]


@hookimpl
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    register(SkimageGray)
    register(SkimageColour)
