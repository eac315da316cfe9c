"""What a run records about where and when it ran: the command line, versions, the plugin and
distribution (with its version) that registered each method, dataset and noise model, device, CPU
model and the flags that decide the training precision, CUDA/cuDNN on a GPU, git commit, and the
time it was recorded."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from denoise_bench.engine import CPUINFO, bf16_matrix_flags, cpuinfo_value
from denoise_bench.errors import BenchError
from denoise_bench.host_memory import host_memory_state
from denoise_bench.plugins import Registry, get_registry

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


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


KIND_KEYS = {"method": "methods", "dataset": "datasets", "noise model": "noise_models", "metric": "metrics"}


def plugin_provenance(registry: Registry | None = None) -> list[dict]:
    """One entry per plugin that registered something: its name, distribution and version (None for a
    plugin registered at run time), and the methods, datasets, noise models and metrics it registered."""
    registry = registry or get_registry()
    plugins: dict[str, dict] = {}
    for (kind, name), (plugin, distribution) in registry.origins.items():
        if kind not in KIND_KEYS:  # an executor decides where a run runs, not what it measures
            continue
        entry = plugins.setdefault(plugin, {"plugin": plugin, "distribution": distribution,
                                            "version": _version(distribution) if distribution else None,
                                            **{key: [] for key in KIND_KEYS.values()}})
        entry[KIND_KEYS[kind]].append(name)
    for entry in plugins.values():
        for key in KIND_KEYS.values():
            entry[key].sort()
    return list(plugins.values())


def cpu_speed_facts() -> dict:
    """What decides a CPU's training speed beside the engine; recorded by runs and by ``bench perf``."""
    return {"cpu_bf16_flags": bf16_matrix_flags(),  # auto trains in bf16 on amx_bf16 (denoise_bench.engine)
            "host_memory": host_memory_state()}  # "kept": freed CPU memory reused (denoise_bench.host_memory)


def describe_environment(device: torch.device) -> dict:
    versions = {name: _version(name) for name in PACKAGES}
    registry = get_registry()
    return {
        "command_line": list(sys.argv),  # of the latest invocation, as the shell passed it
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        **cpu_speed_facts(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        **_cuda(device),
        "versions": versions,
        "plugins": plugin_provenance(registry),  # what registered each method, dataset and noise model
        "skipped_plugins": [{"plugin": f.plugin, "distribution": f.distribution, "error": f.error}
                            for f in registry.failures],
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "git_dirty": _git_dirty(Path(__file__).resolve().parent),
        "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # of the latest invocation
    }
