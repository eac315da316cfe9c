"""Scoring a unit's method on its test cases: per-image records with sample crops, and learning-curve points.

Both go through :func:`denoise_bench.evaluate.evaluate` on the cases of ``RunData``, so a point of
a learning curve and the final records score the very same noisy inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from denoise_bench.data import Dataset
from denoise_bench.diagnostics import DIAGNOSTICS, estimate_diagnostics
from denoise_bench.evaluate import TestCase, evaluate
from denoise_bench.method import Method
from denoise_bench.registered_metrics import metrics
from denoise_bench.noise import NoiseSetting
from denoise_bench.run.planning import RunPlan
from denoise_bench.run.inputs import RunData
from denoise_bench.store.sample_files import is_sample_case, save_sample


def score_tests(p: RunPlan, method: Method, dataset: Dataset, setting: NoiseSetting, data: RunData,
                scored: Iterable[Mapping[str, Any]] = (),
                on_record: Callable[[dict[str, Any]], None] = lambda record: None) -> list[dict[str, Any]]:
    """Per-image records of ``method`` on every test setting of ``setting``; keeps the sample crops.

    Cases that ``scored`` (records of an interrupted invocation) already holds are not denoised
    again; ``on_record`` sees each new record as soon as it is made, so it can be saved at once.
    Returns the new records only.
    """
    done = {(str(r["test_noise"]), str(r["image"]), int(r["repeat"])) for r in scored}
    records: list[dict[str, Any]] = []
    for spec in setting.tests:
        cases = data.test_cases(dataset, spec)
        todo = [c for c in cases if (str(spec), c.image_id, c.repeat) not in done]

        def keep_sample(case: TestCase, estimate: torch.Tensor) -> None:
            if is_sample_case(case, cases[0].image_id):
                save_sample(p.run_dir, case, method.name, estimate)

        with tqdm(total=len(todo), desc=f"test {method.name} {spec}", disable=not p.request.progress,
                  leave=False) as bar:
            for record in evaluate(method, todo, p.protocol, p.device, on_case=bar.update, on_estimate=keep_sample):
                on_record(record)
                records.append(record)
    return records


def curve_points(p: RunPlan, method: Method, datasets: list[Dataset], setting: NoiseSetting, seed: int, step: int,
                 train_seconds: float, data: RunData) -> Iterator[dict[str, Any]]:
    """One learning-curve point per (dataset, test setting): the mean of every metric at training ``step``
    (``metric.curve_columns``), the floor's PSNR (box3 of the input) on the same images, the bar a
    learning method has to clear, the noisy input's PSNR (the divergence guard's bar) and the estimate's
    diagnostics (``denoise_bench.diagnostics``).

    Scored on the first ``--curve-images`` test images only, if given; yielded one at a time so
    each is saved as soon as it is scored.
    """
    for dataset in datasets:
        for spec in setting.tests:
            cases = _curve_cases(data.test_cases(dataset, spec), p.request.curve_images)
            seen: list[dict[str, float]] = []

            def diagnose(case: TestCase, estimate: torch.Tensor) -> None:
                seen.append(estimate_diagnostics(case.noisy, case.clean_u8, estimate))

            rows = [r | d for r, d in zip(list(evaluate(method, cases, p.protocol, p.device, on_estimate=diagnose)), seen)]

            def mean(column: str) -> float:
                return sum(r[column] for r in rows) / len(rows)

            yield {"method": method.name, "dataset": dataset.name, "train_noise": str(setting.train), "seed": seed,
                   "test_noise": str(spec), "step": step, "train_seconds": train_seconds,
                   **{metric.name: mean(metric.name) for metric in metrics()}, "records": len(rows),
                   "floor_psnr": mean("floor_psnr"), "input_psnr": mean("input_psnr"),
                   **{name: mean(name) for name in DIAGNOSTICS}}


def _curve_cases(cases: list[TestCase], images: int | None) -> list[TestCase]:
    """The cases of the first ``images`` test images (all their repeats), for learning curves."""
    if images is None:
        return cases
    kept = list(dict.fromkeys(c.image_id for c in cases))[:images]
    return [c for c in cases if c.image_id in kept]
