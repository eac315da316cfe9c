"""Random square crops from a list of images of different sizes (the shared crop sampler)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from denoise_bench.errors import BenchError


class CropSampler:
    """Crops the same random windows out of parallel image lists.

    ``planes`` is a list of image lists of equal length and matching sizes (e.g. [noisy copies,
    clean images]); one call returns one batch per plane, all cut at the same positions.
    """

    def __init__(self, planes: Sequence[Sequence[torch.Tensor]], generator: torch.Generator) -> None:
        if not planes or not planes[0]:
            raise BenchError("no training images to crop from")
        self.planes = planes
        self.generator = generator
        self.sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in planes[0]]
        self._fits: set[int] = set()  # crop sizes already checked

    def __len__(self) -> int:
        return len(self.sizes)

    def check_fits(self, crop_size: int) -> None:
        if crop_size in self._fits:
            return
        small = [i for i, (h, w) in enumerate(self.sizes) if h < crop_size or w < crop_size]
        if small:
            h, w = self.sizes[small[0]]
            raise BenchError(
                f"{len(small)} training image(s) are smaller than the {crop_size}x{crop_size} crop "
                f"(e.g. image #{small[0]} is {h}x{w}); choose a smaller --crop-size"
            )
        self._fits.add(crop_size)

    def sample(self, batch_size: int, crop_size: int) -> list[torch.Tensor]:
        self.check_fits(crop_size)
        g = self.generator
        index = torch.randint(len(self.sizes), (batch_size,), generator=g).tolist()
        u = torch.rand(batch_size, 2, generator=g, dtype=torch.float64).tolist()
        out: list[list[torch.Tensor]] = [[] for _ in self.planes]
        for i, (ui, uj) in zip(index, u):
            h, w = self.sizes[i]
            top = int(ui * (h - crop_size + 1))
            left = int(uj * (w - crop_size + 1))
            for plane, acc in zip(self.planes, out):
                acc.append(plane[i][..., top:top + crop_size, left:left + crop_size])
        return [torch.stack(acc) for acc in out]
