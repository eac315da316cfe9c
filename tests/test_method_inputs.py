"""What a method is handed at test time: its own copy of the noisy input (an edit in place harms no
other method), no clean image anywhere up its call stack, and inputs that cannot be padded or scored
refused by name instead of hanging."""

from __future__ import annotations

import inspect
import signal
from collections.abc import Iterator
from typing import ClassVar
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from denoise_bench import plugins
from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.protocol import NB2NB, reflect_pad
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.supervision import Supervision
from denoise_bench.models.trained import TrainedDenoiser
from helpers import Median3, MethodPlugin, reachable_tensors

GAUSS = "gaussian:sigma=25"


class PerImage(Method):
    description = "a per-image test method"
    citation = "none"
    supervision = Supervision.NONE
    trainable = False


class Identity(PerImage):
    name = "identity"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return noisy.clone()


class Vandal(PerImage):
    """Edits its input in place, as a careless plugin might (clamp_, or worse, zero_)."""

    name = "vandal"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        estimate = noisy.clamp(0, 1)
        noisy.zero_()
        return estimate


class Padded(Identity):
    """Needs sides of a multiple of 32, as the shared U-Net does."""

    name = "padded"
    input_multiple = 32


def _records(tmp_path: Path, name: str, methods: list[str]) -> pd.DataFrame:
    p = plan(RunRequest(methods=methods, noises=[GAUSS], datasets=["skimage"], profile="smoke", out=tmp_path / name,
                        progress=False))
    return run(p, echo=lambda _: None).records


def test_a_method_editing_its_input_in_place_changes_no_other_methods_scores(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Identity, Vandal), name="inputs")
    alone = _records(tmp_path, "alone", ["identity"])
    after = _records(tmp_path, "after", ["vandal", "identity"])
    columns = ["image", "psnr", "ssim", "input_psnr", "input_ssim", "floor_psnr"]
    mine = after[after.method == "identity"][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, alone[columns].reset_index(drop=True))
    vandal = after[after.method == "vandal"]  # its own noisy-input column is the input's too
    assert list(vandal.input_psnr) == list(alone.input_psnr)


def test_a_trained_denoiser_leaves_the_callers_image_alone() -> None:
    method = Vandal(_setup())
    image = torch.rand(1, 1, 20, 24)
    kept = image.clone()
    TrainedDenoiser(method, {}, NB2NB)(image)
    assert torch.equal(image, kept)


def _setup():
    from denoise_bench.method import MethodSetup
    from denoise_bench.profiles import get_profile

    return MethodSetup(channels=1, budget=get_profile("smoke"))


class StackPeeker(PerImage):
    """Looks up its call stack for the clean copy of the image it is given and returns it when found."""

    name = "peeker"
    found: list[str] = []

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        for frame in inspect.stack()[1:]:
            for tensor in reachable_tensors(frame.frame.f_locals):
                if tensor.dtype == torch.uint8 and tuple(tensor.shape) == tuple(noisy.shape[1:]):
                    StackPeeker.found.append(frame.function)
                    return tensor.float().div(255).unsqueeze(0).to(noisy.device)
        return noisy.clone()


def test_no_frame_up_a_methods_stack_holds_the_clean_test_image(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(StackPeeker), name="peeker")
    StackPeeker.found = []
    records = _records(tmp_path, "run", ["peeker"])
    assert StackPeeker.found == []
    assert list(records.psnr) == list(records.input_psnr)  # it had nothing but the noisy input


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts a Python loop that never ends."""
    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("shape", [(1, 1, 1, 5), (1, 3, 7, 1), (1, 1, 1, 1)])
def test_an_image_with_a_side_of_one_pixel_cannot_be_padded_and_says_so(shape: tuple[int, ...]) -> None:
    image = torch.rand(shape)
    with deadline(10), pytest.raises(BenchError, match=r"cannot be reflect-padded.*a side of 1 pixel"):
        NB2NB.pad(image, 32, square=True)
    with deadline(10), pytest.raises(BenchError, match="a side of 1 pixel"):
        reflect_pad(image, 3, 3)
    assert torch.equal(NB2NB.pad(image, 1), image)  # no padding asked: nothing to refuse


def test_reflect_padding_still_grows_a_two_pixel_side_past_its_size() -> None:
    image = torch.arange(2.0).view(1, 1, 1, 2).expand(1, 1, 2, 2).contiguous()
    assert NB2NB.pad(image, 32, square=True).shape == (1, 1, 32, 32)


def _png(path: Path, height: int, width: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(height * 100 + width).integers(0, 256, (height, width), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_a_one_pixel_test_image_is_a_named_error_in_bench_run_and_bench_denoise(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Padded), name="padded")
    images = tmp_path / "images"
    _png(images / "normal.png", 40, 48)
    _png(images / "thin.png", 1, 40)
    runner = CliRunner()
    args = ["run", "--methods", "padded", "--noise", GAUSS, "--dataset", str(images), "--dataset-option", "channels=1",
            "--profile", "smoke", "--no-progress", "--out", str(tmp_path / "run")]
    with deadline(60):
        result = runner.invoke(main, args)
    # Refused while the run is timed, before its first job: exit 2, one line, no run folder filled.
    assert result.exit_code == 2, result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("error: ") and "test image 'thin' is 1x40 pixels" in error and "11x11" in error
    assert not (tmp_path / "run" / "jobs.csv").exists()
    skimage = ["run", "--methods", "padded", "--noise", GAUSS, "--profile", "smoke", "--no-progress", "--out",
               str(tmp_path / "skimage")]
    assert runner.invoke(main, skimage).exit_code == 0
    with deadline(60):
        result = runner.invoke(main, ["denoise", str(images / "thin.png"), "--run", str(tmp_path / "skimage"),
                                      "--method", "padded", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") <= 2 and "1x40 image cannot be reflect-padded" in result.output
    assert not (tmp_path / "out" / "thin.png").exists()


@pytest.mark.parametrize("height, width", [(1, 40), (7, 40), (8, 8)])
def test_bm3d_refuses_an_image_smaller_than_its_blocks_by_name(height: int, width: int) -> None:
    """The bm3d package raises a ValueError under one 8x8 block and crashes the process on exactly one."""
    registry = get_registry()
    method = registry.method("bm3d")(_setup())
    info = NoiseInfo(parse_spec("gaussian:sigma=25", registry.noise_families), {"sigma": 25.0})
    with pytest.raises(BenchError, match=f"bm3d: a {height}x{width} image is too small"):
        method.denoise(torch.rand(1, 1, height, width), info)
    assert method.denoise(torch.rand(1, 1, 8, 9), info).shape == (1, 1, 8, 9)


def test_an_isolated_call_computes_under_the_callers_grad_mode_and_thread_count() -> None:
    from denoise_bench.isolation import call_isolated

    def state() -> tuple[bool, int]:
        return torch.is_grad_enabled(), torch.get_num_threads()

    before = torch.get_num_threads()
    changed = 2 if before == 1 else 1
    try:
        call_isolated(state)  # the thread exists before the caller changes its thread count
        torch.set_num_threads(changed)
        with torch.no_grad():
            assert call_isolated(state) == (False, changed)
        assert call_isolated(state) == (True, changed)
        with pytest.raises(ZeroDivisionError):  # an error is raised in the caller
            call_isolated(lambda: 1 / 0)
    finally:
        torch.set_num_threads(before)


class GradientProbe(Median3):
    """Records whether gradients were on when ``denoise`` was called."""

    name = "gradient-probe"
    grad_enabled: ClassVar[list[bool]] = []

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        GradientProbe.grad_enabled.append(torch.is_grad_enabled())
        return super().denoise(noisy, noise)


def test_denoise_runs_under_no_grad_in_bench_run(tmp_path: Path) -> None:
    """The plugin guide promises evaluation under torch.no_grad(): a per-image optimiser must turn it back on."""
    plugins.register_plugin(MethodPlugin(GradientProbe), name="gradient-probe")
    GradientProbe.grad_enabled = []
    result = CliRunner().invoke(main, ["run", "--methods", "gradient-probe", "--noise", GAUSS, "--profile", "smoke",
                                       "--no-progress", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert GradientProbe.grad_enabled and not any(GradientProbe.grad_enabled)


class Bytes(PerImage):
    """Returns its estimate as 8-bit values (0-255), which a float scorer would read on the 0-1 scale."""

    name = "bytes"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return (noisy.clamp(0, 1) * 255).round().to(torch.uint8)


class Elsewhere(PerImage):
    """Returns its estimate on another device than its input's."""

    name = "elsewhere"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        return torch.empty_like(noisy, device="meta")


@pytest.mark.parametrize("method, message", [
    (Bytes, "bytes.denoise returned a uint8 tensor; it must return floating-point values"),
    (Elsewhere, "elsewhere.denoise returned a tensor on meta for an input on cpu"),
])
def test_an_estimate_that_is_no_float_tensor_of_the_inputs_shape_and_device_fails_its_job(
        tmp_path: Path, method: type[Method], message: str) -> None:
    # Scored anyway, the uint8 estimate read as 2.8 dB, and nothing said why.
    plugins.register_plugin(MethodPlugin(Identity, method), name="estimates")
    p = plan(RunRequest(methods=[method.name, "identity"], noises=[GAUSS], datasets=["skimage"], profile="smoke",
                        out=tmp_path / "run", progress=False))
    result = run(p, echo=lambda _: None)
    assert set(result.records.method) == {"identity"}  # the grid went on
    (error,) = result.failed.error
    assert message in error
