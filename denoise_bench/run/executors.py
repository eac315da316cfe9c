"""Running a grid's jobs elsewhere: Slurm (or a local process pool) through submitit.

``bench run --executor slurm`` submits each unit of the grid (one training of a method for a
noise setting and seed, and its tests; see :class:`denoise_bench.run.grid.Unit`) as a job of its own.
Every job runs :func:`denoise_bench.run.runner.run_unit` on the shared run folder and writes its results
under ``parts/<unit>/``; this process waits, then folds the parts into the run folder. If it is
killed meanwhile, the jobs go on, ``bench table``/``bench leaderboard`` already read their parts, and
``bench run --resume RUN_DIR`` collects them and submits only what is missing.

submitit does the scheduling (sbatch, job arrays, requeue on pre-emption, logs per job); nothing
here schedules. ``local`` runs the same jobs as processes on this machine (submitit's local
executor, all at once), which is what the tests use. ``pool`` runs them as processes on this machine a
fixed number at a time (``denoise_bench.run.pool``). ``inline`` runs them here, one after another.

A built-in plugin: the four are registered through ``register_executors`` exactly as a third-party
executor is (the contract is ``denoise_bench.executor_kind``), and ``--executor NAME`` finds them in the
registry (``denoise_bench.run.dispatch.make_executor``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from denoise_bench.errors import BenchError
from denoise_bench.executor_kind import ExecutorKind
from denoise_bench.run.grid import Unit
from denoise_bench.hookspecs import hookimpl
from denoise_bench.options import parse_option
from denoise_bench.run.pool import PoolExecutor
from denoise_bench.run.runner import run_unit

LOGS = "submitit"  # per-job logs and pickles, inside the run folder


class SubmititExecutor:
    """Submits units through ``submitit.AutoExecutor`` (``cluster`` = "slurm" or "local")."""

    def __init__(self, cluster: str, options: dict[str, str]) -> None:
        try:
            import submitit  # noqa: F401  (imported here: inline runs never need it)
        except ImportError:
            raise BenchError("--executor needs the submitit package: pip install submitit") from None
        self.cluster = cluster
        # Options arrive as text; submitit wants ints for counts and minutes.
        self.options = {key: parse_option(value) for key, value in options.items()}
        self._executor(Path("unused"))  # check the options now, before any run folder is written

    def _executor(self, folder: Path) -> Any:
        import submitit

        try:
            executor = submitit.AutoExecutor(folder=folder / LOGS / "%j", cluster=self.cluster)  # creates nothing yet
        except RuntimeError as exc:  # e.g. no srun/sbatch on this machine
            raise BenchError(f"--executor {self.cluster}: {str(exc).splitlines()[0]}") from None
        try:
            executor.update_parameters(**self.options)
        except (TypeError, ValueError, NameError) as exc:  # submitit names an unknown parameter with NameError
            raise BenchError(f"--executor-option: {str(exc).splitlines()[0]}") from None
        return executor

    def run_units(self, run_dir: Path, units: list[Unit],
                  echo: Callable[[str], None]) -> Iterator[tuple[Unit, BaseException | None]]:

        if not units:
            return
        executor = self._executor(run_dir)
        with executor.batch():  # one job array on Slurm
            jobs = [executor.submit(run_unit, str(run_dir), unit) for unit in units]
        echo(f"submitted {len(jobs)} job(s) to {self.cluster} (logs in {run_dir / LOGS}); waiting")
        for unit, job in zip(units, jobs):
            try:
                job.result()
            except Exception as exc:  # the job process failed; its own errors are already recorded
                yield unit, exc
            else:
                echo(f"done {unit.slug} (job {job.job_id})")
                yield unit, None


def _inline(options: dict[str, str]) -> None:
    if options:
        raise BenchError("--executor-option needs --executor local, slurm or pool")
    return None  # the units run here, in this process (denoise_bench.run.dispatch.run_here)


@hookimpl
def register_executors(register: Callable[[ExecutorKind], None]) -> None:
    register(ExecutorKind("inline", "run the jobs here, one after another", _inline))
    register(ExecutorKind("local", "submitit's local processes, one per job",
                          lambda options: SubmititExecutor("local", options)))
    register(ExecutorKind("slurm", "submit each job to Slurm through submitit",
                          lambda options: SubmititExecutor("slurm", options)))
    register(ExecutorKind("pool", "N processes at a time on this machine (--executor-option jobs=N, default 2), "
                                  "sharing its cores or its GPU", PoolExecutor))
