"""What a run records about where it ran: versions, device, git commit."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import torch

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
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "versions": versions,
        "git_commit": git_commit(Path(__file__).resolve().parent),
    }
