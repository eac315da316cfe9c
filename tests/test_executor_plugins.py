"""Executors are plugins: a third party registers one through ``register_executors`` and `bench run` uses it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from denoise_bench import hookimpl, plugins
from denoise_bench.errors import BenchError
from denoise_bench.executor_kind import ExecutorKind
from denoise_bench.run.runner import run_unit
from helpers import bench


class _InOrder:
    """Runs each unit in this process through ``run_unit``, as a job on another machine would, and notes it."""

    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self.ran: list[str] = []

    def run_units(self, run_dir, units, echo):
        for unit in units:
            run_unit(str(run_dir), unit)
            self.ran.append(unit.slug)
            echo(f"in-order ran {unit.slug} with {self.options}")
            yield unit, None


class _ExecutorPlugin:
    def __init__(self) -> None:
        self.made: list[_InOrder] = []

    def _make(self, options: dict[str, str]) -> _InOrder:
        self.made.append(_InOrder(options))
        return self.made[-1]

    @hookimpl
    def register_executors(self, register) -> None:
        register(ExecutorKind("in-order", "each unit in this process, through its part", self._make))


def test_a_third_party_executor_runs_a_smoke_grid_through_its_parts(tmp_path: Path) -> None:
    plugin = _ExecutorPlugin()
    plugins.register_plugin(plugin, name="in-order-executor")
    out = tmp_path / "run"
    result = bench("run", "--methods", "unet,bm3d", "--noise", "gaussian:sigma=25", "--dataset", "skimage", "--profile",
                   "smoke", "--iterations", "3", "--test-images", "1", "--no-progress", "--out", str(out),
                   "--executor", "in-order", "--executor-option", "queue=fast")
    assert result.exit_code == 0, result.output
    [executor] = plugin.made
    assert executor.options == {"queue": "fast"} and len(executor.ran) == 2
    assert "in-order ran" in result.output
    # Each unit wrote its part; the grid folded them into the run folder and removed them.
    jobs = pd.read_csv(out / "jobs.csv")
    assert sorted(jobs.method) == ["bm3d", "unet"] and set(jobs.status) == {"done"}
    assert len(pd.read_csv(out / "records.csv")) == 2 and not (out / "parts").exists()


def test_an_unknown_executor_is_named_with_the_closest_registered_one() -> None:
    plugins.register_plugin(_ExecutorPlugin(), name="in-order-executor")
    result = bench("run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--executor", "in-ordr")
    assert result.exit_code != 0
    assert "unknown executor 'in-ordr' (did you mean 'in-order'?); valid executors: in-order, inline, local, pool, slurm" \
        in result.output


def test_an_executor_name_taken_twice_skips_the_second_plugin() -> None:
    class Taken:
        @hookimpl
        def register_executors(self, register) -> None:
            register(ExecutorKind("slurm", "another slurm", lambda options: None))

    plugins.register_plugin(Taken(), name="second-slurm")
    registry = plugins.get_registry()
    assert [f.plugin for f in registry.failures] == ["second-slurm"]
    assert "executor 'slurm' is already registered by plugin" in registry.failures[0].error
    assert registry.executor("slurm").description != "another slurm"


def test_register_executors_refuses_what_is_no_executor_kind() -> None:
    class Wrong:
        @hookimpl
        def register_executors(self, register) -> None:
            register("slurm2")

    plugins.register_plugin(Wrong(), name="wrong-executor")
    [failure] = plugins.get_registry().failures
    assert "register_executors expects an ExecutorKind" in failure.error
    with pytest.raises(BenchError, match="unknown executor 'slurm2'"):
        plugins.get_registry().executor("slurm2")
