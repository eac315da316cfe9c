"""Progress of a grid that a person can follow in a log: one line after each job, with the time left.

A line such as ``[3/8 jobs] nb2nb on bsd68 (gaussian:sigma=0-50, seed 0) done in 21m04s; elapsed
1h02m, about 41m left`` goes through the run's ``echo`` after every job, whatever ``--progress`` says:
bars are for a terminal, these lines are the progress of a run written to a log file.

The estimate is kept simple so that it can be trusted for what it is. Training is what costs, and
the jobs of a unit share one (``denoise_bench.run.grid``), so time is counted per unit: the wall time
between one report and the next goes to the unit reported. Before any unit has finished, each unit
left is its timed probe's estimate (``denoise_bench.run.time_estimate``), so the first line already has a
time left. Once units finish, the estimates of the units left are scaled by how far the probe was
off: by the ratio of measured to estimated seconds of their method's finished units, or of all
finished units while their method has none (the probe's relative costs of methods hold better than
its absolute ones, which later load changes). Without a probe (under an executor, whose jobs run
elsewhere) every unit counts as 1, and the same ratio becomes the mean time of a method's finished
units. A unit in progress is counted for what its estimate exceeds the time it has had. Only units of
this invocation with a job done count: jobs finished before a resume count as done but took no time
here, a failed training says nothing about a finished one, and a skipped cell costs nothing. Under an
executor the time between reports is the time between units ending, so the estimate follows the
throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from denoise_bench.run.grid import Unit, setting_of, unit_jobs
from denoise_bench.run.planning import RunPlan
from denoise_bench.schema import JobKey, job_key
from denoise_bench.run.time_estimate import UnitCost

NO_ESTIMATE = "estimate after the first unit"


@dataclass
class _UnitTime:
    method: str
    pending: set[JobKey]  # its jobs not reported yet
    free: bool  # skipped: its method cannot handle the noise, or it is over --skip-longer-than; it costs nothing
    estimate: float  # the probe's seconds, or 1 (a unit's share) without a probe
    seconds: float = 0.0
    any_done: bool = False


class GridProgress:
    """Counts the jobs of a grid as they are reported and prints a line for each."""

    def __init__(self, p: RunPlan, units: list[Unit], finished: set[JobKey], echo: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, costs: dict[Unit, UnitCost] | None = None,
                 skipped: Collection[Unit] = ()) -> None:
        """``finished``: the jobs earlier invocations finished, counted as done and not run again;
        ``costs``: the probe's estimate of each unit (None: no probe, no estimate before a unit finishes);
        ``skipped``: units recorded as skipped without running (over ``--skip-longer-than``), which cost nothing."""
        self.echo = echo
        self.clock = clock
        self.probed = costs is not None
        methods = {m.name: m for m in p.methods}
        self._times: list[_UnitTime] = []
        self._unit_of: dict[JobKey, _UnitTime] = {}  # pending job -> its unit
        self.total = self.done = 0
        for unit in units:
            keys = [job_key(job) for job in unit_jobs(p, unit)]
            self.total += len(keys)
            self.done += sum(key in finished for key in keys)
            pending = {key for key in keys if key not in finished}
            if not pending:
                continue
            free = unit in skipped or methods[unit.method].incompatibility(setting_of(p, unit).family) is not None
            estimate = 0.0 if free else costs[unit].seconds if costs and unit in costs else 1.0
            times = _UnitTime(unit.method, pending, free, estimate)
            self._times.append(times)
            self._unit_of.update(dict.fromkeys(pending, times))
        self._start = self._last = clock()

    def job_finished(self, job: dict[str, Any]) -> None:
        """Count ``job`` (a jobs.csv row) and print its line; a job not expected here (one an executor
        ran again although an earlier invocation had finished it) is not counted twice."""
        key = job_key(job)
        unit = self._unit_of.pop(key, None)
        if unit is None:
            return
        now = self.clock()
        unit.seconds += now - self._last
        self._last = now
        unit.pending.discard(key)
        unit.any_done |= job.get("status") == "done"
        self.done += 1
        self.echo(f"[{self.done}/{self.total} jobs] {job['method']} on {job['dataset']} "
                  f"({job['train_noise']}, seed {int(job['seed'])}) {_outcome(job)}; {self._times_text(now)}")

    def _times_text(self, now: float) -> str:
        elapsed = f"elapsed {duration(now - self._start)}"
        if self.done >= self.total:
            return elapsed
        left = self.seconds_left()
        return f"{elapsed}, {NO_ESTIMATE}" if left is None else f"{elapsed}, about {duration(left)} left"

    def seconds_left(self) -> float | None:
        """The estimate of the module docstring; None without a probe until a unit of this invocation has
        finished with a job done."""
        finished = [u for u in self._times if not u.pending and u.any_done and not u.free and u.estimate > 0]
        if not finished and not self.probed:
            return None
        overall = _ratio(finished)
        by_method: dict[str, list[_UnitTime]] = {}
        for u in finished:
            by_method.setdefault(u.method, []).append(u)
        left = 0.0
        for u in self._times:
            if u.pending and not u.free:
                ratio = _ratio(by_method[u.method]) if u.method in by_method else overall
                left += max(u.estimate * ratio - u.seconds, 0.0)
        return left


def _ratio(finished: list[_UnitTime]) -> float:
    """Measured over estimated seconds of finished units (1, the probe as it is, while none has finished)."""
    return sum(u.seconds for u in finished) / sum(u.estimate for u in finished) if finished else 1.0


def _outcome(job: dict[str, Any]) -> str:
    status, seconds = job.get("status"), job.get("seconds")
    if seconds is not None and seconds != seconds:  # NaN: a row read back from CSV without seconds
        seconds = None
    if status == "done":
        return f"done in {duration(seconds)}" if seconds is not None else "done"
    if status == "failed":
        return f"failed after {duration(seconds)}" if seconds is not None else "failed"
    return str(status)


def duration(seconds: float) -> str:
    """``42s``, ``21m04s``, ``1h02m``: as precise as a person reading a log wants."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
