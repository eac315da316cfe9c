"""What a run records about where and when it ran: versions, device, CPU model and the flags that
decide the training precision, CUDA/cuDNN on a GPU, git commit, and the time it was recorded."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from denoise_bench.engine import CPUINFO, bf16_matrix_flags, cpuinfo_value
from denoise_bench.errors import BenchError

PACKAGES = ("denoise-bench", "torch", "numpy", "pandas", "scikit-image", "bm3d", "pluggy", "click")


def pick_device(requested: str | None) -> torch.device:
    """CUDA when present unless told otherwise."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise BenchError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {requested!r} requested but CUDA is not available here; use --device cpu")
    return device


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name ("Intel(R) Xeon(R) ...", "AMD EPYC ..."), or the architecture if unknown."""
    return cpuinfo_value(("model name",), cpuinfo) or platform.processor() or platform.machine()


def _git_dirty(path: Path) -> bool | None:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def _cuda(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    return {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(device)))}


def describe_environment(device: torch.device) -> dict:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_bf16_flags": bf16_matrix_flags(),  # what --precision auto reads
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        **_cuda(device),
        "versions": versions,
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "git_dirty": _git_dirty(Path(__file__).resolve().parent),
        "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # of the latest invocation
    }
