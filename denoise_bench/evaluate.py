"""Evaluation: fixed noisy test images, and one record per (image, repeat) per method."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from denoise_bench.data import CleanImage
from denoise_bench.errors import BenchError
from denoise_bench.filters import box_filter
from denoise_bench.global_state import who_of
from denoise_bench.images import to_chw
from denoise_bench.isolation import call_isolated
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.metric import Metric
from denoise_bench.registered_metrics import metrics as registered_metrics
from denoise_bench.noise import Levels, NoiseSpec
from denoise_bench.protocol import EvalProtocol


@dataclass(frozen=True)
class TestCase:
    """One noisy test input. The noise depends only on (protocol seed, dataset, image, setting, repeat)."""

    dataset: str
    image_id: str
    clean_u8: torch.Tensor  # (C, H, W) uint8, CPU
    spec: NoiseSpec
    repeat: int
    noise_seed: int
    noisy: torch.Tensor  # (1, C, H, W) float32, CPU, never clipped or quantised
    levels: Levels

    @property
    def level_text(self) -> str:
        return json.dumps({k: round(float(v[0]), 6) for k, v in self.levels.items()}, sort_keys=True)


def centre_crop(pixels: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return pixels
    h, w = pixels.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return pixels[..., top:top + size, left:left + size]


def make_test_cases(dataset: str, images: list[CleanImage], spec: NoiseSpec, protocol: EvalProtocol,
                    crop: int | None = None) -> list[TestCase]:
    """Noisy copies of every test image, drawn on the CPU so every device and method sees the same bits."""
    cases: list[TestCase] = []
    for image in images:
        clean_u8 = centre_crop(to_chw(image.pixels), crop)
        clean = clean_u8.float().div(255.0).unsqueeze(0)
        for repeat in range(protocol.repeats_for(dataset)):
            seed = protocol.noise_seed(dataset, image.id, str(spec), repeat)
            noisy, levels = spec.sample(clean, torch.Generator().manual_seed(seed))
            if not cases:
                _check_reproducible(spec, clean, seed, noisy)
            cases.append(TestCase(dataset, image.id, clean_u8, spec, repeat, seed, noisy, levels))
    return cases


def _check_reproducible(spec: NoiseSpec, clean: torch.Tensor, seed: int, noisy: torch.Tensor) -> None:
    """Refuse a noise model whose draw is not a function of its seed (a sampler that draws from torch's global
    generator, not the one it is given): its records would name a ``noise_seed`` that does not give their
    inputs back, and every run would test on other noise. Drawn once more with the same seed, compared bit for bit."""
    again, _ = spec.sample(clean, torch.Generator().manual_seed(seed))
    if again.shape != noisy.shape or again.dtype != noisy.dtype or _bytes(again) != _bytes(noisy):  # NaN equal to NaN
        who = who_of(spec.family.sampler, f"noise model {spec.family.name!r}")
        raise BenchError(f"{who}: two draws of {spec} with the same seed differ, so its test noise would change from "
                         "run to run under the same recorded noise_seed; its sampler must draw only from the "
                         "generator it is given (generator=...), not from torch's global one")


def _bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().numpy().tobytes()


FLOOR_KERNEL = 3  # the floor of every table: a FLOOR_KERNEL x FLOOR_KERNEL box filter of the noisy input


def floor_scores(noisy: torch.Tensor, clean_u8: torch.Tensor, protocol: EvalProtocol,
                 metrics: Sequence[Metric]) -> dict[str, float]:
    """Metric name -> score of the floor every learned method must beat: the box filter of a (1, C, H, W)
    noisy input (``filters.box_filter``, kernel :data:`FLOOR_KERNEL`, reflect padding), scored by
    ``protocol`` like an estimate. NaN for an image with a side under 2 pixels, too small to reflect-pad."""
    if min(noisy.shape[-2:]) < FLOOR_KERNEL // 2 + 1:
        return {metric.name: math.nan for metric in metrics}
    return protocol.scores(box_filter(noisy, FLOOR_KERNEL)[0], clean_u8, metrics)


def _timed_denoise(method: Method, noisy: torch.Tensor, info: NoiseInfo | None,
                   device: torch.device) -> tuple[torch.Tensor, float]:
    """The estimate of one input and the seconds it took (the device's queued work included). Under
    ``torch.no_grad()``, as the plugin guide promises: a method that optimises per image turns
    gradients back on itself."""
    start = time.perf_counter()
    with torch.no_grad():
        estimate = method.denoise(noisy, info)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return estimate, time.perf_counter() - start


def check_estimate(method: str, estimate: object, noisy: torch.Tensor) -> None:
    """Refuse an estimate that cannot be scored as the contract says (``Method.denoise``: a floating-point
    tensor of the input's shape on the input's device), naming the method. Scored anyway, a uint8 estimate
    would be read as values of 0-255 on the 0-1 scale and clamped (a few dB, as if the method were bad)."""
    if not isinstance(estimate, torch.Tensor):
        raise BenchError(f"{method}.denoise returned {type(estimate).__name__}, not a tensor")
    if not estimate.is_floating_point():
        raise BenchError(f"{method}.denoise returned a {str(estimate.dtype).removeprefix('torch.')} tensor; it must return "
                         "floating-point values on the 0-1 scale of its input")
    if estimate.shape != noisy.shape:
        raise BenchError(f"{method}.denoise returned shape {tuple(estimate.shape)} for input {tuple(noisy.shape)}")
    if estimate.device != noisy.device:
        raise BenchError(f"{method}.denoise returned a tensor on {estimate.device} for an input on {noisy.device}")


# Test inputs a GPU denoises at once (of one padded shape, for a method with ``batch_denoise``): at one
# image per call a small network leaves the GPU waiting on launches. On a CPU a batch gains nothing.
GPU_EVAL_BATCH = 8


def _batchable(method: Method) -> bool:
    """Whether ``method`` may get several inputs in one call: it declares ``batch_denoise``, and it is not told
    a noise level (a NoiseInfo is per image)."""
    return method.batch_denoise and not method.uses_noise_level


def eval_batch_size(method: Method, device: torch.device) -> int:
    """How many inputs :func:`evaluate` hands ``method`` at once on ``device``."""
    return GPU_EVAL_BATCH if device.type == "cuda" and _batchable(method) else 1


def _padded_groups(method: Method, cases: list[TestCase], protocol: EvalProtocol, device: torch.device,
                   size: int) -> Iterator[list[tuple[TestCase, torch.Tensor, torch.Tensor]]]:
    """(case, noisy input on ``device``, its padded copy) in runs of consecutive cases of one padded shape,
    at most ``size`` long, in the order of ``cases``."""
    group: list[tuple[TestCase, torch.Tensor, torch.Tensor]] = []
    for case in cases:
        noisy = case.noisy.to(device)
        padded = protocol.pad(noisy, method.input_multiple, method.pads_to_square)
        if group and (len(group) == size or group[0][2].shape != padded.shape):
            yield group
            group = []
        group.append((case, noisy, padded))
    if group:
        yield group


def evaluate(method: Method, cases: list[TestCase], protocol: EvalProtocol, device: torch.device,
             on_case: Callable[[], object] = lambda: None,
             on_estimate: Callable[[TestCase, torch.Tensor], None] | None = None,
             batch: int | None = None) -> Iterator[dict]:
    """Denoise each case and yield its record fields: every registered metric (``denoise_bench.metric``)
    of the estimate, of the noisy input (``input_<name>``) and of the floor (``floor_<name>``,
    :func:`floor_scores`).

    ``on_estimate(case, estimate)`` sees each (cropped back) estimate, e.g. to save example images.

    The method is handed its own copy of the noisy input (``EvalProtocol.pad``), so one that edits it
    in place changes neither the next method's input nor the noisy input's and the floor's scores, and
    is called on a stack of its own (``denoise_bench.isolation``), where no frame holds the clean image.

    ``batch`` inputs of one padded shape are denoised in one call (default :func:`eval_batch_size`); each
    record's ``seconds`` is then its share of the call."""
    metrics = registered_metrics()
    size = eval_batch_size(method, device) if batch is None else batch
    if not _batchable(method):  # one input per call, whatever was asked
        size = 1
    for group in _padded_groups(method, cases, protocol, device, size):
        yield from _scored_group(method, group, protocol, device, metrics, on_case, on_estimate)


def _scored_group(method: Method, group: list[tuple[TestCase, torch.Tensor, torch.Tensor]], protocol: EvalProtocol,
                  device: torch.device, metrics: Sequence[Metric], on_case: Callable[[], object],
                  on_estimate: Callable[[TestCase, torch.Tensor], None] | None) -> Iterator[dict]:
    """The records of one group of :func:`_padded_groups`, denoised in one call."""
    first = group[0][0]
    info = NoiseInfo.from_levels(first.spec, first.levels) if method.uses_noise_level else None  # a group of one
    stacked = torch.cat([padded for _, _, padded in group])
    estimates, seconds = call_isolated(_timed_denoise, method, stacked, info, device, device=device)
    check_estimate(method.name, estimates, stacked)
    seconds /= len(group)
    for k, (case, noisy, _) in enumerate(group):
        h, w = noisy.shape[-2:]
        estimate = estimates[k:k + 1, ..., :h, :w]
        if on_estimate is not None:
            on_estimate(case, estimate)
        clean = case.clean_u8.to(device)
        scores = protocol.scores(estimate[0], clean, metrics)
        input_scores = protocol.scores(noisy[0], clean, metrics)
        floor = floor_scores(noisy, clean, protocol, metrics)
        on_case()
        yield {
            "test_noise": str(case.spec),
            "dataset": case.dataset,
            "image": case.image_id,
            "repeat": case.repeat,
            "noise_seed": case.noise_seed,
            "noise_level": case.level_text,
            **scores,
            **{f"input_{name}": value for name, value in input_scores.items()},
            **{f"floor_{name}": value for name, value in floor.items()},
            "seconds": seconds,
        }
