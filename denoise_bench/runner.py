"""The runner: a grid of methods x training noise x datasets x seeds.

Each (method, dataset, noise setting, seed) job trains on the dataset's training split, through a
view limited to the method's supervision, then is evaluated on every test setting of the noise
setting. Datasets with the same training set (BSD68 and Set12: Train400) share one trained model.
Records are appended to the run folder after every job, so whatever finished is on disk even if a
later job fails or the process is killed. A job that raises is recorded as failed and the
grid goes on; an incompatible (method, noise) cell is recorded as skipped, with the reason.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from denoise_bench.checkpoints import load_checkpoint, save_checkpoint
from denoise_bench.data import TEST, TRAIN, CleanImage, Dataset
from denoise_bench.engine import Engine, resolve_engine
from denoise_bench.environment import describe_environment, pick_device
from denoise_bench.errors import BenchError
from denoise_bench.evaluate import TestCase, evaluate, make_test_cases
from denoise_bench.images import to_chw
from denoise_bench.method import Method, MethodSetup, TrainContext, resolve_options
from denoise_bench.noise import NoiseSetting, NoiseSpec, resolve_setting
from denoise_bench.plugins import Registry, get_registry
from denoise_bench.profiles import BUDGET_DEFAULTS, Budget, get_profile, method_budget
from denoise_bench.protocol import EvalProtocol, get_protocol
from denoise_bench.real_noise import RealScene, build_real_view, make_real_test_cases, real_scenes, require_real_source
from denoise_bench.results import (CHECKPOINTS, CONFIG, CURVES, ENVIRONMENT, JOBS, PARTS, RECORDS, RESULTS_FORMAT,
                                   file_slug, part_folders, read_config, read_curves, read_jobs, read_records,
                                   write_frame, write_json, write_tables)
from denoise_bench.samples import is_sample_case, save_sample
from denoise_bench.schema import (CURVE_COLUMNS, CURVE_KEY, JOB_COLUMNS, JOB_KEY, RECORD_COLUMNS, RECORD_KEY, JobKey,
                                  job_key)
from denoise_bench.supervision import NoisePolicy, Supervision, build_view

if TYPE_CHECKING:
    from denoise_bench.executors import Executor


@dataclass
class RunRequest:
    """What the user asked for; names are resolved and checked by :func:`plan`."""

    methods: list[str]
    noises: list[str]
    datasets: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    profile: str = "quick"
    overrides: dict[str, int | None] = field(default_factory=dict)
    protocol: str = "nb2nb"
    noise_policy: str = NoisePolicy.FRESH.value
    train_dataset: str | None = None
    data_dir: Path | None = None
    device: str | None = None
    out: Path | None = None
    method_options: dict[str, dict[str, str]] = field(default_factory=dict)
    dataset_options: dict[str, str] = field(default_factory=dict)
    progress: bool = True
    checkpoint_every: int = 200  # training steps between resumable checkpoints (0: only at the end)
    eval_every: int = 0  # training steps between learning-curve evaluations on the test images (0: none)
    curve_images: int | None = None  # learning curves on the first N test images of each dataset (None: all)
    engine: dict[str, Any] = field(default_factory=dict)  # Engine switches (precision, channels_last, compile)

    @staticmethod
    def from_run_dir(run_dir: Path) -> "RunRequest":
        """The request recorded in a run folder, to continue it (``bench run --resume``)."""
        config = read_config(run_dir)
        stored = dict(config["request"])
        stored["data_dir"] = Path(stored["data_dir"]) if stored.get("data_dir") else None
        return RunRequest(**stored, out=run_dir)


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

    def budget_of(self, method_cls: type[Method]) -> Budget:
        return self.budgets[method_cls.name]


@dataclass
class RunResult:
    run_dir: Path
    records: pd.DataFrame
    jobs: pd.DataFrame
    tables: dict[str, str]

    @property
    def failed(self) -> pd.DataFrame:
        return self.jobs[self.jobs.status == "failed"] if not self.jobs.empty else self.jobs


def plan(request: RunRequest, registry: Registry | None = None) -> RunPlan:
    """Resolve every name up front so a typo fails in a second, not after an hour of training."""
    registry = registry or get_registry()
    if not request.methods:
        raise BenchError("no methods given")
    methods = [registry.method(name) for name in request.methods]
    for name, given in request.method_options.items():
        method_cls = registry.method(name)
        resolve_options(name, method_cls.options, given)  # a bad option fails now, not after training others
    settings = [resolve_setting(text, registry.noise_families) for text in request.noises]
    datasets = [registry.dataset(name)(request.data_dir, **request.dataset_options) for name in request.datasets]
    train_dataset = None
    if request.train_dataset:
        train_dataset = registry.dataset(request.train_dataset)(request.data_dir, **request.dataset_options)
    profile = get_profile(request.profile)
    budget = profile.override(**request.overrides)
    # Resolved now, so that a plugin's bad official_budget fails before anything trains.
    budgets = {m.name: method_budget(request.profile, profile, m.official_budget, request.overrides) for m in methods}
    captured = next((s.train.family for s in settings if s.train.family.captured), None)
    if captured is not None:
        for dataset in [*datasets, *([train_dataset] if train_dataset else [])]:
            require_real_source(dataset, captured.name)
    needs_training = any(m.trainable for m in methods)
    for dataset in datasets:
        dataset.check(TEST)
        if needs_training and train_dataset is None:
            dataset.check(TRAIN)
    if train_dataset is not None and needs_training:
        train_dataset.check(TRAIN)
    try:
        policy = NoisePolicy(request.noise_policy)
    except ValueError:
        raise BenchError(f"unknown noise policy {request.noise_policy!r}; valid: fresh, fixed") from None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = request.out or Path("runs") / stamp
    device = pick_device(request.device)
    engine = resolve_engine(**request.engine, device=device)
    return RunPlan(request, methods, settings, datasets, train_dataset, budget, engine, get_protocol(request.protocol),
                   policy, device, run_dir, budgets)


def _config(p: RunPlan) -> dict:
    r = p.request
    return {
        "format_version": RESULTS_FORMAT,
        "request": {"methods": r.methods, "noises": r.noises, "datasets": r.datasets, "seeds": r.seeds,
                    "profile": r.profile, "overrides": r.overrides, "protocol": r.protocol,
                    "noise_policy": r.noise_policy, "train_dataset": r.train_dataset,
                    "data_dir": str(r.data_dir) if r.data_dir else None, "method_options": r.method_options,
                    "dataset_options": r.dataset_options, "checkpoint_every": r.checkpoint_every,
                    "eval_every": r.eval_every, "curve_images": r.curve_images, "engine": r.engine},
        "run_id": p.run_dir.name,
        "methods": [{"name": m.name, "citation": m.citation, "supervision": Supervision(m.supervision).value,
                     "uses_noise_level": m.uses_noise_level, "options": p.request.method_options.get(m.name, {})}
                    for m in p.methods],
        "noise": [{"label": s.label, "train": str(s.train), "tests": [str(t) for t in s.tests]} for s in p.settings],
        "datasets": [d.name for d in p.datasets],
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
    }


class _Images:
    """Loads each dataset split once per run, as torch tensors."""

    def __init__(self, p: RunPlan) -> None:
        self.plan = p
        self._cache: dict[tuple[str, str], list[CleanImage]] = {}
        self._real: dict[tuple[str, str], list[RealScene]] = {}

    def get(self, dataset: Dataset, split: str) -> list[CleanImage]:
        key = (dataset.name, split)
        if key not in self._cache:
            self._cache[key] = dataset.images(split)
        return self._cache[key]

    def shortest_train_side(self, dataset: Dataset) -> int:
        """The shortest side among the images of ``dataset``'s training set."""
        return min(min(im.pixels.shape[:2]) for im in self.get(self.plan.train_dataset or dataset, TRAIN))

    def train(self, dataset: Dataset, crop: int) -> list[torch.Tensor]:
        """The training images of ``dataset``'s training set, checked against the ``crop`` side the method cuts."""
        source = self.plan.train_dataset or dataset
        if source.channels != dataset.channels:
            raise BenchError(f"training set {source.name!r} has {source.channels} channel(s), test set {dataset.name!r} has {dataset.channels}")
        images = self.get(source, TRAIN)
        small = [im for im in images if min(im.pixels.shape[:2]) < crop]
        if small:
            h, w = small[0].pixels.shape[:2]
            raise BenchError(f"training image {small[0].id!r} of {source.name!r} is {h}x{w}, smaller than the "
                             f"{crop}x{crop} crop ({len(small)} image(s) in all); choose a smaller --crop-size")
        return [to_chw(im.pixels) for im in images]

    def test(self, dataset: Dataset) -> list[CleanImage]:
        images = self.get(dataset, TEST)
        limit = self.plan.budget.test_images
        return images[:limit] if limit else images

    def real(self, dataset: Dataset, split: str) -> list[RealScene]:
        """Real-noise scenes: the training source's for TRAIN, the first ``test_images`` for TEST."""
        source = (self.plan.train_dataset or dataset) if split == TRAIN else dataset
        key = (source.name, f"real-{split}")
        if key not in self._real:
            self._real[key] = real_scenes(source, split)
        scenes = self._real[key]
        limit = self.plan.budget.test_images
        return scenes[:limit] if split == TEST and limit else scenes


@dataclass
class _Sink:
    """The finished work of one process, saved to its folder after every job and curve point.

    The grid's own process writes the run folder's files; a job run by an executor writes a folder
    of its own under ``parts/``, so processes never write the same file.
    """

    folder: Path
    records: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)

    def save(self) -> None:
        write_frame(self.folder / RECORDS, pd.DataFrame(self.records, columns=RECORD_COLUMNS))
        write_frame(self.folder / JOBS, pd.DataFrame(self.jobs, columns=JOB_COLUMNS))
        if self.curves:
            frame = pd.DataFrame(self.curves, columns=CURVE_COLUMNS)
            write_frame(self.folder / CURVES, frame.drop_duplicates(CURVE_KEY, keep="last"))

    def add_curve_point(self, point: dict) -> None:
        self.curves.append(point)
        self.save()


@dataclass(frozen=True)
class Unit:
    """One training (method, noise setting, seed, training group) and the test jobs that share it.

    Plain names only, so it travels to another process or machine; :func:`run_unit` resolves them.
    """

    method: str
    noise: str  # the request's noise text, e.g. "gaussian" or "poisson:lam=30"
    seed: int
    datasets: tuple[str, ...]

    @property
    def slug(self) -> str:
        return file_slug(f"{self.method}__{'+'.join(self.datasets)}__{self.noise}__seed{self.seed}")


def _units(p: RunPlan) -> list[Unit]:
    """Every unit of the grid, in run order: training group, noise, seed, method."""
    return [Unit(m.name, noise, seed, tuple(d.name for d in group))
            for group in _training_groups(p)
            for noise, seed, m in itertools.product(p.request.noises, p.request.seeds, p.methods)]


class _Worker:
    """Runs units in one process, loading each dataset split and building each test case once."""

    def __init__(self, p: RunPlan, echo: Callable[[str], None]) -> None:
        self.plan = p
        self.echo = echo
        self.images = _Images(p)
        self._test_cache: dict[tuple[str, str], list[TestCase]] = {}
        self._methods = {m.name: m for m in p.methods}
        self._settings = dict(zip(p.request.noises, p.settings))
        self._datasets = {d.name: d for d in p.datasets}

    def cases(self, dataset: Dataset, spec: NoiseSpec) -> list[TestCase]:
        key = (dataset.name, str(spec))
        if key not in self._test_cache:
            crop = self.plan.budget.test_crop
            self._test_cache[key] = (
                make_real_test_cases(dataset.name, self.images.real(dataset, TEST), spec, crop) if spec.family.captured
                else make_test_cases(dataset.name, self.images.test(dataset), spec, self.plan.protocol, crop))
        return self._test_cache[key]

    def run_unit(self, unit: Unit, sink: _Sink, finished: set[JobKey]) -> None:
        """Train once, test on each dataset of the unit; every outcome lands in ``sink``."""
        p, echo = self.plan, self.echo
        method_cls, setting = self._methods[unit.method], self._settings[unit.noise]
        todo = [(self._datasets[job["dataset"]], job) for job in _unit_jobs(p, unit) if job_key(job) not in finished]
        if not todo:
            return  # done in an earlier, interrupted invocation
        reason = method_cls.incompatibility(setting.family)
        if reason:
            echo(f"skip {method_cls.name} on {setting.label}: {reason}")
            sink.jobs.extend(job | {"status": "skipped", "error": reason} for _, job in todo)
            sink.save()
            return
        began = time.perf_counter()
        try:
            method, train_seconds = _trained_method(p, method_cls, [d for d, _ in todo], setting, unit.seed,
                                                    self.images, self.cases, echo, sink.add_curve_point)
        except Exception as exc:
            for _, job in todo:
                _record_failure(sink, job, exc, began, echo)
            return
        for dataset, job in todo:
            try:
                job_records = _test(p, method, dataset, setting, self.cases)
            except Exception as exc:
                _record_failure(sink, job, exc, began, echo)
                began = time.perf_counter()
                continue
            common = job | {"run_id": p.run_dir.name, "protocol": p.protocol.id, "profile": p.request.profile,
                            "iterations": p.budget_of(method_cls).iterations if method_cls.trainable else 0,
                            "noise_policy": p.policy.value, "device": str(p.device), "train_seconds": train_seconds}
            sink.records.extend(common | r for r in job_records)
            # The first dataset's job time includes the shared training; later ones only their tests.
            sink.jobs.append(job | {"status": "done", "seconds": time.perf_counter() - began})
            began = time.perf_counter()
            sink.save()


def _record_failure(sink: _Sink, job: dict, exc: BaseException, began: float, echo: Callable[[str], None]) -> None:
    """Isolate a failure: record it with its error; the grid goes on."""
    message = f"{type(exc).__name__}: {exc}"
    echo(f"FAILED {job['method']} on {job['dataset']} / {job['train_noise']} (seed {job['seed']}): {message}")
    sink.jobs.append(job | {"status": "failed", "error": message, "traceback": traceback.format_exc(limit=8),
                            "seconds": time.perf_counter() - began})
    sink.save()


def run(p: RunPlan, echo: Callable[[str], None] = print, executor: "Executor | None" = None) -> RunResult:
    """Run every job of the plan; returns the records and the rendered tables.

    Without ``executor`` the jobs run here, one after another. With one (see
    ``denoise_bench.executors``), each :class:`Unit` is submitted as a job of its own that writes
    under ``parts/``; this process waits for them and folds their results into the run folder.
    """
    run_dir = p.run_dir
    config = _config(p)
    sink = _resume_state(run_dir, config, echo)
    finished = {job_key(j) for j in sink.jobs}
    (run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG, config)
    write_json(run_dir / ENVIRONMENT, describe_environment(p.device))
    sink.save()
    units = _units(p)
    if executor is None:
        worker = _Worker(p, echo)
        for unit in units:
            worker.run_unit(unit, sink, finished)
    else:
        pending = [u for u in units if any(job_key(job) not in finished for job in _unit_jobs(p, u))]
        for unit, error in executor.run_units(run_dir, pending, echo):
            if error is None:
                continue
            # The job itself died (killed, out of memory, a scheduler error): its unrecorded jobs failed.
            part = run_dir / PARTS / unit.slug
            recorded = {job_key(j) for j in _rows(part / JOBS)}
            for job in _unit_jobs(p, unit):
                if job_key(job) not in recorded:
                    _record_failure(sink, job, error, time.perf_counter(), echo)
        _fold_parts(run_dir, sink)
    sink.save()
    tables = write_tables(run_dir)
    return RunResult(run_dir, pd.DataFrame(sink.records, columns=RECORD_COLUMNS),
                     pd.DataFrame(sink.jobs, columns=JOB_COLUMNS), tables)


def run_unit(run_dir: str, unit: Unit) -> None:
    """Entry point of a submitted job: run one unit of the grid recorded in ``run_dir``.

    Module-level and taking plain values so that submitit (or any executor) can pickle it by name.
    Runs in its own process, possibly on another machine that sees the same run folder.
    """
    request = RunRequest.from_run_dir(Path(run_dir))
    request.progress = False
    p = plan(request)
    folder = p.run_dir / PARTS / unit.slug
    sink = _Sink(folder)
    sink.save()  # an empty part marks the job as started
    _Worker(p, print).run_unit(unit, sink, finished=set())


def _unit_jobs(p: RunPlan, unit: Unit) -> list[dict]:
    """The job rows of a unit: one per dataset, in the order the datasets were given."""
    method_cls = next(m for m in p.methods if m.name == unit.method)
    setting = p.settings[p.request.noises.index(unit.noise)]
    return [_job_row(method_cls, d, setting, unit.seed) for d in p.datasets if d.name in unit.datasets]


def _fold_parts(run_dir: Path, sink: _Sink) -> None:
    """Move the results of finished executor jobs into the run folder's own files, then drop the parts."""
    for part in part_folders(run_dir):
        sink.records.extend(_rows(part / RECORDS))
        sink.jobs.extend(_rows(part / JOBS))
        sink.curves.extend(_rows(part / CURVES))
    sink.save()  # written before the parts go, so a kill in between loses nothing (readers de-duplicate)
    shutil.rmtree(run_dir / PARTS, ignore_errors=True)


def _rows(path: Path) -> list[dict]:
    """The rows of one CSV of a part (missing values as None), or none if it does not exist."""
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return frame.where(frame.notna(), None).to_dict("records") if not frame.empty else []


def _comparable(config: dict) -> dict:
    """The parts of a config that must match to continue a run (not the device or progress).

    A JSON round trip first, so a config read back from disk and one built in memory compare alike.
    """
    config = json.loads(json.dumps(config, default=str))
    request = dict(config.get("request", {}))
    request.pop("checkpoint_every", None)
    request.pop("data_dir", None)
    # Learning curves observe training without changing it (bit for bit), so a resumed run may change them.
    request.pop("eval_every", None)
    request.pop("curve_images", None)
    request.setdefault("engine", {})  # run folders from before engine switches trained with the defaults
    config.setdefault("engine", Engine().as_dict())
    # Run folders from before training rules and per-method budgets trained every method on one
    # budget under the official rule.
    budget = BUDGET_DEFAULTS | dict(config.get("budget", {}))
    config["budget"] = budget
    config.setdefault("budgets", {m["name"]: budget for m in config.get("methods", [])})
    return {k: v for k, v in config.items() if k not in ("device", "run_id")} | {"request": request}


def _resume_state(run_dir: Path, config: dict, echo: Callable[[str], None]) -> _Sink:
    """Finished jobs, their records and curves from earlier invocations into the same folder.

    Jobs that failed are dropped so they run again. Learning-curve points of unfinished jobs stay
    valid: a resumed job retrains bit for bit.
    """
    sink = _Sink(run_dir)
    if not (run_dir / CONFIG).exists():
        return sink
    previous = read_config(run_dir)
    if _comparable(previous) != _comparable(config):
        raise BenchError(f"run folder {run_dir} was made by a different request; continue it with "
                         f"`bench run --resume {run_dir}` or choose a new --out")
    old_jobs = read_jobs(run_dir)  # includes the parts of executor jobs
    done = old_jobs[old_jobs.status.isin(["done", "skipped"])] if not old_jobs.empty else old_jobs
    done = done.drop_duplicates(JOB_KEY, keep="last") if not done.empty else done
    keys = {job_key(j) for j in done.to_dict("records")}
    old_records = read_records(run_dir) if (run_dir / RECORDS).exists() or part_folders(run_dir) else pd.DataFrame()
    if not old_records.empty:  # a kill while parts were being folded in can leave a job's rows twice
        old_records = old_records.drop_duplicates(RECORD_KEY, keep="last")
    sink.records = [r for r in old_records.to_dict("records") if job_key(r) in keys]
    sink.jobs = done.to_dict("records")
    sink.curves = read_curves(run_dir).to_dict("records")
    shutil.rmtree(run_dir / PARTS, ignore_errors=True)  # folded into the sink, saved before any job runs
    if keys:
        echo(f"resuming {run_dir}: {len(keys)} job(s) already finished")
    return sink


def _job_row(method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int) -> dict:
    return {"method": method_cls.name, "dataset": dataset.name, "train_noise": str(setting.train), "seed": seed,
            "uses_noise_level": method_cls.uses_noise_level, "supervision": Supervision(method_cls.supervision).value}


def _training_groups(p: RunPlan) -> list[list[Dataset]]:
    """The requested datasets grouped by training set (and channels), in the order they were given."""
    groups: dict[tuple[str, int], list[Dataset]] = {}
    for dataset in p.datasets:
        source = p.train_dataset or dataset
        groups.setdefault((source.training_set_id(), dataset.channels), []).append(dataset)
    return list(groups.values())


CaseSource = Callable[[Dataset, NoiseSpec], list[TestCase]]


def _trained_method(p: RunPlan, method_cls: type[Method], datasets: list[Dataset], setting: NoiseSetting, seed: int,
                    images: _Images, cases: CaseSource, echo: Callable[[str], None],
                    add_curve_point: Callable[[dict], None]) -> tuple[Method, float]:
    """The method trained (or loaded, if an earlier invocation trained it) for ``datasets``, which share a training set.

    Returns the method and its training seconds (learning-curve evaluations excluded).
    """
    first = datasets[0]
    budget = p.budget_of(method_cls)
    real = setting.train.family.captured  # the dataset's own captures, not drawn noise
    setup = MethodSetup(channels=first.channels, budget=budget, device=p.device, seed=seed,
                        options=p.request.method_options.get(method_cls.name, {}), engine=p.engine,
                        train_noise=None if real else setting.train,
                        train_side=None if real or not method_cls.trainable else images.shortest_train_side(first))
    method = method_cls(setup)
    if not method_cls.trainable:
        return method, 0.0
    if not real and method.training_crop() != budget.crop_size:
        echo(f"{method_cls.name}: training crops of {method.training_crop()}x{method.training_crop()} "
             f"(budget crop {budget.crop_size}, shortest training side {setup.train_side})")
    source = p.train_dataset or first
    name = f"{method_cls.name}__{file_slug(source.training_set_id())}__{file_slug(str(setting.train))}__seed{seed}"
    trained = p.run_dir / CHECKPOINTS / f"{name}.pt"
    timing = trained.with_suffix(".json")
    if trained.exists():  # trained before an interruption
        method.load_state_dict(load_checkpoint(trained, p.device))
        seconds = json.loads(timing.read_text())["train_seconds"] if timing.exists() else 0.0
        return method, float(seconds)
    supervision = Supervision(method_cls.supervision)
    if real:
        view = build_real_view(supervision, images.real(first, TRAIN), p.device, seed)
    else:
        view = build_view(supervision, images.train(first, method.training_crop()), setting.train, p.policy, p.device, seed)
    bar = tqdm(total=budget.iterations, desc=f"train {method_cls.name}", disable=not p.request.progress, leave=False)
    last = [0]

    def on_step(step: int, loss: float) -> None:
        bar.update(step - last[0])
        last[0] = step
        bar.set_postfix(loss=f"{loss:.4g}")

    start = time.perf_counter()
    # Seconds spent on learning-curve evaluations (not counted as training), and training seconds of
    # earlier, interrupted invocations (restored with the training state), counted.
    evaluating = [0.0]
    earlier = [0.0]

    def elapsed() -> float:
        return earlier[0] + time.perf_counter() - start - evaluating[0]

    def on_restore(seconds: float) -> None:
        earlier[0] = seconds

    def on_evaluate(step: int) -> None:
        began = time.perf_counter()
        trained_for = elapsed()  # one instant for every point of this step
        rng = torch.get_rng_state()  # inference draws nothing, but a plugin's denoise might
        for dataset in datasets:
            for spec in setting.tests:
                rows = list(evaluate(method, _curve_cases(cases(dataset, spec), p.request.curve_images), p.protocol, p.device))
                add_curve_point({"method": method_cls.name, "dataset": dataset.name, "train_noise": str(setting.train),
                                 "seed": seed, "test_noise": str(spec), "step": step,
                                 "train_seconds": trained_for,
                                 "psnr": sum(r["psnr"] for r in rows) / len(rows),
                                 "ssim": sum(r["ssim"] for r in rows) / len(rows), "records": len(rows)})
        torch.set_rng_state(rng)
        evaluating[0] += time.perf_counter() - began

    state_path = p.run_dir / CHECKPOINTS / f"{name}.train.pt"
    try:
        method.fit(view, TrainContext(on_step=on_step, log=echo, checkpoint_path=state_path,
                                      checkpoint_every=p.request.checkpoint_every,
                                      evaluate_every=p.request.eval_every, on_evaluate=on_evaluate,
                                      elapsed=elapsed, on_restore=on_restore))
    finally:
        bar.close()
    train_seconds = elapsed()
    write_json(timing, {"train_seconds": train_seconds})  # before the weights: their presence means "trained"
    save_checkpoint(method.state_dict(), trained)
    state_path.unlink(missing_ok=True)  # the optimiser state is no longer needed
    return method, train_seconds


def _curve_cases(test_cases: list[TestCase], images: int | None) -> list[TestCase]:
    """The cases of the first ``images`` test images (all their repeats), for learning curves."""
    if images is None:
        return test_cases
    kept = list(dict.fromkeys(c.image_id for c in test_cases))[:images]
    return [c for c in test_cases if c.image_id in kept]


def _test(p: RunPlan, method: Method, dataset: Dataset, setting: NoiseSetting, cases: CaseSource) -> list[dict]:
    """Per-image records of ``method`` on every test setting of ``setting``; keeps the sample crops."""
    job_records: list[dict] = []
    for spec in setting.tests:
        test_cases = cases(dataset, spec)

        def keep_sample(case: TestCase, estimate: torch.Tensor) -> None:
            if is_sample_case(case, test_cases[0].image_id):
                save_sample(p.run_dir, case, method.name, estimate)

        with tqdm(total=len(test_cases), desc=f"test {method.name} {spec}", disable=not p.request.progress,
                  leave=False) as bar:
            job_records.extend(evaluate(method, test_cases, p.protocol, p.device, on_case=bar.update,
                                        on_estimate=keep_sample))
    return job_records
