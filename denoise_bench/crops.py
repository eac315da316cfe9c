"""Random square crops from a list of images of different sizes (the shared crop samplers).

:class:`CropSampler` cuts each crop by slicing, with positions read back to the host; it serves images
in host memory. :class:`DeviceCropSampler` draws the same positions from the same generator calls but
keeps them on the images' device and gathers every crop of a batch with one index, so a training step
on resident images neither waits for the host nor copies pixels (and a CUDA graph can record it). On
one generator the two cut identical crops.
"""

from __future__ import annotations

import math
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


class DeviceCropSampler(CropSampler):
    """:class:`CropSampler`'s crops, drawn and cut on the images' device.

    Each plane is held as one flat tensor (images of any sizes back to back, no padding) with every
    image's offset; positions are drawn from ``generator`` (which must live on the same device) with the
    host sampler's calls, in the same order and precision, and the crops gathered by one computed index.
    """

    def __init__(self, planes: Sequence[Sequence[torch.Tensor]], generator: torch.Generator) -> None:
        super().__init__(planes, generator)
        first = planes[0][0]
        self.device = first.device
        if generator.device != self.device:
            raise BenchError(f"the crop generator is on {generator.device}, the images on {self.device}: "
                             "a device-side sampler draws where the images are")
        self.lead = tuple(first.shape[:-2])  # e.g. (C,): the same for every image of a plane
        self.flat = [torch.cat([image.reshape(-1) for image in plane]) for plane in planes]
        self.planes = []  # the flat copies replace the image lists: one copy of the pixels on the device
        self.channels = math.prod(self.lead)  # the leading dimensions, flattened (1 for an (H, W) image)
        sizes = torch.tensor(self.sizes, dtype=torch.long, device=self.device)
        self.heights, self.widths = sizes[:, 0], sizes[:, 1]
        areas = self.heights * self.widths * self.channels
        self.offsets = torch.cumsum(areas, 0) - areas

    def positions(self, batch_size: int, crop_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image index, top, left) of ``batch_size`` random crops, as device tensors: the host sampler's
        draws (one ``randint`` over the images, one float64 ``rand`` of shape (batch, 2))."""
        g = self.generator
        index = torch.randint(len(self.sizes), (batch_size,), generator=g, device=self.device)
        u = torch.rand(batch_size, 2, generator=g, dtype=torch.float64, device=self.device)
        top = (u[:, 0] * (self.heights[index] - crop_size + 1)).floor().long()
        left = (u[:, 1] * (self.widths[index] - crop_size + 1)).floor().long()
        return index, top, left

    def sample(self, batch_size: int, crop_size: int) -> list[torch.Tensor]:
        self.check_fits(crop_size)
        index, top, left = self.positions(batch_size, crop_size)
        span = torch.arange(crop_size, device=self.device)
        width = self.widths[index].view(-1, 1, 1, 1)
        plane_area = (self.heights[index] * self.widths[index]).view(-1, 1, 1, 1)
        channel = torch.arange(self.channels, device=self.device).view(1, -1, 1, 1)
        rows = top.view(-1, 1, 1, 1) + span.view(1, 1, -1, 1)
        cols = left.view(-1, 1, 1, 1) + span.view(1, 1, 1, -1)
        at = self.offsets[index].view(-1, 1, 1, 1) + channel * plane_area + rows * width + cols
        shape = (batch_size, *self.lead, crop_size, crop_size)
        return [flat[at].view(shape) for flat in self.flat]
