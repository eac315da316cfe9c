"""The runner: a grid of methods x training noise x datasets x seeds, run into a run folder.

Each (method, noise setting, seed) trains once per training set, through a view limited to the
method's supervision, then is evaluated on every test setting of the noise setting, on every
requested dataset with that training set. This module only puts the parts together; see
``docs/architecture.md`` for which module does what:

* ``request`` / ``planning``: what was asked, resolved and checked (:func:`plan`);
* ``grid``: the units of training and the jobs they share;
* ``run_folder``: config, records as they finish, parts, resuming;
* ``dispatch``: units run here or through an executor; ``unit_runner``: one unit, failures isolated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from denoise_bench.atomic import out_of_space
from denoise_bench.run.dispatch import Executor, run_here, run_through
from denoise_bench.run.dry_run import estimate_text
from denoise_bench.errors import BenchError
from denoise_bench.run.grid import Unit, unit_jobs, units
from denoise_bench.run.progress import GridProgress
from denoise_bench.host_memory import keep_freed_memory
from denoise_bench.run.planning import RunPlan, plan, run_config
from denoise_bench.run.request import RunRequest
from denoise_bench.results import CONFIG, JobStatus, write_tables
from denoise_bench.run.inputs import RunData
from denoise_bench.run.folder import finished_jobs, open_run_folder, part_folder, part_sink
from denoise_bench.run.lock import run_lock
from denoise_bench.schema import job_key
from denoise_bench.run.time_estimate import UnitCost, probe_load, timed_estimate, unit_cases
from denoise_bench.run.time_limit import units_over_limit
from denoise_bench.run.tracking import Tracker, job_counts
from denoise_bench.run.unit_runner import UnitRunner

__all__ = ["RunPlan", "RunRequest", "RunResult", "plan", "run", "run_unit"]


@dataclass
class RunResult:
    run_dir: Path
    records: pd.DataFrame
    jobs: pd.DataFrame
    tables: dict[str, str]

    @property
    def failed(self) -> pd.DataFrame:
        return self.jobs[self.jobs.status == JobStatus.FAILED.value] if not self.jobs.empty else self.jobs


def run(p: RunPlan, echo: Callable[[str], None] = print, executor: Executor | None = None) -> RunResult:
    """Run every job of the plan; returns the records and the rendered tables.

    Without ``executor`` the jobs run here, one after another. With one (see
    ``denoise_bench.run.executors``), each unit is submitted as a job of its own that writes under
    ``parts/``; this process waits for them and folds their results into the run folder. The folder's
    lock (``denoise_bench.run.lock``) is held throughout; the submitted jobs run under it.

    A line goes through ``echo`` after every job (``denoise_bench.run.progress``), and the lifecycle
    hooks of the plugins are called (``denoise_bench.run.tracking``). A full disk stops the run with a
    :class:`BenchError` naming the file it was writing; what finished stays saved (``denoise_bench.atomic``).
    """
    try:
        return _run(p, echo, executor)
    except OSError as exc:
        if not out_of_space(exc):
            raise
        raise BenchError(f"{exc.strerror} writing {exc.filename or p.run_dir}; the run stopped, what finished is "
                         f"saved in {p.run_dir}: free some space, then continue it with `bench run --resume {p.run_dir}`"
                         ) from None


def _run(p: RunPlan, echo: Callable[[str], None], executor: Executor | None) -> RunResult:
    if executor is not None and p.request.skip_longer_than is not None:
        raise BenchError("--skip-longer-than skips by the time a unit takes on this machine, and under an executor "
                         "the units run on others; leave one of the two out")
    costs, skip = _announce_estimate(p, units(p), echo, executor)
    with run_lock(p.run_dir, echo):  # refuses a folder another process is running into, before touching it
        sink = open_run_folder(p, echo)  # refuses a folder made by another request; keeps what finished there
        finished = sink.job_keys()
        tracker = Tracker(p.run_dir, echo)
        tracker.run_started(run_config(p))
        grid = units(p)
        progress = GridProgress(p, grid, finished, echo, costs=costs, skipped=skip)
        if executor is None:
            run_here(p, grid, sink, finished, echo, tracker, progress.job_finished, skip)
        else:
            run_through(executor, p, grid, sink, finished, echo, tracker, progress.job_finished)
        sink.save()
        tables = write_tables(p.run_dir)
        tracker.run_finished(job_counts(sink.jobs))
        return RunResult(p.run_dir, sink.records_frame(), sink.jobs_frame(), tables)


def _announce_estimate(p: RunPlan, grid: list[Unit], echo: Callable[[str], None],
                       executor: Executor | None) -> tuple[dict[Unit, UnitCost] | None, dict[Unit, str]]:
    """The units left timed on this machine (``denoise_bench.run.time_estimate``), and the total said, before the
    run folder is touched: so that nobody starts a five-hour grid by accident, and a dataset that cannot be
    loaded is refused (a BenchError) before the first job. Under an executor the jobs run on other machines,
    so nothing is timed here; their images are still loaded once to check them. Also the units over
    ``--skip-longer-than``, each with why (``denoise_bench.run.time_limit``)."""
    finished = finished_jobs(p.run_dir) if (p.run_dir / CONFIG).is_file() else set()
    left = [u for u in grid if not all(job_key(job) in finished for job in unit_jobs(p, u))]
    if executor is not None:
        data = RunData(p)
        for unit in left:
            unit_cases(p, unit, data)
        return None, {}
    load = probe_load(p)  # before the probe: the other work's load, not the probe's own
    costs, seconds = timed_estimate(p, left)
    skip = units_over_limit(p, costs)
    echo(estimate_text(costs, sum(len(u.datasets) for u in left if u not in skip), seconds, skip, load))
    return costs, skip


def run_unit(run_dir: str, unit: Unit) -> None:
    """Entry point of a submitted job: run one unit of the grid recorded in ``run_dir``.

    Module-level and taking plain values so that submitit (or any executor) can pickle it by name.
    Runs in its own process, possibly on another machine that sees the same run folder. The grid's
    process holds the run folder's lock while it waits; this job holds the lock of its own part, so
    that another job of the same unit (requeued, or resubmitted by a resume while this one ran on)
    waits for it, and a resume knows that it is still running.
    """
    keep_freed_memory()  # a fresh worker process: the same allocator settings as `bench run` inline
    request = RunRequest.from_run_dir(Path(run_dir))
    request.progress = False
    p = plan(request)
    if _unit_finished(p, unit):  # e.g. a duplicate that was queued before a resume ran the unit: write nothing
        return
    with run_lock(part_folder(p.run_dir, unit.slug), print, wait=True, what="part folder"):
        # Read under the lock: what an earlier invocation finished was folded into the run folder, and what
        # an earlier job of this unit finished is in the part; a resumed unit runs only its other jobs.
        finished = finished_jobs(p.run_dir)
        UnitRunner(p, print).run_unit(unit, part_sink(p.run_dir, unit.slug), finished)


def _unit_finished(p: RunPlan, unit: Unit) -> bool:
    finished = finished_jobs(p.run_dir)
    return all(job_key(job) in finished for job in unit_jobs(p, unit))
