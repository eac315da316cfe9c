"""IDDP's open choices: each option does what it says, and results record every choice."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from denoise_bench.training import make_optimizer
from denoise_bench.errors import BenchError
from denoise_bench.experiment import canonical_options
from denoise_bench.filters import box_filter
from denoise_bench.report.leaderboard_merge import name_experiments, with_experiments
from denoise_bench.method import MethodSetup
from denoise_bench.methods.iddp import IDDP, random_flips
from denoise_bench.nets.unet import UNet
from denoise_bench.nets.unet3 import UNet3
from denoise_bench.profiles import get_profile
from denoise_bench.supervision import NoisyBatch

CPU = get_profile("cpu")  # width 32: the Noise2Grad network's own width


def iddp(budget=CPU, **options: str) -> IDDP:
    return IDDP(MethodSetup(channels=1, budget=budget, seed=0, options=options))


class Recorder(torch.nn.Module):
    """Returns its input and keeps every input it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return 0.5 * x * self.weight + 0.25  # a prior that is not the input, so the re-noised input differs


def conv_weights(net: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]


def test_network_option_builds_the_three_level_noise2grad_unet() -> None:
    five, three = iddp(network="unet"), iddp(network="unet3")
    assert isinstance(five.net, UNet) and isinstance(three.net, UNet3)
    # The Noise2Grad release's denoisenet(feature_num=32) without its noise head: 0.84 M parameters.
    assert sum(p.numel() for p in three.net.parameters()) == 840_193
    assert three.input_multiple == 8 and five.input_multiple == 32
    assert three.net(torch.zeros(1, 1, 40, 24)).shape == (1, 1, 40, 24)
    assert three.state_dict()["net_config"]["kind"] == "unet3"
    with pytest.raises(BenchError, match="network='unet4'"):
        iddp(network="unet4")


@pytest.mark.parametrize("network", ["unet", "unet3"])
def test_init_option_sets_the_named_initialisation(network: str) -> None:
    normal = conv_weights(iddp(network=network, init="normal0.02").net)
    assert all(c.bias.abs().max() == 0 for c in normal)
    assert torch.cat([c.weight.flatten() for c in normal]).std().item() == pytest.approx(0.02, rel=0.02)
    kaiming = conv_weights(iddp(network=network, init="kaiming0.1").net)
    widest = max(kaiming, key=lambda c: c.weight.numel())
    fan_in = widest.weight[0].numel()
    assert widest.weight.std().item() == pytest.approx(0.1 * (2 / fan_in) ** 0.5, rel=0.05)
    assert all(c.bias.abs().max() == 0 for c in kaiming)
    pytorch = conv_weights(iddp(network=network, init="pytorch").net)
    assert any(c.bias.abs().max() > 0 for c in pytorch)  # PyTorch's default draws the biases too
    # The budget's init rule "pytorch" overrides the method's own choice, for every method alike.
    overridden = conv_weights(iddp(budget=CPU.override(init="pytorch"), init="normal0.02").net)
    assert any(c.bias.abs().max() > 0 for c in overridden)
    with pytest.raises(BenchError, match="init='xavier'"):
        iddp(init="xavier")


def test_beta1_option_reaches_adam() -> None:
    assert make_optimizer(iddp(beta1="0.5")).param_groups[0]["betas"] == (0.5, 0.999)
    assert make_optimizer(iddp(beta1="0.9")).param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(BenchError, match="beta1"):
        iddp(beta1="1.0")


def renoised_input(**options: str) -> torch.Tensor:
    method = iddp(**options)
    method.net = Recorder()
    y = torch.linspace(-0.4, 1.4, 2 * 16 * 16).reshape(2, 1, 16, 16)  # noisy values beyond [0, 1]
    torch.manual_seed(0)
    method.training_loss(NoisyBatch(y), 0.0)
    return method.net.inputs[1]  # the second pass takes the re-noised y2


def test_clamp_option_keeps_the_renoised_input_in_the_unit_range() -> None:
    clamped, free = renoised_input(clamp="true"), renoised_input(clamp="false")
    assert free.min() < 0 and free.max() > 1
    assert clamped.min() >= 0 and clamped.max() <= 1
    assert torch.equal(clamped, free.clamp(0, 1))


def test_flips_option_flips_each_training_crop() -> None:
    y = torch.arange(8 * 8 * 8, dtype=torch.float32).reshape(8, 1, 8, 8) / 512  # no symmetry
    seen = []
    for flips in ("true", "false"):
        method = iddp(flips=flips)
        method.net = Recorder()
        torch.manual_seed(3)
        method.training_loss(NoisyBatch(y), 0.0)
        seen.append(method.net.inputs[0])
    flipped, plain = seen
    assert torch.equal(plain, y)
    variants = [lambda t: t, lambda t: t.flip(-2), lambda t: t.flip(-1), lambda t: t.flip(-2).flip(-1)]
    kinds = [next(i for i, v in enumerate(variants) if torch.equal(flipped[n], v(y[n]))) for n in range(len(y))]
    assert len(set(kinds)) > 1  # 8 crops: all alike has probability 4 * 4**-8


def test_random_flips_draws_all_four_flips_evenly() -> None:
    torch.manual_seed(0)
    y = torch.arange(4, dtype=torch.float32).reshape(1, 1, 2, 2).repeat(4000, 1, 1, 1)
    out = random_flips(y)
    counts = torch.stack([(out[:, 0, 0, 0] == v).sum() for v in range(4)]).float()
    assert counts.min() > 900 and counts.max() < 1100  # 1000 expected each, std ~27


def test_blur_kernel_option_sets_the_anchor() -> None:
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for kernel in (3, 5):
        method = iddp(blur_kernel=str(kernel))
        method.net = torch.nn.Identity()  # the consistency term vanishes: only the anchor is left
        loss = method.training_loss(NoisyBatch(y), 0.0)
        assert loss.item() == pytest.approx(0.001 * F.mse_loss(y, box_filter(y, kernel)).item(), rel=1e-6)
    with pytest.raises(BenchError, match="blur_kernel"):
        iddp(blur_kernel="4")


# --- every open choice in the experiment identity ----------------------------------------------

def test_open_choices_are_recorded_even_at_their_defaults() -> None:
    recorded = canonical_options({}, IDDP.options, IDDP.identity_options)
    assert set(dict(p.split("=") for p in recorded.split(","))) == set(IDDP.identity_options)
    assert "stop_gradient" not in recorded  # not an open choice: only written when it differs
    assert "stop_gradient=false" in canonical_options({"stop_gradient": "false"}, IDDP.options, IDDP.identity_options)


def _records(method_options: str | None) -> pd.DataFrame:
    row = {"run_id": "r", "method": "iddp", "supervision": "none", "train_noise": "gaussian:sigma=0-50",
           "test_noise": "gaussian:sigma=25", "dataset": "bsd68", "image": "a", "repeat": 0, "psnr": 25.0,
           "ssim": 0.7, "input_psnr": 20.0, "input_ssim": 0.4, "iterations": 10}
    if method_options is not None:
        row["method_options"] = method_options
    return pd.DataFrame([row])


def test_results_from_before_the_open_choices_were_recorded_keep_their_old_defaults() -> None:
    today = canonical_options({}, IDDP.options, IDDP.identity_options)
    old = with_experiments(_records(""), None)  # a record made when "" meant the former defaults
    new = with_experiments(_records(today), None)
    assert old.experiment.iloc[0] != new.experiment.iloc[0]
    assert name_experiments(new).method.iloc[0] == "iddp"
    # The probe moved network, init, beta1 and clamp from Neighbor2Neighbor's conventions to Noise2Grad's.
    assert name_experiments(old).method.iloc[0] == "iddp [beta1=0.9,clamp=false,init=kaiming0.1,network=unet]"
    # An old record's explicit option survives the upgrade beside the filled-in former defaults.
    upgraded = with_experiments(_records("stop_gradient=false"), None).method_options.iloc[0]
    assert "stop_gradient=false" in upgraded and "beta1=0.9" in upgraded
