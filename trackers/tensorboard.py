"""The built-in TensorBoard tracker: event files of a run (``bench run --tensorboard``) from the lifecycle hooks.

What each job's folder holds, and where it is, is told in ``denoise_bench.tensorboard_events``, the core
module that planning checks the switch with.

Why a built-in plugin that is always registered, rather than one registered when the flag is given:
the switch belongs to the run (``tensorboard`` in the request recorded in ``config.json``) and is read
from there. A job that an executor runs plans again in a process of its own from ``config.json``,
where a flag given to the grid's process would be unknown; and a process that runs several benchmarks
(a notebook) would have to unregister the plugin after each. Reading the run's own switch covers
both and changes no process-wide state; a run without it costs one read of ``config.json``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from denoise_bench.hookspecs import hookimpl
from denoise_bench.registered_metrics import metrics
from denoise_bench.results import CONFIG, read_config
from denoise_bench.tensorboard_events import job_folder

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class _EventLog:
    """Which runs write events, and the open writer of each job folder (closed when its job ends)."""

    def __init__(self) -> None:
        self._on: dict[Path, bool] = {}
        self._writers: dict[Path, SummaryWriter] = {}

    def switch(self, run_dir: Path, config: dict[str, Any]) -> None:
        self._on[run_dir] = bool(config.get("request", {}).get("tensorboard"))

    def on(self, run_dir: Path) -> bool:
        if run_dir not in self._on:  # a job's own process (an executor's): no run_started here
            self.switch(run_dir, read_config(run_dir) if (run_dir / CONFIG).is_file() else {})
        return self._on[run_dir]

    def writer(self, folder: Path) -> SummaryWriter:
        if folder not in self._writers:
            from torch.utils.tensorboard import SummaryWriter  # only runs that asked for events need the package

            self._writers[folder] = SummaryWriter(log_dir=str(folder))
        return self._writers[folder]

    def close(self, folder: Path) -> None:
        writer = self._writers.pop(folder, None)
        if writer is not None:
            writer.close()

    def forget(self, run_dir: Path) -> None:
        for folder in [f for f in self._writers if f.is_relative_to(run_dir)]:
            self.close(folder)
        self._on.pop(run_dir, None)


_LOG = _EventLog()


@hookimpl
def run_started(run_dir: Path, config: dict[str, Any]) -> None:
    _LOG.switch(run_dir, config)  # the config given, not the file: a resumed run may turn events on


@hookimpl
def training_step(run_dir: Path, training: dict[str, Any], step: int, loss: float, lr: float) -> None:
    if not _LOG.on(run_dir):
        return
    for dataset in training["datasets"]:
        writer = _LOG.writer(job_folder(run_dir, training | {"dataset": dataset}))
        writer.add_scalar("train/loss", loss, step)
        if math.isfinite(lr):  # a method with a loop of its own may not report its rate
            writer.add_scalar("train/lr", lr, step)


@hookimpl
def learning_curve_point(run_dir: Path, point: dict[str, Any]) -> None:
    if not _LOG.on(run_dir):
        return
    writer = _LOG.writer(job_folder(run_dir, point))
    for metric in (m.name for m in metrics()):
        writer.add_scalar(f"curve/{metric}/{point['test_noise']}", point[metric], point["step"])


@hookimpl
def job_finished(run_dir: Path, job: dict[str, Any], records: list[dict[str, Any]]) -> None:
    if not _LOG.on(run_dir):
        return
    folder = job_folder(run_dir, job)
    if records:
        by_noise: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_noise[record["test_noise"]].append(record)
        writer = _LOG.writer(folder)
        step = int(records[0].get("iterations") or 0)
        for test_noise, rows in by_noise.items():
            for metric in (m.name for m in metrics()):
                writer.add_scalar(f"final/{metric}/{test_noise}", fmean(r[metric] for r in rows), step)
    _LOG.close(folder)  # the job's last events: flushed now, not when the process ends


@hookimpl
def run_finished(run_dir: Path) -> None:
    _LOG.forget(run_dir)
