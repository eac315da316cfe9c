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
from denoise_bench.method import Method
from denoise_bench.noise import NoiseSetting
from denoise_bench.planning import RunPlan
from denoise_bench.results import file_slug
from denoise_bench.supervision import Supervision


@dataclass(frozen=True)
class Unit:
    """One training (method, noise setting, seed, training group) and the test jobs that share it.

    Plain names only, so it travels to another process or machine; :func:`denoise_bench.runner.run_unit`
    resolves them.
    """

    method: str
    noise: str  # the request's noise text, e.g. "gaussian" or "poisson:lam=30"
    seed: int
    datasets: tuple[str, ...]

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
    return [Unit(m.name, noise, seed, tuple(d.name for d in group))
            for group in training_groups(p)
            for noise, seed, m in itertools.product(p.request.noises, p.request.seeds, p.methods)]


def unit_jobs(p: RunPlan, unit: Unit) -> list[dict[str, Any]]:
    """The job rows of a unit: one per dataset, in the order the datasets were given."""
    method_cls = next(m for m in p.methods if m.name == unit.method)
    return [job_row(method_cls, d, setting_of(p, unit), unit.seed) for d in p.datasets if d.name in unit.datasets]


def setting_of(p: RunPlan, unit: Unit) -> NoiseSetting:
    """The noise setting the unit's request text resolved to."""
    return p.settings[p.request.noises.index(unit.noise)]


def job_row(method_cls: type[Method], dataset: Dataset, setting: NoiseSetting, seed: int) -> dict[str, Any]:
    """What identifies a job in ``jobs.csv`` and every record of it (see ``denoise_bench.schema``)."""
    return {"method": method_cls.name, "dataset": dataset.name, "train_noise": str(setting.train), "seed": seed,
            "uses_noise_level": method_cls.uses_noise_level, "supervision": Supervision(method_cls.supervision).value}
