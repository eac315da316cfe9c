"""The executor contract: what runs a grid's units elsewhere, and what a plugin registers to offer one.

An :class:`ExecutorKind` is registered through the ``register_executors`` hook; ``bench run --executor NAME``
looks its name up in the registry and calls ``create`` with the ``--executor-option`` values. The
:class:`Executor` it returns runs each unit with :func:`denoise_bench.run.runner.run_unit` (which writes the
unit's results under ``parts/<unit>/`` of the shared run folder) and yields each unit's outcome;
``denoise_bench.run.dispatch`` folds the parts in. The built-ins (inline, local, slurm) are
``denoise_bench.run.executors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

# The units of a grid (``denoise_bench.run.grid.Unit``): an executor only hands them to ``run_unit`` and
# back, so the contract need not know them (and the library does not import the run layer).
UnitT = TypeVar("UnitT")


class Executor(Protocol[UnitT]):
    def run_units(self, run_dir: Path, units: list[UnitT],
                  echo: Callable[[str], None]) -> Iterator[tuple[UnitT, BaseException | None]]:
        """Run every unit, yielding ``(unit, None)`` or ``(unit, error)`` as each job ends."""


@dataclass(frozen=True)
class ExecutorKind:
    """An executor by name, as a plugin registers it."""

    name: str  # what ``--executor`` takes
    description: str  # one line for messages and docs
    # The ``--executor-option`` KEY=VALUE pairs -> the executor, or None to run the units here, in this
    # process (``inline``). Raises BenchError for options it refuses, before any run folder is written.
    create: Callable[[dict[str, str]], Executor[Any] | None]
