"""``--executor pool``: a grid's jobs as processes on this machine, a fixed number at a time.

Training one small network rarely fills a machine: on a CPU one thread per job is the fastest per core
(threads of one job wait for each other at every operator, denoise_bench.threads), and on a GPU a
batch-1 step is bound by launching operators, not by arithmetic, so a second job on the same GPU costs
the first little. ``--executor pool --executor-option jobs=N`` keeps N units running, each in a fresh
process of its own (spawned, so nothing of this process's torch state leaks in), each writing its part
of the run folder as every executor's job does (:func:`denoise_bench.run.runner.run_unit`). On a CPU each
job computes with ``cores // N`` threads (at least one) unless the run says ``--threads``; on a GPU the N
jobs share the device the run chose.

Each job's output goes to ``pool/<unit>.log`` in the run folder, so that N jobs' lines do not interleave on
the terminal; this process says when each starts and ends. A job whose process dies (killed, out of
memory) fails its unit's unrecorded jobs and the others go on; ``bench run --resume`` runs them again.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from pathlib import Path

from denoise_bench.errors import BenchError
from denoise_bench.run.grid import Unit
from denoise_bench.threads import ENV as THREADS_ENV, usable_cores

LOGS = "pool"  # per-job logs, inside the run folder
GRACE_SECONDS = 30  # how long running jobs get to save their state after Ctrl-C before they are terminated


class PoolExecutor:
    """Runs the units as at most ``jobs`` spawned processes at a time on this machine."""

    def __init__(self, options: dict[str, str]) -> None:
        unknown = sorted(set(options) - {"jobs"})
        if unknown:
            raise BenchError(f"--executor pool takes --executor-option jobs=N only; unknown: {', '.join(unknown)}")
        text = options.get("jobs", "2").strip()
        if not text.isdigit() or int(text) < 1:
            raise BenchError(f"--executor-option jobs={text!r}: the number of jobs at a time must be a whole number of at least 1")
        self.jobs = int(text)

    def threads_per_job(self) -> int:
        """Each job's share of this process's cores (a ``--threads`` of the run wins over it in the job)."""
        return max(1, usable_cores() // self.jobs)

    def run_units(self, run_dir: Path, units: list[Unit],
                  echo: Callable[[str], None]) -> Iterator[tuple[Unit, BaseException | None]]:
        if not units:
            return
        (run_dir / LOGS).mkdir(exist_ok=True)
        context = multiprocessing.get_context("spawn")
        threads = self.threads_per_job()
        waiting = list(units)
        running: dict[int, tuple[Unit, multiprocessing.process.BaseProcess, Path]] = {}
        echo(f"running {len(units)} job(s), {self.jobs} at a time on this machine ({threads} thread(s) each "
             f"unless --threads; logs in {run_dir / LOGS})")
        try:
            while waiting or running:
                while waiting and len(running) < self.jobs:
                    unit = waiting.pop(0)
                    log = run_dir / LOGS / f"{unit.slug}.log"
                    process: multiprocessing.process.BaseProcess = context.Process(
                        target=_run_logged, args=(str(run_dir), unit, str(log), threads), name=f"bench-{unit.slug}")
                    process.start()
                    running[process.sentinel] = (unit, process, log)
                    echo(f"started {unit.slug} (process {process.pid})")
                for sentinel in wait(list(running)):
                    assert isinstance(sentinel, int)  # wait() gives back the process sentinels (ints) it was given
                    unit, process, log = running.pop(sentinel)
                    process.join()
                    if process.exitcode == 0:
                        echo(f"done {unit.slug}")
                        yield unit, None
                    else:
                        yield unit, RuntimeError(f"its process ended with {_exit_text(process.exitcode)}; "
                                                 f"its output is in {log}")
        finally:  # Ctrl-C or an error here: the jobs still running get time to save their state, then are ended
            for unit, process, _ in running.values():
                process.join(GRACE_SECONDS)
                if process.is_alive():
                    process.terminate()
                    process.join()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"exit code {code}"


def _run_logged(run_dir: str, unit: Unit, log: str, threads: int) -> None:
    """A pool job's process: its output to ``log``, its thread count set, then the unit run."""
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)  # the file descriptors, so that what torch or a C library prints goes there too
    os.dup2(descriptor, 2)
    os.close(descriptor)
    os.environ.setdefault(THREADS_ENV, str(threads))
    from denoise_bench.run.runner import run_unit  # here: a spawned process imports the run layer itself

    run_unit(run_dir, unit)
