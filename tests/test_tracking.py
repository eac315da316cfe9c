"""The lifecycle hooks (run started, training steps, curve points, job finished, run finished) and TensorBoard."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from denoise_bench import hookimpl, plugins, tensorboard_events
from denoise_bench.trackers import tensorboard as tensorboard_tracker
from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.method import NoiseInfo
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.schema import job_key
from helpers import LostJobs, MethodPlugin, Median3, run_folder_config

# unet trains 30 steps (smoke), scored every 10: the loss is read back at 10, 20, 25 (CHECK_EVERY) and 30.
STEPS = [10, 20, 25, 30]


class Recorder:
    """A third-party tracking plugin: every lifecycle hook, recorded in the order it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def run_started(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.calls.append(("run_started", {"run_dir": run_dir, "config": config}))

    @hookimpl
    def training_step(self, training: dict[str, Any], step: int, total_steps: int, loss: float, lr: float) -> None:
        self.calls.append(("training_step", {"training": training, "step": step, "total_steps": total_steps,
                                             "loss": loss, "lr": lr}))

    @hookimpl
    def learning_curve_point(self, point: dict[str, Any]) -> None:
        self.calls.append(("learning_curve_point", {"point": point}))

    @hookimpl
    def job_finished(self, job: dict[str, Any], records: list[dict[str, Any]], error: str | None,
                     training: dict[str, Any]) -> None:
        self.calls.append(("job_finished", {"job": job, "records": records, "error": error, "training": training}))

    @hookimpl
    def run_finished(self, run_dir: Path, counts: dict[str, int]) -> None:
        self.calls.append(("run_finished", {"run_dir": run_dir, "counts": counts}))

    def of(self, hook: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == hook]


class Failing(Median3):
    name = "failing"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        raise RuntimeError("no luck")


class Broken:
    """A tracking plugin with a bug in one hook."""

    def __init__(self) -> None:
        self.finished = 0

    @hookimpl
    def training_step(self, step: int) -> None:
        raise ZeroDivisionError(f"step {step}")

    @hookimpl
    def job_finished(self) -> None:
        self.finished += 1


def _run(out: Path, echo: Any = lambda _: None, **options: Any):
    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")
    request = RunRequest(methods=["unet", "median3"], noises=["gaussian:sigma=25"], datasets=["skimage"],
                         profile="smoke", overrides={"test_images": 1}, out=out, progress=False, eval_every=10,
                         **options)
    return run(plan(request), echo=echo)


def test_a_tracking_plugin_receives_the_lifecycle_in_order(tmp_path: Path) -> None:
    recorder = Recorder()
    plugins.register_plugin(recorder, name="recorder")
    result = _run(tmp_path / "r")
    names = [name for name, _ in recorder.calls]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    assert names.count("run_started") == names.count("run_finished") == 1
    started = recorder.of("run_started")[0]
    assert started["run_dir"] == tmp_path / "r" and started["config"]["request"]["methods"] == ["unet", "median3"]

    steps = recorder.of("training_step")
    assert [s["step"] for s in steps] == STEPS and {s["total_steps"] for s in steps} == {30}
    assert all(math.isfinite(s["loss"]) and s["lr"] > 0 for s in steps)
    assert steps[0]["training"] == {"method": "unet", "train_noise": "gaussian:sigma=25", "seed": 0, "datasets": ["skimage"]}
    assert [p["point"]["step"] for p in recorder.of("learning_curve_point")] == [10, 20, 30]
    # unet's steps and points all come before its job ends, and median3's job after it.
    assert names.index("job_finished") > max(i for i, n in enumerate(names) if n in ("training_step", "learning_curve_point"))

    finished = recorder.of("job_finished")
    assert [(f["job"]["method"], f["job"]["status"], f["error"]) for f in finished] == [("unet", "done", None),
                                                                                        ("median3", "done", None)]
    records = pd.read_csv(tmp_path / "r" / "records.csv")
    for f in finished:  # each job's own rows of records.csv, as saved
        mine = records[records.method == f["job"]["method"]]
        assert len(f["records"]) == len(mine) == 1  # one test image, one test setting, one repeat
        assert {job_key(r) for r in f["records"]} == {job_key(f["job"])}
        assert sorted(r["psnr"] for r in f["records"]) == pytest.approx(sorted(mine.psnr))
    assert recorder.of("run_finished")[0]["counts"] == {"done": 2, "failed": 0, "skipped": 0}
    assert result.failed.empty


def test_a_plugin_that_raises_is_named_once_and_the_run_and_other_plugins_go_on(tmp_path: Path) -> None:
    broken, recorder = Broken(), Recorder()
    plugins.register_plugin(broken, name="broken-tracker")
    plugins.register_plugin(recorder, name="recorder")
    messages: list[str] = []
    result = _run(tmp_path / "r", echo=messages.append)
    warnings = [m for m in messages if m.startswith("warning:")]
    assert warnings == ["warning: plugin 'broken-tracker' raised in training_step: ZeroDivisionError: step 10; "
                        "it is not called again in this run"]
    assert broken.finished == 0  # dropped after its first failure
    assert [s["step"] for s in recorder.of("training_step")] == STEPS  # the others still hear everything
    assert result.failed.empty and set(result.jobs.status) == {"done"}
    assert len(pd.read_csv(tmp_path / "r" / "records.csv")) == 2  # both jobs' records


def _run_alone(method: type, out: Path, executor: Any = None) -> Recorder:
    """Run ``method`` alone on one image, heard by a recording plugin."""
    recorder = Recorder()
    plugins.register_plugin(recorder, name="recorder")
    plugins.register_plugin(MethodPlugin(method), name=f"{method.name}-plugin")
    request = RunRequest(methods=[method.name], noises=["gaussian:sigma=25"], datasets=["skimage"], profile="smoke",
                         overrides={"test_images": 1}, out=out, progress=False)
    run(plan(request), echo=lambda _: None, executor=executor)
    return recorder


def test_a_failed_job_is_reported_with_its_error(tmp_path: Path) -> None:
    recorder = _run_alone(Failing, tmp_path / "r")
    (finished,) = recorder.of("job_finished")
    assert finished["job"]["status"] == "failed" and finished["records"] == []
    assert finished["error"] == finished["job"]["error"] == "RuntimeError: no luck"
    assert recorder.of("run_finished")[0]["counts"] == {"done": 0, "failed": 1, "skipped": 0}


def test_the_jobs_of_a_dead_executor_process_are_reported_as_failed(tmp_path: Path) -> None:
    recorder = _run_alone(Median3, tmp_path / "r", executor=LostJobs())
    (finished,) = recorder.of("job_finished")  # no process of its own ran the hook: the grid's process does
    assert finished["job"]["status"] == "failed" and finished["error"] == "RuntimeError: the job died"
    assert finished["training"] == {"method": "median3", "train_noise": "gaussian:sigma=25", "seed": 0,
                                    "datasets": ["skimage"]}
    assert recorder.of("run_finished")[0]["counts"] == {"done": 0, "failed": 1, "skipped": 0}


# --- TensorBoard -----------------------------------------------------------------------------------


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_events_hold_the_loss_the_curve_and_the_final_scores_of_each_job(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "r"
    _run(out, tensorboard=True)
    records = pd.read_csv(out / "records.csv")
    unet = _scalars(out / "tensorboard" / "unet__skimage__gaussian_sigma=25__seed0")
    assert [step for step, _ in unet["train/loss"]] == STEPS and [step for step, _ in unet["train/lr"]] == STEPS
    assert all(math.isfinite(value) for _, value in unet["train/loss"])
    curves = pd.read_csv(out / "curves.csv").query("method == 'unet'")
    assert unet["curve/psnr/gaussian:sigma=25"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in zip(curves.step, curves.psnr)]
    for method, step in (("unet", 30), ("median3", 0)):  # per-image methods have no training steps
        scalars = _scalars(out / "tensorboard" / f"{method}__skimage__gaussian_sigma=25__seed0")
        mine = records[records.method == method]
        assert scalars["final/psnr/gaussian:sigma=25"] == [(step, pytest.approx(mine.psnr.mean(), rel=1e-6))]
        assert scalars["final/ssim/gaussian:sigma=25"] == [(step, pytest.approx(mine.ssim.mean(), rel=1e-6))]


def test_without_the_flag_no_events_are_written(tmp_path: Path) -> None:
    _run(tmp_path / "r")
    assert not (tmp_path / "r" / "tensorboard").exists()


def test_a_jobs_own_process_reads_the_switch_from_the_run_folder(tmp_path: Path) -> None:
    """Under an executor the job's process sees no run_started: config.json says whether to write."""
    pytest.importorskip("tensorboard")
    (tmp_path / "config.json").write_text(json.dumps(run_folder_config(request={"tensorboard": True})))
    training = {"method": "unet", "train_noise": "gaussian:sigma=25", "seed": 1, "datasets": ["bsd68", "set12"]}
    tensorboard_tracker.training_step(run_dir=tmp_path, training=training, step=25, loss=0.5, lr=1e-3)
    for dataset in training["datasets"]:
        job = training | {"dataset": dataset, "status": "failed"}
        tensorboard_tracker.job_finished(run_dir=tmp_path, job=job, records=[])
        assert _scalars(tensorboard_events.job_folder(tmp_path, job))["train/loss"] == [(25, 0.5)]
    tensorboard_tracker.run_finished(run_dir=tmp_path)


def test_tensorboard_without_the_package_stops_before_anything_runs(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", "--methods", "unet", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                                       "--no-progress", "--tensorboard", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: --tensorboard needs the tensorboard package: pip install 'denoise-bench[tensorboard]'")
    assert not out.exists()
    with pytest.raises(BenchError, match="pip install 'denoise-bench"):
        plan(RunRequest(methods=["unet"], noises=["gaussian"], datasets=["skimage"], tensorboard=True))
