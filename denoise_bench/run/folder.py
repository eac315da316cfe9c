"""Writing a run folder: its config, the records, jobs and curves as they finish, parts, and resuming.

Records are written to the folder after every job, and those of the job being scored after every
image, so whatever finished is on disk even if a later job fails or the process is killed. Running
the same request into the same folder continues it: jobs that finished are kept and not run again,
failed ones run again, and a folder made by a different request is refused. The layout of the folder is described in ``denoise_bench.results``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from denoise_bench.environment import describe_environment
from denoise_bench.errors import BenchError
from denoise_bench.experiment import CONDITIONS, config_experiments
from denoise_bench.registered_metrics import curve_columns, record_columns
from denoise_bench.run.planning import RunPlan, run_config
from denoise_bench.results import (CHECKPOINTS, CONFIG, CURVES, DONE, ENVIRONMENT, JOBS, PARTS, PENDING, RECORDS,
                                   part_folders, read_config, read_curves, read_jobs, read_pending, read_records,
                                   read_rows, write_frame, write_json)
from denoise_bench.run.lock import run_lock
from denoise_bench.schema import CURVE_KEY, JOB_COLUMNS, JOB_KEY, RECORD_KEY, JobKey, job_key

@dataclass
class ResultSink:
    """The finished work of one process, saved to its folder after every job and curve point.

    The grid's own process writes the run folder's files; a job run by an executor writes a folder
    of its own under ``parts/``, so processes never write the same file.
    """

    folder: Path
    records: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    pending: list[dict] = field(default_factory=list)  # records of jobs not finished yet (``PENDING``)

    def save(self) -> None:
        write_frame(self.folder / RECORDS, self.records_frame())
        write_frame(self.folder / JOBS, self.jobs_frame())
        if self.curves:
            frame = pd.DataFrame(self.curves, columns=curve_columns())
            write_frame(self.folder / CURVES, frame.drop_duplicates(CURVE_KEY, keep="last"))
        self._save_pending()

    def add_curve_point(self, point: dict) -> None:
        self.curves.append(point)
        self.save()

    def add_pending(self, record: dict) -> None:
        """Keep one scored image of an unfinished job on disk at once."""
        self.pending.append(record)
        self._save_pending()

    def pending_of(self, key: JobKey) -> list[dict]:
        """The records an earlier, interrupted invocation scored for the job ``key``."""
        return [r for r in self.pending if job_key(r) == key]

    def finish_job(self, job: dict, records: list[dict]) -> None:
        """A job is done: its records (the pending ones among them) move to ``records.csv``, in one save."""
        key = job_key(job)
        self.records.extend(records)
        self.jobs.append(job)
        self.pending = [r for r in self.pending if job_key(r) != key]
        self.save()

    def _save_pending(self) -> None:
        path = self.folder / PENDING
        if self.pending:
            write_frame(path, pd.DataFrame(self.pending, columns=record_columns()))
        else:  # only a folder with unfinished scoring has the file
            path.unlink(missing_ok=True)

    def records_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records, columns=record_columns())

    def jobs_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.jobs, columns=JOB_COLUMNS)

    def job_keys(self) -> set[JobKey]:
        return {job_key(j) for j in self.jobs}


def open_run_folder(p: RunPlan, echo: Callable[[str], None]) -> ResultSink:
    """The run folder made ready to run into, with what earlier invocations finished in it.

    Writes ``config.json`` and ``environment.json`` (after checking that an existing folder was made
    by the same request) and the records and jobs carried over.
    """
    config = run_config(p)
    sink, parts = _resume_state(p.run_dir, config, echo)
    (p.run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    write_json(p.run_dir / CONFIG, config)
    write_json(p.run_dir / ENVIRONMENT, describe_environment(p.device))
    sink.save()
    remove_parts(p.run_dir, parts)  # only now: their rows are in the files just saved
    return sink


FINISHED = (DONE, "skipped")  # job statuses that are not run again (failed jobs are)


def finished_jobs(run_dir: Path) -> set[JobKey]:
    """The jobs the run folder (its parts included) records as done or skipped."""
    return {job_key(j) for j in _finished_rows(read_jobs(run_dir)).to_dict("records")}


def _finished_rows(jobs: pd.DataFrame) -> pd.DataFrame:
    """The last row of each job that finished; an empty frame may lack the columns."""
    return jobs if jobs.empty else jobs[jobs.status.isin(FINISHED)].drop_duplicates(JOB_KEY, keep="last")


def part_sink(run_dir: Path, slug: str) -> ResultSink:
    """The folder of one executor job under ``parts/``, holding what an earlier job of the same unit saved there.

    A unit's job runs again when it is requeued (Slurm pre-emption, a time-out) or resubmitted by a resume;
    its part keeps the finished jobs, their records and curve points and the images scored of unfinished
    jobs, so a job never empties a part that another one filled. The caller holds the part's lock.
    """
    folder = part_folder(run_dir, slug)

    def rows(name: str) -> pd.DataFrame:
        return read_rows(folder / name) if (folder / name).is_file() else pd.DataFrame()

    return _carried_over(folder, rows(JOBS), rows(RECORDS), rows(CURVES), rows(PENDING))


def part_folder(run_dir: Path, slug: str) -> Path:
    return run_dir / PARTS / slug


def part_jobs(run_dir: Path, slug: str) -> list[dict]:
    """The job rows an executor job recorded in its part (done, failed or skipped) before it ended."""
    return _rows(part_folder(run_dir, slug) / JOBS)


def fold_parts(run_dir: Path, sink: ResultSink, echo: Callable[[str], None] = print) -> None:
    """Move the results of ended executor jobs into the run folder's own files, then drop their parts.

    A part whose job is still running is waited for (:func:`settled_parts`), never removed under it.
    """
    parts = settled_parts(run_dir, echo)
    for part in parts:
        sink.records.extend(_rows(part / RECORDS))
        sink.jobs.extend(_rows(part / JOBS))
        sink.curves.extend(_rows(part / CURVES))
        sink.pending.extend(_rows(part / PENDING))  # images a failed or killed job had scored
    sink.save()  # written before the parts go, so a kill in between loses nothing (readers de-duplicate)
    remove_parts(run_dir, parts)


def settled_parts(run_dir: Path, echo: Callable[[str], None]) -> list[Path]:
    """The part folders of ``run_dir`` once no job writes them: a job still running is waited for.

    Jobs outlive the process that submitted them (under Slurm that is the normal case when the grid's
    process is killed); a resume then waits for them, saying whom it waits for, instead of reading a
    part that is still being written or running its unit a second time. A job holds its part's lock
    while it runs (``runner.run_unit``), so a lock that can be taken means that the job has ended.
    """
    parts = part_folders(run_dir)
    for part in parts:
        with run_lock(part, echo, wait=True, what="part folder"):
            pass
    return parts


def remove_parts(run_dir: Path, parts: list[Path]) -> None:
    """Remove part folders whose rows the run folder's own files now hold.

    A part whose lock is held again (a job of its unit started since it was read: one queued before a
    kill) is left to be folded in later; readers take rows found twice once.
    """
    for part in parts:
        try:
            with run_lock(part, lambda _: None, what="part folder"):
                shutil.rmtree(part, ignore_errors=True)
        except BenchError:
            continue
    try:
        (run_dir / PARTS).rmdir()  # only if empty
    except OSError:
        pass


def _rows(path: Path) -> list[dict]:
    """The rows of one CSV of a part (missing values as None), or none if it does not exist."""
    return _as_rows(read_rows(path)) if path.is_file() else []


def _as_rows(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as dicts, missing values as None (as the sink's rows hold them)."""
    return frame.where(frame.notna(), None).to_dict("records") if not frame.empty else []


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that must match to continue a run (not the device, threads or progress).

    Its experiments (``denoise_bench.experiment``: methods with their options, training noise,
    supervision, profile, budget, engine, protocol, noise policy) and the rest of the grid (datasets,
    seeds, test settings). An older folder's config is compared as ``results.read_config`` upgrades it.
    A JSON round trip first, so a config read back from disk and one built in memory compare alike.
    """
    config = json.loads(json.dumps(config, default=str))
    request = dict(config.get("request", {}))
    request.pop("checkpoint_every", None)
    request.pop("data_dir", None)
    # Learning curves observe training without changing it (bit for bit), so a resumed run may change them.
    request.pop("eval_every", None)
    request.pop("curve_images", None)
    # The guard changes a training only once its curve has diverged, and a job it stopped is done: a resumed
    # run may turn it on or off (folders made before it existed have none).
    request.pop("stop_on_divergence", None)
    request.pop("tensorboard", None)  # so do TensorBoard events
    # An unset budget field (None) overrides nothing, whether a request lists it or not (older runs' and the
    # Python API's requests list fewer).
    request["overrides"] = {k: v for k, v in (request.get("overrides") or {}).items() if v is not None}
    experiments = [e.key for e in config_experiments(config)]
    # Threads, like the device, change how fast a run goes, not what it computes.
    rest = {k: v for k, v in config.items() if k not in ("device", "threads", "run_id", *CONDITIONS, "budgets")}
    return rest | {"request": request, "experiments": experiments}


def _resume_state(run_dir: Path, config: dict[str, Any], echo: Callable[[str], None]) -> tuple[ResultSink, list[Path]]:
    """Finished jobs, their records and curves from earlier invocations into the same folder, and the
    part folders they include (to be removed once the sink is saved).

    Jobs of an earlier invocation still running under an executor are waited for first.
    """
    if not (run_dir / CONFIG).exists():
        return ResultSink(run_dir), []
    _check_same_run(run_dir, read_config(run_dir), config)
    parts = settled_parts(run_dir, echo)
    records = read_records(run_dir) if (run_dir / RECORDS).exists() or parts else pd.DataFrame()
    # The readers include the parts of executor jobs.
    sink = _carried_over(run_dir, read_jobs(run_dir), records, read_curves(run_dir), read_pending(run_dir))
    if sink.jobs:
        echo(f"resuming {run_dir}: {len(sink.jobs)} job(s) already finished")
    return sink, parts


def _check_same_run(run_dir: Path, previous: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse to continue ``run_dir`` (whose config.json is ``previous``) with a run whose config is ``config``.

    A different request is told how to continue the folder instead. The same request resolving to a
    different run (config.json edited by hand, or the methods installed since changed their options or
    defaults) cannot be continued at all, and the message says what differs rather than suggesting the
    very resume that failed.
    """
    try:
        before = _comparable(previous)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BenchError(f"{run_dir / CONFIG}: cannot read the run it records ({type(exc).__name__}: {exc}); "
                         "a damaged or hand-edited file") from None
    now = _comparable(config)
    if before == now:
        return
    if _comparable({"request": previous["request"]}) != _comparable({"request": config["request"]}):
        raise BenchError(f"run folder {run_dir} was made by a different request; continue it with "
                         f"`bench run --resume {run_dir}` or choose a new --out")
    differ = ", ".join(sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k)))
    raise BenchError(f"{run_dir / CONFIG} records a run other than the one its own request makes now ({differ} "
                     "differ): the file was edited, or the methods installed since changed; it cannot be "
                     "continued, start a new --out")


def _carried_over(folder: Path, jobs: pd.DataFrame, records: pd.DataFrame, curves: pd.DataFrame,
                  pending: pd.DataFrame) -> ResultSink:
    """A sink for ``folder`` holding what earlier processes left there: finished jobs and their records,
    curve points, and the images already scored (pending records) of unfinished jobs.

    Jobs that failed are dropped so they run again. Learning-curve points and pending records stay
    valid: a resumed job retrains bit for bit, and a method's estimate of one image does not depend on
    the others. Rows a kill left twice (between a save and the removal of a part) are kept once.
    """
    done = _finished_rows(jobs)
    keys = {job_key(j) for j in done.to_dict("records")}
    if not records.empty:
        records = records.drop_duplicates(RECORD_KEY, keep="last")
    if not pending.empty:
        pending = pending.drop_duplicates(RECORD_KEY, keep="last")
    return ResultSink(folder, records=[r for r in records.to_dict("records") if job_key(r) in keys],
                      jobs=done.to_dict("records"), curves=curves.to_dict("records"),
                      pending=[r for r in _as_rows(pending) if job_key(r) not in keys])
