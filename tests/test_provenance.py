"""environment.json says how a run was started and which plugin, from which distribution and version,
provided every method, dataset and noise model it could use."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.cli.commands import main
from denoise_bench.environment import describe_environment, plugin_provenance
from denoise_bench.hookspecs import hookimpl
from helpers import Median3, MethodPlugin


def test_a_tiny_run_records_its_command_line_and_the_plugin_of_every_entry(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plugins.register_plugin(MethodPlugin(Median3), name="median-plugin")
    out = tmp_path / "run"
    args = ["run", "--methods", "median3", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--out", str(out),
            "--no-progress"]
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    env = json.loads((out / "environment.json").read_text())
    assert env["command_line"] == ["bench", *args]
    by_plugin = {p["plugin"]: p for p in env["plugins"]}
    version = importlib.metadata.version("denoise-bench")
    assert by_plugin["denoise_bench.methods.iddp"] == {"plugin": "denoise_bench.methods.iddp", "distribution": "denoise-bench",
                                                      "version": version, "methods": ["iddp", "iddp-sup-start"], "datasets": [],
                                                      "noise_models": [], "metrics": []}
    assert by_plugin["denoise_bench.datasets.skimage_samples"]["datasets"] == ["skimage", "skimage-color"]
    assert by_plugin["denoise_bench.noises.synthetic"]["noise_models"] == ["gaussian", "poisson", "poisson-gaussian", "speckle"]
    assert by_plugin["denoise_bench.noises.real"]["noise_models"] == ["real"]
    assert "denoise_bench.run.executors" not in by_plugin  # where a run runs is no part of what it measured
    # A plugin registered at run time has no distribution to name.
    assert by_plugin["median-plugin"] == {"plugin": "median-plugin", "distribution": None, "version": None,
                                          "methods": ["median3"], "datasets": [], "noise_models": [],
                                          "metrics": []}
    registry = plugins.get_registry()
    assert by_plugin["denoise_bench.metrics"]["metrics"] == ["psnr", "ssim"]
    for kind, key in (("methods", registry.methods), ("datasets", registry.datasets), ("noise_models", registry.noise_families),
                      ("metrics", registry.metrics)):
        assert sorted(n for p in env["plugins"] for n in p[kind]) == sorted(key)
    assert env["skipped_plugins"] == []
    assert env["cpu_model"] and "cpu_bf16_flags" in env
    # bench sets the allocator up before any tensor work (denoise_bench.host_memory) and says so.
    assert env["host_memory"] == ("kept" if platform.libc_ver()[0] == "glibc" else "system")


@hookimpl
def _raising_register_methods(register):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


def test_a_skipped_plugin_is_recorded_with_its_error() -> None:
    plugins.register_plugin(SimpleNamespace(register_methods=_raising_register_methods), name="broken")
    env = describe_environment(torch.device("cpu"))
    assert env["skipped_plugins"] == [{"plugin": "broken", "distribution": None,
                                       "error": "register_methods raised RuntimeError: boom"}]
    assert "broken" not in {p["plugin"] for p in plugin_provenance()}
