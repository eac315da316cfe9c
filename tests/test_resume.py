"""Resumable runs, atomic writes, safe loading, and the errors around them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from denoise_bench import plugins
from denoise_bench.run import runner as runner_module
from denoise_bench.checkpoints import load_checkpoint, save_checkpoint
from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.methods.iddp import IDDP
from denoise_bench.results import write_text_atomic

TRAIN_ARGS = ["--methods", "iddp", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--iterations", "60",
              "--width", "16", "--checkpoint-every", "10", "--no-progress"]
STATE = "checkpoints/iddp__skimage__gaussian_sigma=25__seed0.train.pt"
from denoise_bench.method import NoiseInfo
from helpers import Median3, MethodPlugin


def bench_process(*args: str) -> list[str]:
    return [sys.executable, "-m", "denoise_bench.cli", "run", *args]


def test_sigkill_mid_training_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert CliRunner().invoke(main, ["run", *TRAIN_ARGS, "--out", str(reference)]).exit_code == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(bench_process(*TRAIN_ARGS, "--out", str(killed)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / STATE).exists():  # the first training state appears after 10 steps
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    state = load_checkpoint(killed / STATE)
    step, seconds_before = state["step"], state["train_seconds"]
    assert 10 <= step < 60, "the kill must land in mid-training"
    assert seconds_before > 0  # the training time so far travels with the state
    assert not (killed / "checkpoints" / "iddp__skimage__gaussian_sigma=25__seed0.pt").exists()

    resumed = CliRunner().invoke(main, ["run", "--resume", str(killed), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming from step {step} of 60" in resumed.output
    got = pd.read_csv(killed / "records.csv").sort_values(["test_noise", "image"]).reset_index(drop=True)
    want = pd.read_csv(reference / "records.csv").sort_values(["test_noise", "image"]).reset_index(drop=True)
    # Bitwise on CPU: weights, optimiser, schedule and every RNG stream are restored exactly.
    assert got.psnr.tolist() == want.psnr.tolist() and got.ssim.tolist() == want.ssim.tolist()
    assert not (killed / STATE).exists()  # the optimiser state is dropped once the job is done
    # The resumed job reports the training time of both invocations, not only the second's.
    assert got.train_seconds.iloc[0] > seconds_before


def test_rerunning_into_the_same_folder_skips_finished_jobs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--out", str(out), "--no-progress"]
    assert CliRunner().invoke(main, args).exit_code == 0
    first = pd.read_csv(out / "records.csv")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "1 job(s) already finished" in result.output
    pd.testing.assert_frame_equal(pd.read_csv(out / "records.csv"), first)
    # A different request into the same folder is refused instead of mixing two grids.
    other = CliRunner().invoke(main, args[:-3] + ["--seeds", "5", "--out", str(out)])
    assert other.exit_code == 2 and "was made by a different request" in other.output


def test_incompatible_results_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["run", "--methods", "bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                                     "--out", str(out), "--no-progress"]).exit_code == 0
    config = json.loads((out / "config.json").read_text())
    config["format_version"] = 0
    (out / "config.json").write_text(json.dumps(config))
    for args in (["table", str(out)], ["run", "--resume", str(out)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert "written by an incompatible version of denoise-bench (results format 0" in result.output


class Exploding:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_malicious_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"method": "iddp", "net": Exploding()}, path)
    with pytest.raises(BenchError, match="refusing to load, it is not a plain weights checkpoint") as err:
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()
    assert "system" in str(err.value)  # names what it refused ...
    assert "weights_only" not in str(err.value)  # ... without relaying torch's advice to turn the safety off


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint({"method": "iddp", "w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(BenchError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_checkpoint_of_another_method_fails_that_job_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from denoise_bench.run import runner
    from denoise_bench.method import MethodSetup
    from denoise_bench.methods.unet import SupervisedUNet
    from denoise_bench.profiles import get_profile

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "run"
    args = ["run", "--methods", "iddp,bm3d", "--noise", "gaussian:sigma=25", "--profile", "smoke", "--iterations", "2",
            "--out", str(out), "--no-progress"]
    with monkeypatch.context() as patched:  # a run folder interrupted before its first job
        patched.setattr(runner, "run_here", interrupted)
        assert CliRunner().invoke(main, args).exit_code == 130
    budget = get_profile("smoke").override(iterations=2)
    save_checkpoint(SupervisedUNet(MethodSetup(channels=1, budget=budget)).state_dict(),
                    out / "checkpoints" / "iddp__skimage__gaussian_sigma=25__seed0.pt")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    jobs = pd.read_csv(out / "jobs.csv").set_index("method")
    assert jobs.loc["bm3d", "status"] == "done"
    assert "checkpoint is for method 'unet', not 'iddp'" in jobs.loc["iddp", "error"]


def test_interrupted_writes_leave_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text_path, ckpt_path = tmp_path / "records.csv", tmp_path / "model.pt"
    write_text_atomic(text_path, "old\n")
    save_checkpoint({"v": torch.zeros(3)}, ckpt_path)

    def crash_mid_write(obj, f, *args, **kwargs):
        if hasattr(f, "write"):  # checkpoints are saved through an open file
            f.write(b"half a checkpoint")
        else:
            Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # as if killed while writing

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"v": torch.ones(3)}, ckpt_path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(ckpt_path)["v"], torch.zeros(3))

    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(text_path, "new\n" * 1000)
    monkeypatch.undo()
    assert text_path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "records.csv"]  # no temporary files left


WRITER = """
import sys, pandas as pd
from pathlib import Path
from denoise_bench.results import write_frame
path = Path(sys.argv[1])
i = 0
while True:
    i += 1
    write_frame(path, pd.DataFrame({"k": range(20000), "v": [i] * 20000}))
"""


def test_sigkill_during_writes_never_leaves_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    for delay in (0.6, 0.8, 1.1, 1.3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if path.exists():
            frame = pd.read_csv(path)
            assert len(frame) == 20000 and frame.v.nunique() == 1


class NaNMethod(IDDP):
    name = "nan-iddp"
    description = "IDDP whose loss turns NaN (test plugin)"

    def training_loss(self, batch, progress):
        return super().training_loss(batch, progress) * float("nan")


def test_nan_loss_is_recorded_as_failed_and_the_grid_goes_on(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(NaNMethod), name="nan")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "nan-iddp,bm3d", "--noise", "gaussian:sigma=25", "--profile",
                                       "smoke", "--iterations", "30", "--out", str(out), "--no-progress"])
    assert result.exit_code == 1
    jobs = pd.read_csv(out / "jobs.csv").set_index("method")
    assert jobs.loc["nan-iddp", "status"] == "failed"
    assert jobs.loc["nan-iddp", "error"] == "TrainingDiverged: nan-iddp: loss became nan at step 1"  # where it began
    assert jobs.loc["bm3d", "status"] == "done"
    assert "failed" in (out / "tables" / "psnr.md").read_text()


def test_training_seconds_travel_with_the_training_state(tmp_path: Path) -> None:
    """A resumed job gets back the training time of the interrupted invocation (through on_restore)."""
    import skimage.data

    from denoise_bench.method import MethodSetup, TrainContext
    from denoise_bench.noise import parse_spec
    from denoise_bench.plugins import get_registry
    from denoise_bench.profiles import get_profile
    from denoise_bench.supervision import NoisePolicy, Supervision, build_view
    from denoise_bench.training import train

    budget = get_profile("smoke").override(iterations=4, width=8, crop_size=32)
    image = torch.from_numpy(skimage.data.camera()[:64, :64].copy()).unsqueeze(0)
    spec = parse_spec("gaussian:sigma=25", get_registry().noise_families)

    def view():
        return build_view(Supervision.NONE, [image], spec, NoisePolicy.FRESH, torch.device("cpu"), seed=0)

    path = tmp_path / "state.pt"
    first = IDDP(MethodSetup(channels=1, budget=budget.override(iterations=4)))
    train(first, view(), budget, TrainContext(checkpoint_path=path, checkpoint_every=2, elapsed=lambda: 123.5))
    assert load_checkpoint(path)["train_seconds"] == 123.5
    restored: list[float] = []
    again = IDDP(MethodSetup(channels=1, budget=budget))
    train(again, view(), budget, TrainContext(checkpoint_path=path, checkpoint_every=2, on_restore=restored.append))
    assert restored == [123.5]


class FlakyMedian(Median3):
    """A per-image method whose process "dies" at a chosen image: it counts the images it denoises."""

    name = "flaky-median"
    description = "3x3 median filter that fails at its n-th image (test plugin)"
    denoised: ClassVar[list[float]] = []
    fail_at: ClassVar[int | None] = None

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        if len(FlakyMedian.denoised) + 1 == FlakyMedian.fail_at:
            raise RuntimeError("power cut")
        FlakyMedian.denoised.append(float(noisy.sum()))
        return super().denoise(noisy, noise)


def test_images_scored_before_an_interruption_are_kept_and_not_denoised_again(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A per-image method (DIP: an hour per image) loses no finished image when its job is cut short."""
    # The run's timed probe denoises one image before the first job: out of the count of the job's calls.
    monkeypatch.setattr(runner_module, "timed_estimate", lambda p, left: ({}, 0.0))
    plugins.register_plugin(MethodPlugin(FlakyMedian), name="flaky")
    args = ["run", "--methods", "flaky-median", "--noise", "gaussian:sigma=25", "--profile", "smoke",
            "--test-images", "3", "--no-progress"]
    FlakyMedian.denoised, FlakyMedian.fail_at = [], None
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "reference")]).exit_code == 0
    reference = pd.read_csv(tmp_path / "reference" / "records.csv").sort_values("image")
    assert len(reference) == 3 and not (tmp_path / "reference" / "pending.csv").exists()

    out = tmp_path / "run"
    FlakyMedian.denoised, FlakyMedian.fail_at = [], 3  # two images scored, the third never finishes
    assert CliRunner().invoke(main, [*args, "--out", str(out)]).exit_code == 1
    assert pd.read_csv(out / "records.csv").empty  # the job did not finish: nothing in the tables yet ...
    pending = pd.read_csv(out / "pending.csv")
    assert len(pending) == 2 and set(pending.method) == {"flaky-median"}  # ... but its two images are on disk

    FlakyMedian.denoised, FlakyMedian.fail_at = [], None
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(FlakyMedian.denoised) == 1  # only the image that was not scored
    assert "flaky-median on skimage: 2 record(s) scored before, kept" in result.output
    got = pd.read_csv(out / "records.csv").sort_values("image")
    assert got.image.tolist() == reference.image.tolist() and got.psnr.tolist() == reference.psnr.tolist()
    assert not (out / "pending.csv").exists()  # moved to records.csv with the finished job
