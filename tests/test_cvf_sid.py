"""CVF-SID: the network, the noise-level target and the loss against hand-computed values; the oracle and
the transductive fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from denoise_bench.errors import BenchError
from denoise_bench.experiment import canonical_options
from denoise_bench.method import MethodSetup, NoiseInfo, TrainContext, TrainingInfo
from denoise_bench.methods.unet import SupervisedUNet
from denoise_bench.methods.cvf_sid import (PAD, CVFSID, CVFSIDOracle, cvf_loss, noise_level, pad, repad,
                                           window_std_target)
from denoise_bench.nets.cvf import CVFNet
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import Budget
from denoise_bench.supervision import NoisePolicy, Supervision, build_view
from denoise_bench.training import make_optimizer


def _official_std(noisy: np.ndarray) -> np.ndarray:
    """The official data.py process_image on one (H, W, C) image in [0, 1]: its loop, written out."""
    stds = []
    for h in range(3, noisy.shape[0] - 3):
        for w in range(3, noisy.shape[1] - 3):
            stds.append(np.std(noisy[h - 3:h + 3, w - 3:w + 3, :].reshape(36, -1), axis=0))
    return np.mean(stds, axis=0)


def test_noise_level_target_is_the_official_window_std() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((17, 13, 3))
    ours = window_std_target(torch.from_numpy(image).permute(2, 0, 1)[None])
    assert ours[0].numpy() == pytest.approx(_official_std(image), rel=1e-6)


def test_noise_level_estimate_by_hand() -> None:
    # a constant clean part 0.5 and noise maps of known std: sigma_hat^2 = 0.5^2 * var_w + var_b
    clean = torch.full((1, 1, 8, 8), 0.5)
    noise_w = torch.tensor([1.0, -1.0]).repeat(32).reshape(1, 1, 8, 8)
    noise_b = 2 * noise_w
    var_w = noise_w.flatten().var().item()  # unbiased, as torch.std in the official loss
    # avg_pool2d with padding counts the zero padding: the border of the blurred constant is below 0.5
    blurred = torch.nn.functional.avg_pool2d(clean, 6, stride=1, padding=3)
    signal = (blurred**2).mean().item()
    expected = (signal * var_w + 4 * var_w) ** 0.5
    assert noise_level(clean, noise_w, noise_b, 1.0).item() == pytest.approx(expected)


class CleanIsInput(nn.Module):
    """f(x) = (0, 0, x): everything is clean."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.zeros_like(x), torch.zeros_like(x), x


def test_loss_of_the_all_clean_split_is_the_noise_level_term_alone() -> None:
    # With f(x) = (0, 0, x) every cyclic term vanishes (repad(pad(p)) == pad(p), zero noise maps) and
    # sigma_hat = 0, so the loss is mse(0, std) = mean(std^2).
    torch.manual_seed(0)
    patches = torch.rand(2, 3, 40, 40)
    std = window_std_target(patches)
    padded = pad(patches)
    assert torch.equal(repad(padded), padded)
    assert cvf_loss(CleanIsInput(), padded, std).item() == pytest.approx((std**2).mean().item())


def test_network_is_the_official_size_with_zero_mean_noise_maps() -> None:
    net = CVFNet(3)
    assert sum(p.numel() for p in net.parameters()) == 1_185_865  # 1.19M, as the official model
    noise_w, noise_b, clean = net(torch.rand(2, 3, 24, 24))
    assert clean.shape == noise_w.shape == noise_b.shape == (2, 3, 24, 24)
    assert noise_w.mean(dim=(-2, -1)).abs().max() < 1e-6 and noise_b.mean(dim=(-2, -1)).abs().max() < 1e-6


def test_padding_is_twenty_pixels_of_reflection() -> None:
    patch = torch.arange(40.0 * 40).reshape(1, 1, 40, 40)
    padded = pad(patch)
    assert padded.shape[-1] == 40 + 2 * PAD
    assert torch.equal(padded[..., PAD, PAD - 1], patch[..., 0, 1])  # reflect: the edge is not repeated


class HalfOfInput(nn.Module):
    """f(x) = (0, 0, x / 2): a clean part half the input, no noise."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.zeros_like(x), torch.zeros_like(x), x / 2


def test_loss_weights_of_the_cyclic_and_augmentation_terms() -> None:
    # c = x/2 and f(c) = f(c + c*w) = f(each augmentation) = x/4: with m2 = mean(x^2),
    # L1 = mse(x/2, x) = m2/4, L2 = L5 = mse(x/4, x/2) = m2/16, the seven augmentations m2/16 each at 0.1,
    # every noise term 0 and L10 = mean(std^2) (sigma_hat = 0).
    torch.manual_seed(1)
    patches = torch.rand(2, 1, 24, 24)
    padded, std = pad(patches), window_std_target(patches)
    m2 = (padded**2).mean().item()
    expected = m2 / 4 + 2 * m2 / 16 + 0.1 * 7 * m2 / 16 + (std**2).mean().item()
    assert cvf_loss(HalfOfInput(), padded, std).item() == pytest.approx(expected, rel=1e-5)


class AllIndependentNoise(nn.Module):
    """f(x) = (0, x, 0): everything is signal-independent noise."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.zeros_like(x), x, torch.zeros_like(x)


class AllDependentNoise(nn.Module):
    """f(x) = (x - 1, 0, 1): a clean part of ones and the rest signal-dependent noise (c + c*w = x)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return x - 1, torch.zeros_like(x), torch.ones_like(x)


def _std(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).std(dim=-1)


def test_signal_independent_parts_split_back_with_their_signs() -> None:
    # Every recombination c +- b splits back into (0, +-b, 0), which is what each augmentation asks, so
    # only L10 is left: sigma_hat = std(b) = std(x). A wrong sign in an augmentation's target would add 4 mean(x^2) / 10.
    torch.manual_seed(2)
    patches = torch.rand(2, 3, 24, 24)
    padded, std = pad(patches), window_std_target(patches)
    expected = ((_std(padded) - std) ** 2).mean().item()
    assert cvf_loss(AllIndependentNoise(), padded, std).item() == pytest.approx(expected, rel=1e-5)


def test_signal_dependent_parts_split_back_with_their_signs() -> None:
    # f(x) = (x - 1, 0, 1): every cyclic and augmentation term vanishes (1 +- c*w splits back into
    # (+-w, 0, 1)) except L6, f(b = 0) whose clean part 1 should be 0 (= 1), and L10 with
    # sigma_hat = sqrt(mean(avgpool6(1)^2)) std(x - 1); the pooled border counts the zero padding.
    torch.manual_seed(3)
    patches = torch.rand(2, 1, 24, 24)
    padded, std = pad(patches), window_std_target(patches)
    signal = (torch.nn.functional.avg_pool2d(torch.ones_like(padded), 6, stride=1, padding=3) ** 2).flatten(2).mean(-1)
    expected = 1.0 + ((signal.sqrt() * _std(padded) - std) ** 2).mean().item()
    assert cvf_loss(AllDependentNoise(), padded, std).item() == pytest.approx(expected, rel=1e-5)


class Recording(nn.Module):
    """A small CVFNet that records every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.net = CVFNet(1, width=4)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.inputs.append(x)
        return self.net(x)


def test_eleven_passes_on_the_official_recombinations_with_gradients_through_all() -> None:
    patches = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(5))
    net = Recording()
    cvf_loss(net, pad(patches), window_std_target(patches))
    assert len(net.inputs) == 11
    assert all(x.requires_grad for x in net.inputs[1:])  # every pass after the first is fed by the first's parts
    w, b, c = net.net(pad(patches))
    cw = c * w
    official = [c, c + cw, b, c + cw - b, c - cw + b, c - cw - b, c + b, c - b, c - cw, c + cw + b]  # trainer.py's order
    for given, expected in zip(net.inputs[1:], official):
        assert torch.allclose(given, repad(expected), atol=1e-6)


def _setup(options: dict[str, str], noise: str = "gaussian:sigma=25", iterations: int = 2) -> MethodSetup:
    budget = Budget(iterations=iterations, batch_size=1, crop_size=24, width=8, test_images=1, test_crop=None,
                    per_image_iterations=1)
    return MethodSetup(channels=1, budget=budget, options={"width": "4", **options},
                       training=TrainingInfo(noise=parse_spec(noise, get_registry().noise_families)))


def _trained(method: CVFSID, noise: str = "gaussian:sigma=25") -> CVFSID:
    images = [torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))]
    spec = parse_spec(noise, get_registry().noise_families)
    method.fit(build_view(Supervision.NONE, images, spec, NoisePolicy.FRESH, torch.device("cpu"), 0), TrainContext())
    return method


def test_oracle_target_is_the_true_sigma_of_the_training_noise() -> None:
    oracle = _trained(CVFSIDOracle(_setup({})))
    target = oracle.noise_level_target(torch.rand(3, 1, 24, 24))
    assert target.shape == (3, 1) and torch.allclose(target, torch.full((3, 1), 25 / 255))
    assert CVFSIDOracle.uses_noise_level and not CVFSID.uses_noise_level  # the oracle is marked on tables


def test_oracle_refuses_a_training_range_whose_drawn_levels_it_cannot_know() -> None:
    with pytest.raises(BenchError, match="gaussian:sigma=0-50, a range.*transductive=true"):
        _trained(CVFSIDOracle(_setup({}, noise="gaussian:sigma=0-50")), noise="gaussian:sigma=0-50")


def test_transductive_oracle_takes_each_test_image_s_own_level() -> None:
    spec = parse_spec("gaussian:sigma=0-50", get_registry().noise_families)
    oracle = CVFSIDOracle(_setup({"transductive": "true"}, noise="gaussian:sigma=0-50"))
    noisy = torch.rand(1, 1, 32, 32)
    oracle.denoise(noisy, NoiseInfo(spec, {"sigma": 10.0}))
    assert torch.allclose(oracle.noise_level_target(noisy), torch.tensor([[10 / 255]]))


def test_transductive_fit_ignores_the_training_set_and_fits_each_test_image() -> None:
    method = CVFSID(_setup({"transductive": "true"}))
    before = {k: v.clone() for k, v in method.net.state_dict().items()}
    _trained(method)
    assert all(torch.equal(before[k], v) for k, v in method.net.state_dict().items())  # the training split: untouched
    noisy = torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(7))
    first = method.denoise(noisy)
    assert not all(torch.equal(before[k], v) for k, v in method.net.state_dict().items())  # fitted to the test image
    assert torch.equal(first, method.denoise(noisy))  # each fit starts afresh from the seed: same image, same estimate
    assert torch.equal(first, CVFSID(_setup({"transductive": "true"})).denoise(noisy))


def test_transductive_is_written_into_every_result_s_identity() -> None:
    assert canonical_options({}, CVFSID.options, CVFSID.identity_options) == "transductive=false"
    assert canonical_options({"transductive": "true"}, CVFSID.options, CVFSID.identity_options) == "transductive=true"


@pytest.mark.parametrize("rule, rate", [("official", 1e-4), ("warmup-cosine", 1e-4 * 3.3)])
def test_training_loop_builds_the_official_amsgrad_adam(rule: str, rate: float) -> None:
    # The official trainer's optimiser: Adam(lr=1e-4, weight_decay=1e-9, amsgrad=True); the short-budget
    # rule scales only the rate. (An override of a hook the loop no longer called once left this plain Adam.)
    setup = _setup({})
    setup = MethodSetup(channels=1, budget=setup.budget.override(lr_rule=rule, lr_scale=3.3), options=setup.options,
                        training=setup.training)
    group = make_optimizer(CVFSID(setup)).param_groups[0]
    assert group["amsgrad"] is True
    assert group["weight_decay"] == 1e-9 and group["lr"] == pytest.approx(rate)


def test_other_network_methods_keep_plain_adam() -> None:
    setup = MethodSetup(channels=1, budget=_setup({}).budget, options={}, training=_setup({}).training)
    assert make_optimizer(SupervisedUNet(setup)).param_groups[0]["amsgrad"] is False
