"""Refusing a training budget that cannot fit in the memory of the device it trains on, before anything runs.

A training step holds the batch of crops (the noisy input and its target) and, for a network method,
the network's feature maps and their gradients at the crops' full resolution. :func:`check_budgets_fit`
estimates that on the low side: the two crops, and :data:`FEATURE_MAPS` feature maps of the network's
width per crop pixel (a U-Net step of the suite measured 25-90 on a CPU, fp32). A budget whose estimate
exceeds the device's memory (CUDA memory, or the host's with its cgroup limit) is refused with a
:class:`BenchError`, so that ``--batch-size 100000000`` is a message in a second instead of hours of
crop sampling and swapping. Budgets under the estimate may still not fit; none above it can.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from denoise_bench.errors import BenchError
from denoise_bench.method import Method
from denoise_bench.network_method import NetworkMethod
from denoise_bench.profiles import Budget

FLOAT_BYTES = 4
FEATURE_MAPS = 8  # full-resolution feature maps of the network's width per crop pixel, at the least
GIB = 2**30
# cgroup limits of this process's memory (v2, then v1); "max" or absent where there is none.
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def step_bytes(method_cls: type[Method], budget: Budget, channels: int) -> int:
    """The least memory one training step of ``method_cls`` under ``budget`` takes, in bytes."""
    per_pixel = 2 * channels + (FEATURE_MAPS * budget.width if issubclass(method_cls, NetworkMethod) else 0)
    return budget.batch_size * budget.crop_size**2 * per_pixel * FLOAT_BYTES


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return host_memory() if device.type == "cpu" else None


def host_memory() -> int | None:
    """Bytes of this machine's memory, or of the cgroup limit this process runs under where that is less."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name
        return None
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def check_budgets_fit(methods: Sequence[type[Method]], budgets: dict[str, Budget], channels: int,
                      device: torch.device) -> None:
    """Raise a BenchError naming the first trained method whose training step cannot fit on ``device``."""
    have = device_memory(device)
    if have is None:
        return
    for method_cls in methods:
        if not method_cls.trainable:
            continue
        budget = budgets[method_cls.name]
        need = step_bytes(method_cls, budget, channels)
        if need > have:
            raise BenchError(
                f"{method_cls.name}: a training step of batch {budget.batch_size} x {budget.crop_size}x"
                f"{budget.crop_size} crops ({channels} channel(s), width {budget.width}) needs at least "
                f"{need / GIB:,.1f} GiB, more than the {have / GIB:,.1f} GiB of {device.type} memory here; "
                "choose a smaller --batch-size or --crop-size")
