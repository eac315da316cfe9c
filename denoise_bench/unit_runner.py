"""Running one unit of the grid: train once, test on each of its datasets, every outcome recorded.

Failures are isolated: a job that raises is recorded as failed, with its error and traceback, and
the grid goes on; a (method, noise) cell the method cannot handle is recorded as skipped, with the
reason.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from denoise_bench.fitting import trained_method
from denoise_bench.errors import BenchError
from denoise_bench.experiment import Experiment
from denoise_bench.grid import Unit, experiment_of, setting_of, unit_experiment, unit_jobs
from denoise_bench.method import Method
from denoise_bench.planning import RunPlan, run_config
from denoise_bench.run_data import RunData
from denoise_bench.run_folder import ResultSink
from denoise_bench.schema import JobKey, job_key
from denoise_bench.scoring import score_tests


class UnitRunner:
    """Runs units in one process, loading each dataset split and building each test case once."""

    def __init__(self, p: RunPlan, echo: Callable[[str], None]) -> None:
        self.plan = p
        self.echo = echo
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
        reason = method_cls.incompatibility(setting.family)
        if reason:
            self.echo(f"skip {method_cls.name} on {setting.label}: {reason}")
            sink.jobs.extend(job | {"status": "skipped", "error": reason} for _, job in todo)
            sink.save()
            return
        began = time.perf_counter()
        try:
            method, train_seconds = trained_method(self.plan, method_cls, [d for d, _ in todo], setting, unit.seed,
                                                   self.data, self.echo, sink.add_curve_point)
        except Exception as exc:
            for _, job in todo:
                record_failure(sink, job, exc, began, self.echo)
            return
        for dataset, job in todo:
            try:
                records = score_tests(self.plan, method, dataset, setting, self.data)
            except Exception as exc:
                record_failure(sink, job, exc, began, self.echo)
                began = time.perf_counter()
                continue
            experiment = experiment_of(self.plan, method_cls, dataset, setting, self._config)
            common = (job | self._run_fields(method_cls) | {"train_seconds": train_seconds}
                      | {"method_options": experiment.method_options, "training_set": experiment.training_set})
            sink.records.extend(common | r for r in records)
            # The first dataset's job time includes the shared training; later ones only their tests.
            sink.jobs.append(job | {"status": "done", "seconds": time.perf_counter() - began})
            began = time.perf_counter()
            sink.save()

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


def record_failure(sink: ResultSink, job: dict[str, Any], exc: BaseException, began: float,
                   echo: Callable[[str], None]) -> None:
    """Isolate a failure: record it with its error; the grid goes on."""
    message = f"{type(exc).__name__}: {exc}"
    echo(f"FAILED {job['method']} on {job['dataset']} / {job['train_noise']} (seed {job['seed']}): {message}")
    sink.jobs.append(job | {"status": "failed", "error": message, "traceback": traceback.format_exc(limit=8),
                            "seconds": time.perf_counter() - began})
    sink.save()
