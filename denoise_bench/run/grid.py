"""The grid of a run: its jobs, and the units of training they share.

A *job* is one (method, dataset, training noise, seed): its row in ``jobs.csv`` says whether it was
done, failed or skipped. A *unit* is one training of a method for a noise setting and seed, and the
jobs that share it: datasets with the same training set (BSD68 and Set12 both train on Train400)
and channels are tested with one trained model. Units are what runs one after another here, or each
as a job of its own under an executor.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from denoise_bench.data import Dataset
from denoise_bench.experiment import Experiment, canonical_options, run_conditions
from denoise_bench.method import Method
from denoise_bench.noise import NoiseSetting
from denoise_bench.run.planning import RunPlan, run_config
from denoise_bench.results import file_slug
from denoise_bench.supervision import Supervision


@dataclass(frozen=True)
class Unit:
    """One training (method, noise setting, seed, training group) and the test jobs that share it.

    Plain names only, so it travels to another process or machine; :func:`denoise_bench.run.runner.run_unit`
    resolves them.
    """

    method: str
    noise: str  # the request's noise text, e.g. "gaussian" or "poisson:lam=30"
    seed: int
    datasets: tuple[str, ...]
    # Experiment.key of the training, so that a job run elsewhere from config.json can tell that it
    # runs what was submitted; "" for units made before it was recorded (not checked).
    experiment: str = ""

    @property
    def slug(self) -> str:
        return file_slug(f"{self.method}__{'+'.join(self.datasets)}__{self.noise}__seed{self.seed}")


def training_groups(p: RunPlan) -> list[list[Dataset]]:
    """The requested datasets grouped by training set (and channels), in the order they were given."""
    groups: dict[tuple[str, int], list[Dataset]] = {}
    for dataset in p.datasets:
        groups.setdefault((p.training_source(dataset).training_set_id(), dataset.channels), []).append(dataset)
    return list(groups.values())


def units(p: RunPlan) -> list[Unit]:
    """Every unit of the grid, in run order: training group, noise, seed, method."""
    config = run_config(p)
    return [Unit(m.name, noise, seed, tuple(d.name for d in group),
                 experiment_of(p, m, group[0], p.settings[p.request.noises.index(noise)], config).key)
            for group in training_groups(p)
            for noise, seed, m in itertools.product(p.request.noises, p.request.seeds, p.methods)]


def experiment_of(p: RunPlan, method_cls: type[Method], dataset: Dataset, setting: NoiseSetting,
                  config: dict[str, Any] | None = None) -> Experiment:
    """The experiment a job of the plan runs: ``method_cls`` trained for ``dataset`` on ``setting``'s training noise."""
    return Experiment(
        method=method_cls.name,
        method_options=canonical_options(p.options_of(method_cls), method_cls.options,
                                         method_cls.identity_options),
        train_noise=str(setting.train),
        training_set=p.training_source(dataset).training_set_id() if method_cls.trainable else "",
        supervision=Supervision(method_cls.supervision).value,
        **run_conditions(config if config is not None else run_config(p), method_cls.name))


def unit_experiment(p: RunPlan, unit: Unit) -> Experiment:
    """The experiment of a unit, as the plan ``p`` resolves its names."""
    method_cls = next(m for m in p.methods if m.name == unit.method)
    dataset = next(d for d in p.datasets if d.name == unit.datasets[0])
    return experiment_of(p, method_cls, dataset, setting_of(p, unit))


def unit_jobs(p: RunPlan, unit: Unit) -> list[dict[str, Any]]:
    """The job rows of a unit: one per dataset, in the order the datasets were given."""
    method_cls = next(m for m in p.methods if m.name == unit.method)
    return [job_row(method_cls, d, setting_of(p, unit), unit.seed) for d in p.datasets if d.name in unit.datasets]


def setting_of(p: RunPlan, unit: Unit) -> NoiseSetting:
    """The noise setting the unit's request text resolved to."""
    return p.settings[p.request.noises.index(unit.noise)]


def training_of(unit: Unit, setting: NoiseSetting, datasets: list[str]) -> dict[str, Any]:
    """The training the lifecycle hooks are told about: the unit's, for the jobs of ``datasets``."""
    return {"method": unit.method, "train_noise": str(setting.train), "seed": unit.seed, "datasets": datasets}


def job_row(method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int) -> dict[str, Any]:
    """What identifies a job in ``jobs.csv`` and every record of it (see ``denoise_bench.schema``)."""
    return {"method": method_cls.name, "dataset": dataset.name, "train_noise": str(setting.train), "seed": seed,
            "uses_noise_level": method_cls.uses_noise_level, "supervision": Supervision(method_cls.supervision).value}

