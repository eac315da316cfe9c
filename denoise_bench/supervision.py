"""The supervision boundary: what a method may see during training.

The runner holds the clean training images. It hands a method a *view* built for the method's
declared supervision, and the view only ever returns batches of that kind:

* ``none``         -> :class:`NoisyBatch`      (one noisy draw per crop)
* ``noisy-pairs``  -> :class:`NoisyPairBatch`  (two independent noisy draws of the same crop)
* ``clean``        -> :class:`CleanBatch`      (noisy input and its clean target)
* ``pretrained``   -> nothing: the method arrives trained on external clean data (published weights) and
  is never trained by this suite (``trainable = False``); tables mark it and say "not trained here".

A view keeps its image source inside a closure and exposes no attribute holding clean pixels. Under
the ``fixed`` noise policy the clean images are not even kept: the view is built from one noisy copy
per image (two for noisy pairs), which is exactly what a single-noisy-image user has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import torch

from denoise_bench.crops import CropSampler, DeviceCropSampler
from denoise_bench.errors import BenchError
from denoise_bench.noise import NoiseSpec


class Supervision(str, Enum):
    NONE = "none"
    NOISY_PAIRS = "noisy-pairs"
    CLEAN = "clean"
    # Trained elsewhere, on external clean data, not by this suite: never trained here (no training view),
    # and marked wherever it is ranked, so that it is never read as one of the self-supervised rows.
    PRETRAINED = "pretrained"


class NoisePolicy(str, Enum):
    FRESH = "fresh"  # new noise every iteration (the official codes; paper-compatible default)
    FIXED = "fixed"  # one noisy copy per training image (strict single-noisy-image setting)


@dataclass(frozen=True)
class NoisyBatch:
    noisy: torch.Tensor


@dataclass(frozen=True)
class NoisyPairBatch:
    noisy: torch.Tensor
    noisy2: torch.Tensor


@dataclass(frozen=True)
class CleanBatch:
    noisy: torch.Tensor
    clean: torch.Tensor


Batch = NoisyBatch | NoisyPairBatch | CleanBatch
BATCH_TYPES: dict[Supervision, type] = {
    Supervision.NONE: NoisyBatch,
    Supervision.NOISY_PAIRS: NoisyPairBatch,
    Supervision.CLEAN: CleanBatch,
}


def batch_of(supervision: Supervision, planes: list[torch.Tensor]) -> Batch:
    """The batch a ``supervision`` gets from parallel crops: [noisy], [noisy, noisy2] or [noisy, clean]."""
    if supervision is Supervision.NONE:
        return NoisyBatch(planes[0])
    if supervision is Supervision.NOISY_PAIRS:
        return NoisyPairBatch(planes[0], planes[1])
    return CleanBatch(planes[0], planes[1])


class TrainingView:
    """Random training crops of the kind the supervision allows; nothing else."""

    def __init__(self, supervision: Supervision, channels: int, num_images: int, device: torch.device,
                 draw: Callable[[int, int], Batch], rng_state: Callable[[], dict], set_rng_state: Callable[[dict], None],
                 generators: tuple[torch.Generator, ...] = (), device_resident: bool = False) -> None:
        self.supervision = supervision
        # What a recorded (CUDA graph) step needs to know: the generators its draws come from, and whether a
        # draw stays on the device (crops cut there, no host read-back).
        self.generators = generators
        self.device_resident = device_resident
        self.channels = channels
        self.num_images = num_images
        self.device = device
        self._draw = draw
        self.rng_state = rng_state
        self.set_rng_state = set_rng_state

    def sample(self, batch_size: int, crop_size: int) -> Batch:
        """A batch of ``batch_size`` random ``crop_size`` x ``crop_size`` crops, float32 on the view's device."""
        return self._draw(batch_size, crop_size)


# Share of the device's free memory the training images may take; the rest is for the network.
RESIDENT_SHARE = 0.5


def data_home(nbytes: int, device: torch.device, free_bytes: int | None = None) -> torch.device:
    """Where the uint8 training images live: on ``device`` when they fit, else in host memory.

    On the device, crops and noise are drawn there and a training step copies nothing from the host
    (the 4744-image Waterloo set takes a few GB as uint8). Otherwise each batch of crops is cut on
    the host and copied over: slower, but it trains.
    """
    if device.type != "cuda":
        return device
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    return device if nbytes <= RESIDENT_SHARE * free_bytes else torch.device("cpu")


def build_view(
    supervision: Supervision,
    clean_images: Sequence[torch.Tensor],
    noise: NoiseSpec,
    policy: NoisePolicy,
    device: torch.device,
    seed: int,
) -> TrainingView:
    """Build the view for ``supervision`` over clean (C, H, W) uint8 images.

    ``seed`` fixes the crop positions and the noise, so a training run is reproducible.
    """
    if not clean_images:
        raise BenchError("the training split has no images")
    channels = int(clean_images[0].shape[0])
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)

    def noisy_of(x: torch.Tensor) -> torch.Tensor:
        return noise.sample(x, noise_gen)[0]

    if policy is NoisePolicy.FIXED:
        # Draw the noisy copies once, per whole image, and forget the clean images.
        copies = 2 if supervision is Supervision.NOISY_PAIRS else 1
        planes = [[noisy_of(img.to(device).float().div(255).unsqueeze(0))[0] for img in clean_images] for _ in range(copies)]
        if supervision is Supervision.CLEAN:
            planes.append([img.to(device).float().div(255) for img in clean_images])
    else:
        home = data_home(sum(img.numel() * img.element_size() for img in clean_images), device)
        planes = [[img.to(home) for img in clean_images]]
    # Images resident on the training device are cropped there, positions drawn from a generator on that
    # device (on a CPU the same draws and crops as the host sampler, which serves images kept in host memory).
    resident = planes[0][0].device.type == device.type  # data_home chose the device or the host
    crop_gen = torch.Generator(device=planes[0][0].device).manual_seed(seed)
    sampler = (DeviceCropSampler if resident else CropSampler)(planes, crop_gen)

    def draw(batch_size: int, crop_size: int) -> Batch:
        crops = [crop.to(device, non_blocking=True) for crop in sampler.sample(batch_size, crop_size)]
        if policy is NoisePolicy.FIXED:
            return batch_of(supervision, crops)
        clean = crops[0].float().div_(255)
        if supervision is Supervision.NONE:
            return NoisyBatch(noisy_of(clean))
        if supervision is Supervision.NOISY_PAIRS:
            return NoisyPairBatch(noisy_of(clean), noisy_of(clean))
        return CleanBatch(noisy_of(clean), clean)

    def rng_state() -> dict:
        return {"crop": crop_gen.get_state(), "noise": noise_gen.get_state()}

    def set_rng_state(state: dict) -> None:
        crop_gen.set_state(state["crop"])
        noise_gen.set_state(state["noise"])

    return TrainingView(supervision, channels, len(sampler), device, draw, rng_state, set_rng_state,
                        generators=(crop_gen, noise_gen), device_resident=resident)
