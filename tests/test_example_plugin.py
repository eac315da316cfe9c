"""The example third-party plugin (examples/denoise-bench-tv) installs with pip and works end to end.

It is installed into a scratch folder put on PYTHONPATH of child processes, so the package is found
through its entry point exactly as an installed plugin is, without touching this environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "denoise-bench-tv"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    # No build isolation and no dependencies: nothing is fetched; denoise-bench is already installed.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(EXAMPLE)], check=True, capture_output=True, text=True)
    # Another plugin installed in the environment (a broken one, so that it would warn): the tests see only
    # the example, whatever else is installed, through the allow-list of entry points.
    elsewhere = tmp_path_factory.mktemp("environment")
    (elsewhere / "stray_plugin.py").write_text("raise ImportError('another installed plugin')\n")
    (elsewhere / "stray_plugin-0.1.dist-info").mkdir()
    (elsewhere / "stray_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: stray_plugin\nVersion: 0.1\n")
    (elsewhere / "stray_plugin-0.1.dist-info" / "entry_points.txt").write_text("[denoise_bench]\nstray = stray_plugin\n")
    env = {k: v for k, v in os.environ.items() if k != "DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD"}
    env["DENOISE_BENCH_PLUGINS"] = "tv"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), str(elsewhere), env.get("PYTHONPATH")]))
    return env


def _bench(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "denoise_bench.cli", *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_installed_plugin_is_listed(plugin_env: dict[str, str]) -> None:
    listed = _bench(plugin_env, "list")
    assert listed.returncode == 0, listed.stderr
    assert "tv " in listed.stdout and "Chambolle" in listed.stdout
    assert "warning" not in listed.stderr


def test_installed_plugin_runs_in_bench_run(plugin_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _bench(plugin_env, "run", "--methods", "tv", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                    "--device", "cpu", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    records = pd.read_csv(out / "records.csv")
    assert set(records.method) == {"tv"}
    assert (records.psnr > records.input_psnr + 3).all()  # TV at weight 0.1 gains ~7 dB on these photos
    header = next(line for line in (out / "tables" / "psnr.md").read_text().splitlines() if line.startswith("| test noise"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["test noise", "noisy input", "box3 of input (floor)", "tv"]


def test_example_plugin_passes_its_own_conformance_tests(plugin_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            env=plugin_env, capture_output=True, text=True, cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "6 passed" in result.stdout
