"""How many threads PyTorch computes with in a run: no more than the machine has free.

PyTorch's default is one thread per core whatever else runs. On a shared machine that oversubscribes
the cores, and its threads then wait for each other at every operator: a user measured one 30-step
smoke job at 12.6 s with 1 thread and 49.6 s with PyTorch's 2 threads on a 2-core machine under a
load of about 6; on a 2-core AMD EPYC at a load of about 6, a smoke U-Net job took 2.2 s with 1 thread
and 3.3 s with 2 (docs/engine.md).
So, unless told otherwise, a run takes the cores that the load average leaves free, at least one.

The first of these decides:

1. ``--threads N`` or ``DENOISE_BENCH_THREADS=N`` (the flag wins), refused above the cores this process
   may use;
2. ``OMP_NUM_THREADS``, which a user or a scheduler (Slurm sets it from ``--cpus-per-task``) set for
   this process, so its word is kept, up to those cores;
3. the cores this process may use (its CPU affinity) minus the 1-minute load average, rounded, at
   least 1.

The count and why it was chosen are recorded in the run's ``config.json`` (``threads``); they are not
part of what a result is (``denoise_bench.experiment``), only of how fast it came.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from denoise_bench.errors import BenchError

ENV = "DENOISE_BENCH_THREADS"


@dataclass(frozen=True)
class ThreadChoice:
    count: int
    why: str  # e.g. "2 cores, load 0.1" or "--threads"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def usable_cores() -> int:
    """The cores this process may run on (taskset, cgroup cpusets), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_threads(requested: int | None = None, env: Mapping[str, str] | None = None,
                   cores: Callable[[], int] = usable_cores,
                   load: Callable[[], float] = lambda: os.getloadavg()[0]) -> ThreadChoice:
    """The thread count of the module docstring's rule."""
    env = os.environ if env is None else env
    if requested is not None:
        return ThreadChoice(_at_most_cores(_positive(requested, "--threads"), "--threads", cores()), "--threads")
    for name in (ENV, "OMP_NUM_THREADS"):
        if env.get(name, "").strip():
            count = _positive(env[name], name)
            if name == ENV:
                return ThreadChoice(_at_most_cores(count, name, cores()), name)
            n = cores()  # a scheduler's word, kept; one beyond the cores is capped, as asking for it is refused
            return ThreadChoice(count, name) if count <= n else ThreadChoice(n, f"{name}={count}, capped at {n} cores")
    n, busy = cores(), load()
    return ThreadChoice(max(1, min(n, round(n - busy))), f"{n} cores, load {busy:.1f}")


def use_threads(choice: ThreadChoice) -> None:
    """Make PyTorch compute with ``choice.count`` threads in this process from now on."""
    torch.set_num_threads(choice.count)


def _at_most_cores(count: int, what: str, cores: int) -> int:
    """Refuse more threads than the process has cores: they would only wait for each other, and a count such as
    100000 makes PyTorch fail allocating them (a MemoryError deep in the first operator)."""
    if count > cores:
        raise BenchError(f"{what}={count}: this process may use {cores} core(s) (its CPU affinity); "
                         f"give at most {cores} threads")
    return count


def _positive(value: int | str, what: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise BenchError(f"{what}={value!r}: the number of threads must be a whole number of at least 1")
    return count
