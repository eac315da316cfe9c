"""Engine switches (precision, layout, compilation) and their CPU fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from denoise_bench.cli.commands import main
from denoise_bench.engine import Engine, bf16_matrix_flags, cpu_flags, resolve_engine
from denoise_bench.environment import cpu_model
from denoise_bench.errors import BenchError
from denoise_bench.method import MethodSetup, TrainContext
from denoise_bench.methods.n2n import Noise2Noise
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import Budget
from denoise_bench.supervision import NoisePolicy, Supervision, build_view

CPU = torch.device("cpu")
BUDGET = Budget(iterations=3, batch_size=2, crop_size=32, width=8, test_images=1, test_crop=None, per_image_iterations=1)


def _trained(method_cls: type[NetworkMethod], engine: Engine) -> NetworkMethod:
    """Three training steps from seed 0 on gray crops of one photograph."""
    import skimage.data

    method = method_cls(MethodSetup(channels=1, budget=BUDGET, device=CPU, engine=engine))
    image = torch.from_numpy(skimage.data.camera()[:128, :128].copy()).unsqueeze(0)
    spec = parse_spec("gaussian:sigma=25", get_registry().noise_families)
    view = build_view(Supervision(method.supervision), [image], spec, NoisePolicy.FRESH, CPU, seed=0)
    method.fit(view, TrainContext())
    return method


def _max_weight_change(a: NetworkMethod, b: NetworkMethod) -> float:
    return max(float((x - y).detach().abs().max()) for x, y in zip(a.net.parameters(), b.net.parameters()))


def _steps_taken(method: NetworkMethod) -> float:
    fresh = type(method)(MethodSetup(channels=1, budget=BUDGET, device=CPU))
    return _max_weight_change(method, fresh)


def _update(method: NetworkMethod) -> torch.Tensor:
    """All weights' change from their seeded initial values, as one vector."""
    fresh = type(method)(MethodSetup(channels=1, budget=BUDGET, device=CPU))
    return torch.cat([(p - q).detach().flatten() for p, q in zip(method.net.parameters(), fresh.net.parameters())])


def test_the_default_engine_is_plain_fp32_eager() -> None:
    engine = Engine()
    assert (engine.precision, engine.channels_last, engine.compile) == ("fp32", False, "off")


@pytest.mark.parametrize("values,message", [
    ({"precision": "fp16"}, "unknown precision 'fp16'; valid: fp32, bf16"),
    ({"compile": "fast"}, "unknown compile mode 'fast'; valid: off, default, reduce-overhead, max-autotune"),
])
def test_unknown_engine_values_are_named(values: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        Engine(**values)


def test_cuda_graphs_fall_back_to_plain_compilation_off_cuda() -> None:
    engine = Engine(compile="reduce-overhead")
    assert engine.compile_mode(CPU) == "default" and not engine.uses_cuda_graphs(CPU)
    assert engine.compile_mode(torch.device("cuda")) == "reduce-overhead"
    assert Engine(compile="off").compile_mode(torch.device("cuda")) == "off"


def test_channels_last_trains_the_same_network() -> None:
    plain, nhwc = _trained(Noise2Noise, Engine()), _trained(Noise2Noise, Engine(channels_last=True))
    assert _steps_taken(plain) > 1e-4  # training moved the weights ...
    assert _max_weight_change(plain, nhwc) < 1e-5  # ... and the layout did not change where to
    # Its checkpoint loads into a network in the default layout.
    fresh = Noise2Noise(MethodSetup(channels=1, budget=BUDGET, device=CPU))
    fresh.load_state_dict(nhwc.state_dict())
    assert _max_weight_change(fresh, nhwc) == 0


def test_bf16_autocast_runs_on_cpu_keeps_fp32_weights_and_stays_close_to_fp32() -> None:
    full, half = _trained(Noise2Noise, Engine()), _trained(Noise2Noise, Engine(precision="bf16"))
    assert all(p.dtype == torch.float32 for p in half.net.parameters())
    assert _max_weight_change(full, half) > 0  # autocast really ran in bf16 ...
    # ... and the three steps moved the weights as fp32 did, to 4 % of the update (measured); Adam's
    # per-weight normalisation makes tiny gradients sign-sensitive, hence a relative L2 bound.
    update_full, update_half = _update(full), _update(half)
    assert float((update_full - update_half).norm() / update_full.norm()) < 0.15


class SmallNoise2Noise(Noise2Noise):
    """Noise2Noise on a two-layer network: the same engine path, compiled by inductor in seconds
    instead of the U-Net's minute on a small CPU."""

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(8, 1, 3, padding=1))


def test_compiled_training_matches_eager_and_leaves_an_eager_network() -> None:
    """torch.compile of the training forward on CPU (inductor); reduce-overhead falls back to it here."""
    seen: list[object] = []

    class Spied(SmallNoise2Noise):
        def training_loss(self, batch, progress):  # records what the network's forward is at each step
            seen.append(getattr(vars(self.net).get("forward"), "_torchdynamo_orig_callable", None))
            return super().training_loss(batch, progress)

    eager = _trained(SmallNoise2Noise, Engine())
    compiled = _trained(Spied, Engine(compile="reduce-overhead"))
    assert len(seen) == 3 and all(callable(f) for f in seen)  # every step ran torch.compile's forward
    assert _steps_taken(eager) > 1e-4
    assert _max_weight_change(eager, compiled) < 1e-5
    assert "forward" not in vars(compiled.net)  # evaluation of whole images of any size runs eagerly
    y = torch.rand(1, 1, 40, 56)
    assert torch.allclose(eager.denoise(y), compiled.denoise(y), atol=1e-5)


def test_engine_flags_reach_the_run_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "n2n", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                                       "--iterations", "2", "--test-images", "1", "--precision", "bf16",
                                       "--channels-last", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["engine"] == {"precision": "bf16", "channels_last": True, "compile": "off"}
    bad = CliRunner().invoke(main, ["run", "--precision", "fp8"])
    assert bad.exit_code == 2 and "'fp8' is not one of 'auto', 'fp32', 'bf16'" in bad.output


AMX = frozenset({"avx512f", "amx_tile", "amx_bf16", "avx512_bf16"})
EPYC = frozenset({"avx2", "fma", "sse4_2"})


@pytest.mark.parametrize("flags,device,expected", [
    (AMX, "cpu", ("bf16", True)),
    (frozenset({"avx512f", "avx512_bf16"}), "cpu", ("fp32", False)),  # measured slower in bf16 without AMX
    (EPYC, "cpu", ("fp32", False)),
    (frozenset(), "cpu", ("fp32", False)),  # no /proc/cpuinfo: the safe choice
    (AMX, "cuda", ("fp32", False)),  # CUDA keeps fp32 until scripts/gpu-report has measured bf16
])
def test_auto_precision_picks_bf16_only_on_cpus_with_amx(flags: frozenset[str], device: str,
                                                         expected: tuple[str, bool]) -> None:
    engine = resolve_engine("auto", device=torch.device(device), flags=flags)
    assert (engine.precision, engine.channels_last, engine.compile) == (*expected, "off")
    if device == "cpu":  # environment.json records these flags as the reason for the choice
        assert (engine.precision == "bf16") == ("amx_bf16" in bf16_matrix_flags(flags))


def test_explicit_engine_switches_win_over_auto() -> None:
    assert resolve_engine("auto", channels_last=False, device=CPU, flags=AMX) == Engine("bf16", False)
    assert resolve_engine("fp32", device=CPU, flags=AMX) == Engine("fp32", False)
    assert resolve_engine("bf16", channels_last=True, device=CPU, flags=EPYC) == Engine("bf16", True)
    with pytest.raises(BenchError, match="unknown precision 'fp8'; valid: auto, fp32, bf16"):
        resolve_engine("fp8", device=CPU)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu sse amx_bf16 avx512_bf16\n")
    assert {"amx_bf16", "avx512_bf16"} <= cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert cpu_model(cpuinfo) == "Xeon"  # recorded in environment.json beside the flags auto read


def test_the_run_records_the_engine_auto_chose(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "n2n", "--noise", "gaussian:sigma=25", "--profile", "smoke",
                                       "--iterations", "2", "--test-images", "1", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    expected = resolve_engine("auto", device=CPU)
    assert config["request"]["engine"]["precision"] == "auto"
    assert config["engine"] == expected.as_dict()


def test_training_leaves_the_weights_in_the_default_layout() -> None:
    """Evaluation straight after channels-last training computes what a loaded checkpoint computes."""
    method = _trained(Noise2Noise, Engine(channels_last=True))
    assert all(p.is_contiguous() for p in method.net.parameters())
