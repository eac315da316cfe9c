"""Planning a run: every name of a request resolved through the registry and checked, nothing run yet.

:func:`plan` turns a :class:`~denoise_bench.run.request.RunRequest` into a :class:`RunPlan`: method
classes, noise settings, dataset instances, budgets, engine, protocol and device. It fails in a
second on a typo, a bad option or a missing dataset, not after an hour of training.
:func:`run_config` is what ``config.json`` records of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from denoise_bench.data import TEST, TRAIN, Dataset, check_dataset_options, repeated
from denoise_bench.download import progress_bars
from denoise_bench.engine import Engine, resolve_engine
from denoise_bench.environment import pick_device
from denoise_bench.errors import BenchError
from denoise_bench.run.rescoring import trained_source
from denoise_bench.memory_fit import check_budgets_fit
from denoise_bench.method import Method, resolve_options
from denoise_bench.migration import RESULTS_FORMAT
from denoise_bench.noise import NoiseSetting, retested
from denoise_bench.store.output_folders import claim_folder
from denoise_bench.plugins import Registry, get_registry
from denoise_bench.profiles import SMOKE_PROFILE, Budget, get_profile, method_budget
from denoise_bench.protocol import EvalProtocol, get_protocol
from denoise_bench.real_noise import require_real_source
from denoise_bench.run.request import RunRequest
from denoise_bench.results import CONFIG
from denoise_bench.run.lock import LOCK
from denoise_bench.supervision import NoisePolicy, Supervision
from denoise_bench.tensorboard_events import require_tensorboard
from denoise_bench.threads import ThreadChoice, choose_threads, use_threads


RUNS_DIR = Path("runs")  # where a run goes without --out: RUNS_DIR/<timestamp>


def latest_run(runs_dir: Path = RUNS_DIR) -> Path:
    """The run folder under ``runs_dir`` whose config.json was written last (the latest run started or resumed)."""
    configs = sorted(runs_dir.glob("*/config.json"), key=lambda p: (p.stat().st_mtime, p.parent.name))
    if not configs:
        raise BenchError(f"no run folders (with a config.json) under {runs_dir}; name one: bench table RUN_DIR")
    return configs[-1].parent


@dataclass
class RunPlan:
    """A checked request: every name resolved, nothing run yet."""

    request: RunRequest
    methods: list[type[Method]]
    settings: list[NoiseSetting]
    datasets: list[Dataset]
    train_dataset: Dataset | None
    budget: Budget
    engine: Engine
    protocol: EvalProtocol
    policy: NoisePolicy
    device: torch.device
    run_dir: Path
    budgets: dict[str, Budget]  # per method: the run's budget, or its published one under ``official``
    threads: ThreadChoice = ThreadChoice(1, "default")  # torch threads this process computes with
    # per method: the options it runs with (the request's, over its smoke_options under the smoke profile)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def budget_of(self, method_cls: type[Method]) -> Budget:
        return self.budgets[method_cls.name]

    def options_of(self, method_cls: type[Method]) -> dict[str, Any]:
        """The options ``method_cls`` runs with: the request's, over its ``smoke_options`` under the smoke profile."""
        if method_cls.name in self.method_options:
            return self.method_options[method_cls.name]
        return self.request.method_options.get(method_cls.name, {})

    def trains(self, method_cls: type[Method]) -> bool:
        """Whether this run trains ``method_cls``: a trainable method, unless the run evaluates models
        trained by another (``--weights-from``), which it loads instead."""
        return method_cls.trainable and self.request.weights_from is None

    def training_source(self, dataset: Dataset) -> Dataset:
        """The dataset whose train split ``dataset``'s models train on: ``--train-dataset``, else its own."""
        return self.train_dataset or dataset


def plan(request: RunRequest, registry: Registry | None = None) -> RunPlan:
    """Resolve every name up front so a typo fails in a second, not after an hour of training."""
    registry = registry or get_registry()
    if request.tensorboard:
        require_tensorboard()  # before anything is downloaded or trained
    if request.stop_on_divergence and not request.eval_every:
        raise BenchError("--stop-on-divergence watches the learning curves: give --eval-every N too")
    methods = _methods(request, registry)
    _check_grid(request, registry)
    settings = [registry.noise_setting(text) for text in request.noises]
    if request.test_noises:
        settings = retested(settings, request.test_noises, registry.noise_families)
    datasets = [registry.dataset(name)(request.data_dir, **request.dataset_options) for name in request.datasets]
    _check_each_job_once(request, methods, settings, datasets)
    train_dataset: Dataset | None = None
    if request.weights_from is not None:  # an evaluation: the models come from that run (bench evaluate)
        train_dataset = trained_source(request.weights_from, datasets, registry)
    elif request.train_dataset:
        train_dataset = registry.dataset(request.train_dataset)(request.data_dir, **request.dataset_options)
    profile = get_profile(request.profile)
    budget = profile.override(**request.overrides)
    # Resolved now, so that a plugin's bad official_budget fails before anything trains.
    budgets = {m.name: method_budget(request.profile, profile, m.official_budget, request.overrides) for m in methods}
    needs_training = request.weights_from is None and any(m.trainable for m in methods)
    with progress_bars(request.progress):
        _check_datasets(datasets, train_dataset, settings, needs_training)
    policy = _policy(request.noise_policy)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = request.out or RUNS_DIR / stamp
    # A folder the user filled is refused now, before anything (even the run's lock) is written into it.
    claim_folder(run_dir, CONFIG, "run folder", ignored=(LOCK,))
    device = pick_device(request.device)
    # Set now, for the whole process: the time probe (denoise_bench.run.time_estimate) must run at the thread
    # count the jobs will, and an executor's job plans again and so chooses for its own machine.
    threads = choose_threads(request.threads)
    use_threads(threads)
    engine = resolve_engine(**request.engine, device=device)
    if needs_training:  # a batch that cannot fit is refused now, not after hours of crop sampling and swapping
        check_budgets_fit(methods, budgets, max(d.channels for d in datasets), device)
    return RunPlan(request, methods, settings, datasets, train_dataset, budget, engine, get_protocol(request.protocol).with_repeats(request.repeats),
                   policy, device, run_dir, budgets, threads, {m.name: _options(request, m) for m in methods})


def _options(request: RunRequest, method_cls: type[Method]) -> dict[str, Any]:
    """The options a method runs with: the request's, over its ``smoke_options`` under the smoke profile."""
    given = request.method_options.get(method_cls.name, {})
    return {**method_cls.smoke_options, **given} if request.profile == SMOKE_PROFILE else dict(given)


def _methods(request: RunRequest, registry: Registry) -> list[type[Method]]:
    if not request.methods:
        raise BenchError("no methods given")
    methods = [registry.method(name) for name in request.methods]
    for method in methods:  # a bad option fails now, not after training others: those it will run with
        method.check_options(resolve_options(method.name, method.options, _options(request, method)))
    for name, given in request.method_options.items():  # options of a method outside the grid: still refused if bad
        resolve_options(name, registry.method(name).options, given)
    return methods


def _check_grid(request: RunRequest, registry: Registry) -> None:
    """Refuse a grid with an empty axis (it would run nothing, and say so only by exiting 0) and dataset
    options that no dataset of the request reads (they would be ignored)."""
    for values, what in ((request.noises, "noise (--noise)"), (request.datasets, "dataset (--dataset)"),
                         (request.seeds, "seed (--seeds)")):
        if not values:
            raise BenchError(f"no {what} given: the grid would be empty")
    names = [*request.datasets, *([request.train_dataset] if request.train_dataset else [])]
    check_dataset_options([registry.dataset(name) for name in names], request.dataset_options)


def _check_each_job_once(request: RunRequest, methods: list[type[Method]], settings: list[NoiseSetting],
                         datasets: list[Dataset]) -> None:
    """Refuse a request that names a job twice: a seed, method or dataset given twice, or two noise settings
    that train on one noise. Their records would share keys (and be kept twice, then once on a resume)."""
    for flag, names in (("--methods", [m.name for m in methods]), ("--dataset", [d.name for d in datasets]),
                        ("--seeds", [str(seed) for seed in request.seeds])):
        twice = repeated(names)
        if twice is not None:
            raise BenchError(f"{flag} names {twice} twice; give each once")
    trains: dict[str, str] = {}
    for text, setting in zip(request.noises, settings):
        train = str(setting.train)
        if train in trains:
            raise BenchError(f"--noise {trains[train]} and {text} both train on {train}: one job each; give one of them")
        trains[train] = text
        tested = repeated(str(test) for test in setting.tests)
        if tested is not None:
            raise BenchError(f"--noise {text}: the models trained on {train} would be tested on {tested} twice")


def _check_datasets(datasets: list[Dataset], train_dataset: Dataset | None, settings: list[NoiseSetting],
                    needs_training: bool) -> None:
    """Each dataset can give what the run will ask of it (planning is when downloads happen)."""
    captured = next((s.train.family for s in settings if s.train.family.captured), None)
    if captured is not None:
        for dataset in [*datasets, *([train_dataset] if train_dataset and needs_training else [])]:
            require_real_source(dataset, captured.name)
    for dataset in datasets:
        dataset.checked(TEST)
        if needs_training and train_dataset is None:
            dataset.checked(TRAIN)
    if train_dataset is not None and needs_training:
        train_dataset.checked(TRAIN)


def _policy(name: str) -> NoisePolicy:
    try:
        return NoisePolicy(name)
    except ValueError:
        raise BenchError(f"unknown noise policy {name!r}; valid: fresh, fixed") from None


def run_config(p: RunPlan) -> dict[str, Any]:
    """What ``config.json`` records: the request and everything it was resolved to."""
    return {
        "format_version": RESULTS_FORMAT,
        "request": p.request.recorded(),
        "run_id": p.run_dir.name,
        "methods": [{"name": m.name, "citation": m.citation, "supervision": Supervision(m.supervision).value,
                     "uses_noise_level": m.uses_noise_level, "options": p.options_of(m)}
                    for m in p.methods],
        "noise": [{"label": s.label, "train": str(s.train), "tests": [str(t) for t in s.tests]} for s in p.settings],
        "datasets": [d.name for d in p.datasets],
        # Gray (1) or colour (3) as the run read each set: a folder is read as its files are, so its name does not say.
        "dataset_channels": {d.name: d.channels for d in [*p.datasets, *([p.train_dataset] if p.train_dataset else [])]},
        "train_dataset": p.train_dataset.name if p.train_dataset else None,
        "dataset_options": p.request.dataset_options,
        "seeds": p.request.seeds,
        "profile": p.request.profile,
        "budget": p.budget.as_dict(),
        "budgets": {m.name: p.budget_of(m).as_dict() for m in p.methods},  # differ under the official profile
        "engine": p.engine.as_dict(),
        "protocol": p.protocol.as_dict(),
        "noise_policy": p.policy.value,
        "device": str(p.device),
        "threads": p.threads.as_dict(),  # how fast, not what: no part of the experiment
    }
