"""The Python API: a benchmark run from a script or notebook, and its results as DataFrames.

:func:`run_benchmark` is ``bench run`` as a function (a :class:`~denoise_bench.request.RunRequest`,
planned and run); the :class:`Benchmark` it returns holds the records, a table per metric (PSNR, SSIM, any
a plugin adds) and the run folder, and turns the methods trained there into denoisers (:meth:`Benchmark.denoiser`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from denoise_bench.metric import scored_metrics
from denoise_bench.noise import split_noise_list
from denoise_bench.results import build_tables, read_config, read_jobs, read_records
from denoise_bench.trained import TrainedDenoiser


@dataclass
class Benchmark:
    """The results of one run folder."""

    run_dir: Path
    records: pd.DataFrame  # one row per (method, test image, test noise, repeat, seed): records.csv
    jobs: pd.DataFrame  # one row per job, with its status (done, skipped, failed): jobs.csv

    @staticmethod
    def read(run_dir: str | Path) -> "Benchmark":
        """The results of an existing run folder (with any executor parts)."""
        run_dir = Path(run_dir)
        read_config(run_dir)  # a folder that is no run fails here, naming it
        return Benchmark(run_dir, read_records(run_dir), read_jobs(run_dir))

    def table(self, metric: str = "psnr") -> pd.DataFrame:
        """Mean ``metric`` (psnr, ssim or another registered one) by (dataset, train noise, test noise) rows and method columns."""
        blocks = build_tables(self.records, self.jobs, metric)
        if not blocks:
            return pd.DataFrame()
        return pd.concat({key: frame for key, frame in blocks.items()}, names=["dataset", "train noise"])

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {metric.name: self.table(metric.name) for metric in scored_metrics(self.records)}

    def denoiser(self, method: str, noise: str | None = None, seed: int | None = None,
                 device: str | None = "cpu") -> TrainedDenoiser:
        """The ``method`` trained in this run (a per-image one: as the run set it up) as a denoiser
        (``noise``: the training noise, ``seed``, where the run trained it more than once)."""
        from denoise_bench.denoise_files import run_denoiser

        return run_denoiser(self.run_dir, method, noise, seed, device)


def run_benchmark(methods: Sequence[str] | str, noises: Sequence[str] | str = ("gaussian",),
                  datasets: Sequence[str] | str = ("skimage",), profile: str = "quick", *,
                  seeds: Sequence[int] = (0,), out: str | Path | None = None, protocol: str = "nb2nb",
                  method_options: dict[str, dict[str, Any]] | None = None, data_dir: str | Path | None = None,
                  device: str | None = None, progress: bool = False, echo: Callable[[str], None] | None = None,
                  tensorboard: bool = False, **budget: int | float | str | None) -> Benchmark:
    """Train and evaluate ``methods`` x ``noises`` x ``datasets`` x ``seeds`` as ``bench run`` does.

    Names are those of ``bench list``; ``budget`` overrides fields of the profile's budget
    (``iterations=200``, ``test_images=4``, ...). Results go to ``out`` (default ``runs/<timestamp>``);
    running again into the same folder continues it. ``echo`` gets the run's messages, a line after
    each job among them; ``tensorboard`` writes event files under ``RUN_DIR/tensorboard/`` (the
    ``tensorboard`` extra). Raises ``BenchError`` on a bad name or option.
    """
    from denoise_bench.data import resolve_data_dir
    from denoise_bench.runner import RunRequest, plan, run

    request = RunRequest(
        methods=_names(methods), noises=_names(noises, split=split_noise_list),
        datasets=_names(datasets), seeds=[int(s) for s in seeds], profile=profile, overrides=dict(budget),
        protocol=protocol, data_dir=resolve_data_dir(Path(data_dir) if data_dir else None), device=device,
        out=Path(out) if out is not None else None,
        method_options={m: {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in opts.items()} for m, opts in (method_options or {}).items()},
        progress=progress, tensorboard=tensorboard)
    result = run(plan(request), echo=echo or (lambda message: None))
    return Benchmark(result.run_dir, result.records, result.jobs)


def _names(value: Sequence[str] | str, split: Callable[[str], list[str]] | None = None) -> list[str]:
    texts = [value] if isinstance(value, str) else list(value)
    if split is None:
        return [part.strip() for text in texts for part in text.split(",") if part.strip()]
    return [part for text in texts for part in split(text)]
