"""The Python API: a benchmark run from a script or notebook, and its results as DataFrames.

:func:`run_benchmark` is ``bench run`` as a function (a :class:`~denoise_bench.run.request.RunRequest`,
planned and run); the :class:`Benchmark` it returns holds the records, a table per metric (PSNR, SSIM, any
a plugin adds) and the run folder, and turns the methods trained there into denoisers (:meth:`Benchmark.denoiser`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import inspect
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from denoise_bench.errors import BenchError
from denoise_bench.run.request import RunRequest
from denoise_bench.request_schema import leaves, request_values
from denoise_bench.registered_metrics import scored_metrics
from denoise_bench.results import build_tables, read_config, read_jobs, read_records
from denoise_bench.models.trained import TrainedDenoiser


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
        from denoise_bench.models.denoise_files import run_denoiser

        return run_denoiser(self.run_dir, method, noise, seed, device)


def run_benchmark(methods: Sequence[str] | str, noises: Sequence[str] | str = ("gaussian",),
                  datasets: Sequence[str] | str = ("skimage",), profile: str = "quick", *,
                  echo: Callable[[str], None] | None = None, **fields: Any) -> Benchmark:
    """Train and evaluate ``methods`` x ``noises`` x ``datasets`` x ``seeds`` as ``bench run`` does.

    Names are those of ``bench list``. Every other value of ``bench run`` is a keyword of the same
    name with underscores (its signature lists them; ``bench run --help`` says what each does):
    ``iterations=200``, ``test_images=4`` (fields of the profile's budget), ``seeds=[0, 1]``,
    ``method_options={"iddp": {"stop_gradient": False}}``, ``precision="fp32"``, ... Results go to
    ``out`` (default ``runs/<timestamp>``); running again into the same folder continues it. ``echo``
    gets the run's messages, a line after each job among them; ``tensorboard=True`` writes event files
    under ``RUN_DIR/tensorboard/`` (the ``tensorboard`` extra). Raises ``BenchError`` on a bad name or option.
    """
    from denoise_bench.run.runner import plan, run

    request = benchmark_request(methods=methods, noises=noises, datasets=datasets, profile=profile, **fields)
    result = run(plan(request), echo=echo or (lambda message: None))
    return Benchmark(result.run_dir, result.records, result.jobs)


def benchmark_request(**given: Any) -> RunRequest:
    """The request run_benchmark() makes of its arguments: every value of the request a keyword, each
    unset one at its default (progress bars off); a grouped field (budget, engine) records the keys given."""
    unknown = sorted(set(given) - set(_LEAVES))
    if unknown:
        raise BenchError(f"run_benchmark() has no keyword {unknown[0]!r}; keywords: {', '.join(_LEAVES)}")
    defaults = {name: leaf.default_for("api") for name, leaf in _LEAVES.items() if leaf.group is None}
    values = {k: v for k, v in defaults.items() if v is not MISSING} | given
    return RunRequest(**request_values(RunRequest, values, lambda leaf: leaf.name, whole_groups=False))


# The request's values that run_benchmark() takes, in bench run's order (bench evaluate's own are not among them).
_LEAVES = {leaf.name: leaf for leaf in leaves(RunRequest) if not leaf.option.not_a_flag}


def _signature() -> inspect.Signature:
    """run_benchmark()'s signature with every keyword of the request spelled out (its ``**fields``)."""
    own = inspect.signature(run_benchmark).parameters
    first = [own[name] for name in ("methods", "noises", "datasets", "profile")]
    keywords = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=leaf.hint,
                                  default=None if leaf.default_for("api") is MISSING else leaf.default_for("api"))
                for name, leaf in _LEAVES.items() if name not in own]
    return inspect.Signature([*first, *keywords, own["echo"]], return_annotation=Benchmark)


run_benchmark.__signature__ = _signature()  # type: ignore[attr-defined]
