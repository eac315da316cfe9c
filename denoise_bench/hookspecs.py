"""Hook specifications: the whole plugin contract of denoise-bench.

A plugin is any module or object with functions named like the hooks below, decorated with
``denoise_bench.hookimpl``. Built-in plugins (``denoise_bench.methods.*``, ``denoise_bench.datasets.*``,
``denoise_bench.noises.*``, ``denoise_bench.trackers.*`` and ``denoise_bench.run.executors``) are registered
exactly like a third-party package, which is found through the ``denoise_bench`` entry-point group.

Every ``register_*`` hook receives a ``register`` callback, so one plugin can register zero, one or
many objects. All implementations are called (none "wins"); registering a name twice is an error. A
plugin that implements a hook not declared here (pluggy would accept it and never call it) is skipped
and reported.

The lifecycle hooks (``run_started`` ... ``run_finished``) let a plugin follow a run: log it to a
tracking service, write TensorBoard events (``denoise_bench.trackers.tensorboard``), notify someone.
An implementation declares only the arguments it needs (pluggy passes those by name), returns
nothing, and is called on its own: one that raises is reported once as a warning naming its plugin
and not called again in that process; the run, its results on disk and the other plugins go on
(``denoise_bench.run.tracking``). They fire in the process that trains: the one ``bench run`` runs in,
and, under an executor (``--executor slurm``/``local``), ``training_step``,
``learning_curve_point`` and ``job_finished`` in each job's own process, with the plugins installed
there, while ``run_started`` and ``run_finished`` stay in the grid's process. A job whose process
dies before it reports is recorded as failed by the grid's process and counted in ``run_finished``;
no ``job_finished`` is called for it.

A *training* (argument of several lifecycle hooks) is a dict naming one training and the jobs it
serves: ``method``, ``train_noise`` (a spec, e.g. ``gaussian:sigma=0-50``), ``seed``, and
``datasets``, the list of datasets it is tested on (datasets with one training set share a training).
A *job* is a row of ``jobs.csv`` as a dict (``denoise_bench.schema.JOB_COLUMNS``): ``method``,
``dataset``, ``train_noise``, ``seed``, ``status`` (done, failed or skipped), ``seconds``, ``error``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from denoise_bench.data import Dataset
    from denoise_bench.executor_kind import ExecutorKind
    from denoise_bench.method import Method
    from denoise_bench.metric import Metric
    from denoise_bench.noise import NoiseFamily

PROJECT = "denoise_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[[type[Method]], None]) -> None:
    """Register denoising methods.

    Call ``register(MethodClass)`` once per method. ``MethodClass`` subclasses
    :class:`denoise_bench.method.Method` and sets its class attributes ``name``, ``description``,
    ``citation`` and ``supervision``. Returns nothing.
    """


@hookspec
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    """Register datasets.

    Call ``register(DatasetClass)`` once per dataset. ``DatasetClass`` subclasses
    :class:`denoise_bench.data.Dataset` (class attributes ``name``, ``description``) and is
    instantiated with the data directory. Returns nothing.
    """


@hookspec
def register_noise_models(register: Callable[[NoiseFamily], None]) -> None:
    """Register noise families.

    Call ``register(family)`` with a :class:`denoise_bench.noise.NoiseFamily` instance, which
    names the family, its parameters, its statistical properties and the sampling function.
    Returns nothing.
    """


@hookspec
def register_executors(register: Callable[[ExecutorKind], None]) -> None:
    """Register executors: where ``bench run --executor NAME`` runs the units of a grid.

    Call ``register(kind)`` with a :class:`denoise_bench.executor_kind.ExecutorKind`: its ``name``, a
    one-line ``description``, and ``create(options)``, which receives the ``--executor-option`` pairs and
    returns an object with ``run_units(run_dir, units, echo)`` (the ``Executor`` protocol) that runs each
    unit with :func:`denoise_bench.run.runner.run_unit` and yields ``(unit, None)`` or ``(unit, error)`` as each
    ends. Returns nothing.
    """


@hookspec
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Register image-quality metrics.

    Call ``register(metric)`` with a :class:`denoise_bench.metric.Metric`: its name (a column of
    records and curves, a table file), ``compute(estimate, clean, protocol)`` on the images as the run's
    evaluation protocol prepares them (clamped, quantised, luma as it says; 0-255 float64), whether
    higher is better, and the decimals tables show. PSNR and SSIM are registered first, by
    ``denoise_bench.metrics``. Returns nothing.
    """


# --- lifecycle: following a run (see the module docstring for where and how they are called) ---


@hookspec
def run_started(run_dir: Path, config: dict[str, Any]) -> None:
    """A run starts (or resumes) in ``run_dir``, before any job runs.

    ``config`` is the resolved run as ``config.json`` records it (its ``request``, methods with
    their options, noise settings, datasets, budgets, engine, protocol, device). Called once per
    invocation of ``bench run`` / ``run_benchmark``, in the grid's process. Returns nothing.
    """


@hookspec
def training_step(run_dir: Path, training: dict[str, Any], step: int, total_steps: int, loss: float,
                  lr: float) -> None:
    """A training reached ``step`` (1-based) of ``total_steps``, with the loss of that step and the
    learning rate it used.

    Called where the training loop reads the loss back anyway (every
    ``denoise_bench.training.CHECK_EVERY`` steps, the last step, and steps where a resumable state
    is saved or a learning-curve point scored), so it costs no device sync. Steps increase within
    one training; a resumed training continues from its saved step. Methods with a training loop of
    their own report whatever steps they pass to ``TrainContext.on_step`` (``lr`` is NaN where they
    give none). Returns nothing.
    """


@hookspec
def learning_curve_point(run_dir: Path, training: dict[str, Any], point: dict[str, Any]) -> None:
    """A learning-curve point was scored (``bench run --eval-every N``).

    ``point`` is a row of ``curves.csv`` as a dict: ``method``, ``dataset``, ``train_noise``,
    ``seed``, ``test_noise``, ``step``, ``train_seconds``, ``psnr``, ``ssim`` (means over ``records``
    test images). It is already saved when this is called. Returns nothing.
    """


@hookspec
def job_finished(run_dir: Path, job: dict[str, Any], records: list[dict[str, Any]], error: str | None,
                 training: dict[str, Any]) -> None:
    """A job (one method x dataset x training noise x seed) ended: done, failed or skipped.

    ``job`` is its row of ``jobs.csv``; ``records`` its rows of ``records.csv`` (one per test image,
    test noise and repeat; empty unless ``job["status"] == "done"``); ``error`` the message of a
    failure or the reason for a skip (None when done); ``training`` the training it was tested
    with. Both are saved in the run folder before this is called, so a plugin cannot lose them.
    A resumed run reports only the jobs it runs. Returns nothing.
    """


@hookspec
def run_finished(run_dir: Path, counts: dict[str, int]) -> None:
    """Every job of the run has ended and its tables are written.

    ``counts`` has the number of jobs ``done``, ``failed`` and ``skipped`` in the run folder,
    earlier invocations of a resumed run included. Not called when the run is interrupted or raises.
    Returns nothing.
    """
