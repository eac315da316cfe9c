"""Running one unit of the grid: train once, test on each of its datasets, every outcome recorded.

Failures are isolated: a job that raises is recorded as failed, with its error and traceback, and
the grid goes on; a (method, noise) cell the method cannot handle, or a unit the caller skips (one over
``--skip-longer-than``), is recorded as skipped, with the reason. A full disk is not a job's failure: every later job would fail alike, and recording it needs
space too, so it stops the grid (``runner.run`` says so) with what finished saved as it was. Each job, once saved, is reported to the lifecycle hooks (``denoise_bench.run.tracking``) and to
``on_job`` (the grid's progress lines), as are the training's steps and learning-curve points.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from denoise_bench.atomic import out_of_space
from denoise_bench.data import Dataset
from denoise_bench.run.fitting import trained_method
from denoise_bench.errors import PLUGIN_FAILURES, BenchError
from denoise_bench.experiment import Experiment
from denoise_bench.global_state import kept_state
from denoise_bench.run.grid import Unit, experiment_of, setting_of, training_of, unit_experiment, unit_jobs
from denoise_bench.method import Method
from denoise_bench.plugins import source_of
from denoise_bench.run.planning import RunPlan, run_config
from denoise_bench.run.inputs import RunData
from denoise_bench.results import DONE, JobStatus
from denoise_bench.run.folder import ResultSink
from denoise_bench.schema import JobKey, job_key
from denoise_bench.run.scoring import score_tests
from denoise_bench.run.tracking import Tracker


class UnitRunner:
    """Runs units in one process, loading each dataset split and building each test case once."""

    def __init__(self, p: RunPlan, echo: Callable[[str], None], tracker: Tracker | None = None,
                 on_job: Callable[[dict[str, Any]], None] = lambda job: None,
                 skip: Mapping[Unit, str] | None = None) -> None:
        """``skip``: units not to run, each with the reason its jobs are recorded as skipped with."""
        self.plan = p
        self.skip = skip or {}
        self.echo = echo
        self.tracker = tracker or Tracker(p.run_dir, echo)
        self.on_job = on_job
        self.data = RunData(p)
        self._methods = {m.name: m for m in p.methods}
        self._datasets = {d.name: d for d in p.datasets}
        self._config = run_config(p)

    def run_unit(self, unit: Unit, sink: ResultSink, finished: set[JobKey]) -> None:
        """Train once, test on each dataset of the unit that is not ``finished``; every outcome lands in ``sink``."""
        self._check_experiment(unit)
        method_cls, setting = self._methods[unit.method], setting_of(self.plan, unit)
        todo = [(self._datasets[job["dataset"]], job) for job in unit_jobs(self.plan, unit) if job_key(job) not in finished]
        if not todo:
            return  # done in an earlier, interrupted invocation
        training = training_of(unit, setting, [d.name for d, _ in todo])

        def finish(job: dict[str, Any], records: list[dict[str, Any]], error: str | None) -> None:
            """Report a job that ``sink`` has saved."""
            self.tracker.job_finished(job, records, error, training)
            self.on_job(job)

        reason = method_cls.incompatibility(setting.family) or self.skip.get(unit)
        if reason:
            self.echo(f"skip {method_cls.name} on {setting.label}: {reason}")
            skipped = [job | {"status": JobStatus.SKIPPED.value, "error": reason} for _, job in todo]
            sink.jobs.extend(skipped)
            sink.save()
            for job in skipped:
                finish(job, [], reason)
            return

        if not method_cls.seeded:
            todo = self._recorded_under_another_seed(todo, sink, finish)
            if not todo:
                return

        def add_curve_point(point: dict[str, Any]) -> None:
            sink.add_curve_point(point)
            self.tracker.learning_curve_point(training, point)

        def on_training_step(step: int, total: int, loss: float, lr: float) -> None:
            self.tracker.training_step(training, step, total, loss, lr)

        began = time.perf_counter()
        who = source_of("method", method_cls.name)  # what it changes in torch's defaults is put back and blamed on it
        try:
            with kept_state(who):
                method, train_seconds = trained_method(self.plan, method_cls, [d for d, _ in todo], setting, unit.seed,
                                                       self.data, self.echo, add_curve_point, on_training_step)
        except PLUGIN_FAILURES as exc:
            if out_of_space(exc):
                raise
            for _, job in todo:
                failed = record_failure(sink, job, exc, began, self.echo)
                finish(failed, [], failed["error"])
            return
        for dataset, job in todo:
            experiment = experiment_of(self.plan, method_cls, dataset, setting, self._config)
            common = (job | self._run_fields(method_cls) | {"train_seconds": train_seconds}
                      | {"method_options": experiment.method_options, "training_set": experiment.training_set})
            earlier = sink.pending_of(job_key(job))  # images an interrupted invocation scored
            if earlier:
                self.echo(f"{method_cls.name} on {dataset.name}: {len(earlier)} record(s) scored before, kept")
            try:
                common["dataset_digest"] = self.data.test_digest(dataset, setting.train)
                with kept_state(who):
                    records = score_tests(self.plan, method, dataset, setting, self.data, scored=earlier,
                                          on_record=lambda record: sink.add_pending(common | record))
            except PLUGIN_FAILURES as exc:
                if out_of_space(exc):
                    raise
                failed = record_failure(sink, job, exc, began, self.echo)
                finish(failed, [], failed["error"])
                began = time.perf_counter()
                continue
            rows = earlier + [common | r for r in records]
            # The first dataset's job time includes the shared training; later ones only their tests.
            done = job | {"status": DONE, "seconds": time.perf_counter() - began}
            sink.finish_job(done, rows)
            began = time.perf_counter()
            finish(done, rows, None)

    def _recorded_under_another_seed(self, todo: list[tuple[Dataset, dict[str, Any]]], sink: ResultSink,
                                     finish: Callable[[dict[str, Any], list[dict[str, Any]], str | None], None]
                                     ) -> list[tuple[Dataset, dict[str, Any]]]:
        """For a method whose results do not depend on the seed (``Method.seeded`` False): each job that ``sink``
        finished under another seed is recorded again under this one, its records copied, instead of run again
        (the test noise is the same for every seed). Returns the jobs left to run."""
        left = []
        for dataset, job in todo:
            records = done_under_another_seed(sink, job)
            if records is None:
                left.append((dataset, job))
                continue
            rows = [record | {"seed": job["seed"]} for record in records]
            done = job | {"status": DONE, "seconds": 0.0}
            sink.finish_job(done, rows)
            self.echo(f"{job['method']} on {dataset.name} / {job['train_noise']}, seed {job['seed']}: the result of "
                      f"seed {int(records[0]['seed'])}, recorded again ({job['method']} does not depend on the seed)")
            finish(done, rows, None)
        return left

    def _check_experiment(self, unit: Unit) -> None:
        """Refuse a unit submitted for another experiment than the one this plan makes of it: an executor's
        job plans again from config.json, with the plugins installed where it runs (their defaults included)."""
        if not unit.experiment:
            return
        submitted, found = Experiment.from_key(unit.experiment), unit_experiment(self.plan, unit)
        if found != submitted:
            raise BenchError(f"{unit.slug} was submitted for another experiment than {self.plan.run_dir} now plans "
                             f"({', '.join(found.differences(submitted))} differ); not run")

    def _run_fields(self, method_cls: type[Method]) -> dict[str, Any]:
        """The columns every record of the run shares, besides its job's (see ``denoise_bench.schema``)."""
        p = self.plan
        return {"run_id": p.run_dir.name, "protocol": p.protocol.id, "profile": p.request.profile,
                "iterations": p.budget_of(method_cls).iterations if method_cls.trainable else 0,
                "noise_policy": p.policy.value, "device": str(p.device)}


def done_under_another_seed(sink: ResultSink, job: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The records of a job that ``sink`` finished as done, the same as ``job`` but for its seed; None if none."""
    method, dataset, train_noise, seed = job_key(job)
    for other in sink.jobs:
        key = job_key(other)
        if other["status"] == DONE and key[:3] == (method, dataset, train_noise) and key[3] != seed:
            records = [r for r in sink.records if job_key(r) == key]
            if records:
                return records
    return None


def record_failure(sink: ResultSink, job: dict[str, Any], exc: BaseException, began: float,
                   echo: Callable[[str], None]) -> dict[str, Any]:
    """Isolate a failure: record it with its error (the grid goes on); returns the saved job row."""
    message = f"{type(exc).__name__}: {exc}"
    echo(f"FAILED {job['method']} on {job['dataset']} / {job['train_noise']} (seed {job['seed']}): {message}")
    failed = job | {"status": JobStatus.FAILED.value, "error": message, "traceback": traceback.format_exc(limit=8),
                    "seconds": time.perf_counter() - began}
    sink.jobs.append(failed)
    sink.save()
    return failed
