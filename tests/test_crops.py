"""The crop samplers: the device-side sampler (crops cut where the images live, positions never read
back to the host) draws the same crops as the host sampler, uniformly over images and positions."""

from __future__ import annotations

import pytest
import torch

from denoise_bench.crops import CropSampler, DeviceCropSampler
from denoise_bench.errors import BenchError

CROP = 8


def _images(channels: int = 3) -> list[torch.Tensor]:
    """Five images of different sizes (one only just larger than the crop), distinct pixels."""
    g = torch.Generator().manual_seed(7)
    sizes = [(CROP, CROP + 3), (20, 11), (13, 30), (CROP + 1, CROP + 1), (17, 17)]
    return [torch.randint(0, 256, (channels, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]


@pytest.mark.parametrize("channels", [1, 3])
def test_the_device_sampler_cuts_the_host_samplers_crops_from_one_seed(channels: int) -> None:
    clean = _images(channels)
    noisy = [image.float().div(255) for image in clean]  # a second plane, of another dtype, cut alike
    host = CropSampler([clean, noisy], torch.Generator().manual_seed(11))
    device = DeviceCropSampler([clean, noisy], torch.Generator().manual_seed(11))
    for _ in range(40):
        expected, got = host.sample(4, CROP), device.sample(4, CROP)
        assert [t.shape for t in got] == [t.shape for t in expected] == [(4, channels, CROP, CROP)] * 2
        assert got[0].dtype == torch.uint8 and got[1].dtype == torch.float32
        for a, b in zip(got, expected):
            assert torch.equal(a, b)


def test_each_device_crop_is_the_image_at_its_drawn_position() -> None:
    images = _images()
    sampler = DeviceCropSampler([images], torch.Generator().manual_seed(5))
    state = sampler.generator.get_state()
    index, top, left = sampler.positions(64, CROP)
    sampler.generator.set_state(state)
    crops = sampler.sample(64, CROP)[0]
    for k, (i, t, l) in enumerate(zip(index.tolist(), top.tolist(), left.tolist())):
        assert torch.equal(crops[k], images[i][:, t:t + CROP, l:l + CROP])


def test_device_positions_are_uniform_over_images_and_every_valid_window() -> None:
    """Every image equally often, and in each image every top-left corner that fits, each about equally
    often: a range one short (never the last row) or one long (a window past the border) fails."""
    images = _images()
    sampler = DeviceCropSampler([images], torch.Generator().manual_seed(3))
    draws = 40_000
    index, top, left = sampler.positions(draws, CROP)
    counts = torch.bincount(index, minlength=len(images)).double()
    assert ((counts - draws / len(images)).abs() < 5 * (draws / len(images)) ** 0.5).all()
    for i, image in enumerate(images):
        h, w = image.shape[-2:]
        mine = index == i
        for drawn, side in ((top[mine], h), (left[mine], w)):
            positions = side - CROP + 1
            hist = torch.bincount(drawn, minlength=positions).double()
            assert hist.numel() == positions  # no window past the border
            expected = mine.sum() / positions
            assert (hist > 0).all()  # the last row and column are reached
            assert ((hist - expected).abs() < 5 * expected.sqrt() + 1).all()


def test_the_device_sampler_refuses_a_generator_elsewhere_and_too_small_images() -> None:
    images = _images()
    meta = [image.to("meta") for image in images]
    with pytest.raises(BenchError, match="a device-side sampler draws where the images are"):
        DeviceCropSampler([meta], torch.Generator().manual_seed(0))
    with pytest.raises(BenchError, match="smaller than the 12x12 crop"):
        DeviceCropSampler([images], torch.Generator().manual_seed(0)).sample(2, 12)
