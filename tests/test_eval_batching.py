"""Batched evaluation (a GPU denoises several test inputs of one padded shape in one call): the records
are those of one input per call, and a method that works per image is still called per image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import skimage.data
import torch

from denoise_bench.data import CleanImage
from denoise_bench.evaluate import GPU_EVAL_BATCH, eval_batch_size, evaluate, make_test_cases
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.protocol import get_protocol
from denoise_bench.testing import TINY_BUDGET, ConformanceSetup

CPU = torch.device("cpu")


def _cases() -> list:
    """Five test inputs of two padded shapes, not sorted by shape (a group ends at a new shape)."""
    camera = skimage.data.camera()
    shapes = [(60, 70), (64, 50), (40, 64), (90, 80), (70, 90)]
    images = [CleanImage(f"im{k}", np.ascontiguousarray(camera[10 * k:10 * k + h, 20 * k:20 * k + w, None]))
              for k, (h, w) in enumerate(shapes)]
    spec = parse_spec("gaussian:sigma=25", get_registry().noise_families)
    return make_test_cases("tiny", images, spec, get_protocol("nb2nb"))


def _records(method, batch: int) -> list[dict]:  # type: ignore[no-untyped-def]
    return list(evaluate(method, _cases(), get_protocol("nb2nb"), CPU, batch=batch))


def test_a_batched_evaluation_gives_the_records_of_one_input_per_call() -> None:
    budget = dataclasses.replace(TINY_BUDGET, iterations=5)
    method = ConformanceSetup(get_registry().method("n2n"), budget=budget).fitted()
    calls: list[int] = []
    denoise = method.denoise
    method.denoise = lambda noisy, info=None: (calls.append(noisy.shape[0]), denoise(noisy, info))[1]  # type: ignore[method-assign]
    one = _records(method, batch=1)
    assert calls == [1] * 5
    calls.clear()
    batched = _records(method, batch=2)
    # Padded to squares of a multiple of 32: 96, 64, 64, 96, 96; a group is consecutive inputs of one shape.
    assert calls == [1, 2, 2]
    assert [r["image"] for r in batched] == [r["image"] for r in one]
    for a, b in zip(one, batched):
        assert b["psnr"] == pytest.approx(a["psnr"], abs=1e-4)
        assert b["input_psnr"] == a["input_psnr"] and b["floor_psnr"] == a["floor_psnr"]
    assert batched[1]["seconds"] == batched[2]["seconds"]  # each its share of the call that denoised both


def test_a_per_image_method_is_called_per_image_whatever_the_batch() -> None:
    method = ConformanceSetup(get_registry().method("bm3d")).make()
    assert not method.batch_denoise
    calls: list[int] = []
    denoise = method.denoise
    method.denoise = lambda noisy, info=None: (calls.append(noisy.shape[0]), denoise(noisy, info))[1]  # type: ignore[method-assign]
    _records(method, batch=4)
    assert calls == [1] * 5


def test_only_a_gpu_batches_by_default() -> None:
    network = ConformanceSetup(get_registry().method("unet")).make()
    assert eval_batch_size(network, CPU) == 1
    assert eval_batch_size(network, torch.device("cuda")) == GPU_EVAL_BATCH
    assert eval_batch_size(ConformanceSetup(get_registry().method("dip")).make(), torch.device("cuda")) == 1
