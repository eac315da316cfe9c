"""Where a grid's units run: here, one after another, or each as a job of its own through an executor.

An executor (registered through ``register_executors``, see ``denoise_bench.executor_kind``; the
built-ins are submitit's Slurm or local processes) runs each unit with
:func:`denoise_bench.run.runner.run_unit`, which writes its results under ``parts/<unit>/`` of the shared
run folder. This process waits for the jobs, records the jobs of a job that died before recording
them as failed, and folds the parts into the run folder's own files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from denoise_bench.errors import BenchError
from denoise_bench.executor_kind import Executor
from denoise_bench.run.grid import Unit, setting_of, training_of, unit_jobs
from denoise_bench.run.planning import RunPlan
from denoise_bench.plugins import get_registry
from denoise_bench.run.folder import ResultSink, fold_parts, part_jobs
from denoise_bench.schema import JobKey, job_key
from denoise_bench.run.tracking import Tracker
from denoise_bench.run.unit_runner import UnitRunner, record_failure

__all__ = ["Executor", "make_executor", "run_here", "run_through"]


def make_executor(name: str, options: dict[str, str]) -> Executor | None:
    """The registered executor called ``name`` built with ``options``; None for one that runs the units here
    (``inline``). An unknown name is a BenchError listing the registered ones (and the closest to a typo)."""
    kind = get_registry().executor(name)
    executor = kind.create(options)
    if executor is not None and not callable(getattr(executor, "run_units", None)):
        raise BenchError(f"executor {name!r} made {executor!r}, which has no run_units(run_dir, units, echo)")
    return executor


def run_here(p: RunPlan, units: list[Unit], sink: ResultSink, finished: set[JobKey], echo: Callable[[str], None],
             tracker: Tracker, on_job: Callable[[dict[str, Any]], None], skip: Mapping[Unit, str] | None = None) -> None:
    """Every unit in this process, into the run folder's own files; each job reported to ``tracker`` and ``on_job``.
    The units in ``skip`` are not run: their jobs are recorded as skipped, with the reason given."""
    runner = UnitRunner(p, echo, tracker, on_job, skip)
    for unit in units:
        runner.run_unit(unit, sink, finished)


def run_through(executor: Executor, p: RunPlan, units: list[Unit], sink: ResultSink, finished: set[JobKey],
                echo: Callable[[str], None], tracker: Tracker, on_job: Callable[[dict[str, Any]], None]) -> None:
    """The units with unfinished jobs submitted through ``executor``; their parts folded into ``sink``.

    Each job is given to ``on_job`` as its unit's job ends. The lifecycle hooks ran in the job's
    process, except for the jobs of a process that died: those are reported to ``tracker`` here.
    No job goes missing: one that no part records when its unit ends, and the jobs of a unit the
    executor gave no outcome for, are recorded as failed.
    """
    pending = [u for u in units if any(job_key(job) not in finished for job in unit_jobs(p, u))]
    ended: set[Unit] = set()
    for unit, error in executor.run_units(p.run_dir, pending, echo):
        ended.add(unit)
        recorded = part_jobs(p.run_dir, unit.slug)
        for job in recorded:
            on_job(job)
        # A job that died (killed, out of memory, a scheduler error) failed its unrecorded jobs; one that
        # ended normally should have recorded them all.
        settled = finished | {job_key(job) for job in recorded}
        lost = [job for job in unit_jobs(p, unit) if job_key(job) not in settled]
        if lost and error is None:
            error = RuntimeError(f"the job of {unit.slug} ended without recording these jobs in its part")
        _record_lost(p, unit, lost, error, sink, echo, tracker, on_job)
    for unit in pending:
        if unit not in ended:
            lost = [job for job in unit_jobs(p, unit) if job_key(job) not in finished]
            _record_lost(p, unit, lost, RuntimeError(f"the executor gave no outcome for {unit.slug}"),
                         sink, echo, tracker, on_job)
    fold_parts(p.run_dir, sink, echo)


def _record_lost(p: RunPlan, unit: Unit, lost: list[dict[str, Any]], error: BaseException | None, sink: ResultSink,
                 echo: Callable[[str], None], tracker: Tracker, on_job: Callable[[dict[str, Any]], None]) -> None:
    """Record the jobs of ``unit`` that its job did not record as failed with ``error``, here."""
    if not lost or error is None:
        return
    training = training_of(unit, setting_of(p, unit), [job["dataset"] for job in lost])
    for job in lost:
        failed = record_failure(sink, job, error, time.perf_counter(), echo)
        tracker.job_finished(failed, [], failed["error"], training)
        on_job(failed)
