"""Neighbor2Neighbor and Blind2Unblind: the sub-sampler, the mask mapper, the losses and schedules."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from denoise_bench.training import make_optimizer
from denoise_bench.errors import BenchError
from denoise_bench.method import MethodSetup
from denoise_bench.methods.b2u import Blind2Unblind, cell_masks, gather_blind_spot, masked_inputs
from denoise_bench.methods.nb2nb import Neighbor2Neighbor, sample_neighbour_pairs, subsample
from denoise_bench.nets.unet import UNet
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import get_profile
from denoise_bench.supervision import NoisyBatch
from helpers import SALT

SMOKE = get_profile("smoke")
# Ordered pairs of horizontally or vertically adjacent positions in a row-major 2x2 cell.
FOUR_NEIGHBOUR_PAIRS = {(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)}


def setup(channels: int = 1, **options: str) -> MethodSetup:
    return MethodSetup(channels=channels, budget=SMOKE, seed=0, options=options)


class Recording(nn.Module):
    """A small convolution (any input size) that records, per call, the input shape and grad mode."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.calls: list[tuple[tuple[int, ...], bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((tuple(x.shape), torch.is_grad_enabled()))
        return self.conv(x)


def _gradients(loss: torch.Tensor, net: nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(net.parameters())))


# --- Neighbor2Neighbor: the random neighbour sub-sampler -----------------------------------------

def test_each_sub_image_takes_one_pixel_of_a_4_neighbour_pair_per_cell() -> None:
    n, c, h, w = 3, 3, 16, 24
    # Every value encodes its own (image, channel, row, column), exactly representable in float64.
    y = torch.arange(n * c * h * w, dtype=torch.float64).view(n, c, h, w)
    first, second = sample_neighbour_pairs(y)
    picks = []
    for positions in (first, second):
        code = subsample(y, positions).long()
        image, rest = code // (c * h * w), code % (c * h * w)
        channel, row, col = rest // (h * w), rest % (h * w) // w, rest % w
        assert torch.equal(image, torch.arange(n).view(n, 1, 1, 1).expand(n, c, h // 2, w // 2))
        assert torch.equal(channel, torch.arange(c).view(1, c, 1, 1).expand(n, c, h // 2, w // 2))
        # inside its own 2x2 cell, at the same place for every channel
        assert torch.equal(row // 2, torch.arange(h // 2).view(1, 1, -1, 1).expand_as(row))
        assert torch.equal(col // 2, torch.arange(w // 2).view(1, 1, 1, -1).expand_as(col))
        assert (row == row[:, :1]).all() and (col == col[:, :1]).all()
        assert torch.equal((row % 2) * 2 + col % 2, positions[:, None].expand_as(row))
        picks.append((row, col))
    (r1, c1), (r2, c2) = picks
    assert ((r1 - r2).abs() + (c1 - c2).abs() == 1).all()  # distinct 4-neighbours, never diagonal


def test_all_eight_ordered_pairs_are_equally_likely_and_redrawn() -> None:
    y = torch.zeros(4, 1, 256, 256)
    first, second = sample_neighbour_pairs(y)
    counts = Counter(zip(first.flatten().tolist(), second.flatten().tolist()))
    assert set(counts) == FOUR_NEIGHBOUR_PAIRS
    expected = first.numel() / 8  # 8192 per pair; binomial std ~85
    assert all(abs(k - expected) < 0.05 * expected for k in counts.values()), counts
    again, _ = sample_neighbour_pairs(y)
    assert not torch.equal(first, again)  # redrawn every call
    assert not torch.equal(first[0], first[1])  # drawn per image


def test_sub_sampler_refuses_odd_sides() -> None:
    with pytest.raises(ValueError, match="even"):
        sample_neighbour_pairs(torch.zeros(1, 1, 8, 7))


# --- Neighbor2Neighbor: loss and schedule --------------------------------------------------------

def _hand_subsample(y: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """g(y) by explicit row/column indexing: position p of cell (i, j) is pixel (2i + p // 2, 2j + p % 2)."""
    _, _, h, w = y.shape
    rows = 2 * torch.arange(h // 2).view(-1, 1) + positions // 2
    cols = 2 * torch.arange(w // 2).view(1, -1) + positions % 2
    return torch.stack([y[i][:, rows[i], cols[i]] for i in range(y.shape[0])])


def test_nb2nb_loss_matches_the_formula_and_f_of_y_gets_no_gradient() -> None:
    method = Neighbor2Neighbor(setup(channels=2))
    net = method.net = Recording(2)
    y = torch.rand(2, 2, 8, 12, generator=torch.Generator().manual_seed(1))
    progress = 0.505  # epoch 51 of 100: gamma = 0.51 * 2
    torch.manual_seed(7)
    loss = method.training_loss(NoisyBatch(y), progress)
    assert net.calls == [((2, 2, 8, 12), False), ((2, 2, 4, 6), True)]  # full-res f(y) under no_grad

    torch.manual_seed(7)  # the same pair draw
    first, second = sample_neighbour_pairs(y)
    estimate = net(y).detach()
    diff = net(_hand_subsample(y, first)) - _hand_subsample(y, second)
    gap = _hand_subsample(estimate, first) - _hand_subsample(estimate, second)
    expected = (diff**2).mean() + 1.02 * ((diff - gap) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for got, want in zip(_gradients(loss, net), _gradients(expected, net)):
        torch.testing.assert_close(got, want)


def test_nb2nb_gamma_ramps_per_epoch_to_the_increase_ratio() -> None:
    method = Neighbor2Neighbor(setup())
    assert method.gamma(0.0) == pytest.approx(0.02)  # epoch 1 of 100
    assert method.gamma(0.2999) == pytest.approx(0.60)
    assert method.gamma(0.3) == pytest.approx(0.62)
    assert method.gamma(0.999) == pytest.approx(2.0)  # last epoch
    assert Neighbor2Neighbor(setup(increase_ratio="8")).gamma(0.999) == pytest.approx(8.0)
    steps = [method.gamma(s / 300) for s in range(300)]
    assert steps == sorted(steps)


def test_nb2nb_needs_network_inputs_the_unet_takes() -> None:
    with pytest.raises(BenchError, match="multiple of 32, got 48"):
        Neighbor2Neighbor(MethodSetup(channels=1, budget=SMOKE.override(crop_size=48)))
    Neighbor2Neighbor(MethodSetup(channels=1, budget=SMOKE.override(crop_size=96)))  # 192x192 crops, 96x96 inputs


# --- Blind2Unblind: the global-aware mask mapper -------------------------------------------------

def _neighbour_average(y: torch.Tensor) -> torch.Tensor:
    """The 8 neighbours weighted [[.5, 1, .5], [1, 0, 1], [.5, 1, .5]] / 6, zeros outside, by shifts."""
    _, _, h, w = y.shape
    padded = F.pad(y, (1, 1, 1, 1))
    total = torch.zeros_like(y)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            weight = 0.0 if di == dj == 0 else (0.5 if di and dj else 1.0)
            total += weight * padded[:, :, 1 + di:1 + di + h, 1 + dj:1 + dj + w]
    return total / 6


def test_sixteen_masks_cover_every_pixel_once_at_a_fixed_cell_position() -> None:
    masks = cell_masks(12, 20)
    assert masks.shape == (16, 12, 20) and masks.dtype == torch.bool
    assert (masks.sum(dim=0) == 1).all()
    rows, cols = torch.meshgrid(torch.arange(12), torch.arange(20), indexing="ij")
    for k in range(16):
        assert torch.equal(masks[k], (rows % 4 == k // 4) & (cols % 4 == k % 4))


def test_masked_input_hides_the_masked_pixel_behind_its_neighbour_average() -> None:
    y = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    masks = cell_masks(16, 16)
    omega = masked_inputs(y, masks).view(2, 16, 3, 16, 16)
    average = _neighbour_average(y)
    for k in range(16):
        m = masks[k].expand(2, 3, 16, 16)
        torch.testing.assert_close(omega[:, k][m], average[m])
        torch.testing.assert_close(omega[:, k][~m], y[~m])

    p = (5, 6)  # position 1 * 4 + 2 of its cell: hidden by mask 6
    bumped = y.clone()
    bumped[0, 1, p[0], p[1]] += 10.0
    omega2 = masked_inputs(bumped, masks).view(2, 16, 3, 16, 16)
    assert omega2[0, 6, 1, p[0], p[1]] == omega[0, 6, 1, p[0], p[1]]
    assert omega2[0, 5, 1, p[0], p[1]] != omega[0, 5, 1, p[0], p[1]]  # visible in the other inputs
    assert torch.equal(omega2[0, :, [0, 2]], omega[0, :, [0, 2]])  # per channel
    assert torch.equal(omega2[1], omega[1])  # per image


def test_blind_spot_prediction_of_a_pixel_ignores_that_pixel() -> None:
    torch.manual_seed(0)
    net = UNet(1, 1, 8, upsample="nearest", slope=0.1, ne2ne_init=False).eval()
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    bumped = y.clone()
    bumped[0, 0, 13, 18] += 5.0
    masks = cell_masks(32, 32)
    with torch.no_grad():
        blind, blind2 = (gather_blind_spot(net(masked_inputs(v, masks)), masks) for v in (y, bumped))
        visible, visible2 = net(y), net(bumped)
    assert torch.allclose(blind2[0, 0, 13, 18], blind[0, 0, 13, 18], atol=1e-6)
    assert (blind2[0, 0, 12:15, 17:20] - blind[0, 0, 12:15, 17:20]).abs().max() > 1e-3  # the neighbours see it
    assert abs(visible2[0, 0, 13, 18] - visible[0, 0, 13, 18]) > 1e-3  # the visible output does


# --- Blind2Unblind: loss and schedule -------------------------------------------------------------

def test_b2u_loss_matches_the_formula_and_f_of_y_gets_no_gradient() -> None:
    method = Blind2Unblind(setup(channels=2, eta="0.5"))
    net = method.net = Recording(2)
    y = torch.rand(2, 2, 8, 12, generator=torch.Generator().manual_seed(1))
    loss = method.training_loss(NoisyBatch(y), 0.9)  # epoch 91: lambda = 2 + (0.91 - 0.4) * 18 / 0.6
    assert net.calls == [((32, 2, 8, 12), True), ((2, 2, 8, 12), False)]  # one masked pass, visible under no_grad

    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(12), indexing="ij")
    average = _neighbour_average(y)
    blind = torch.zeros_like(y)
    for k in range(16):
        hidden = (rows % 4 == k // 4) & (cols % 4 == k % 4)
        blind = blind + torch.where(hidden, net(torch.where(hidden, average, y)), 0.0)
    diff = blind - y
    exp_diff = net(y).detach() - y
    expected = 0.5 * (diff**2).mean() + ((diff + 17.3 * exp_diff) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for got, want in zip(_gradients(loss, net), _gradients(expected, net)):
        torch.testing.assert_close(got, want)


def test_b2u_lambda_holds_until_t1_then_ramps_to_the_end_value() -> None:
    method = Blind2Unblind(setup())  # no training noise known: the range value, 0.4
    assert method.lam(0.0) == method.lam(0.3999) == 2.0  # epochs 1..40: t <= 0.4
    assert method.lam(0.4) == pytest.approx(2.3)  # epoch 41
    assert method.lam(0.999) == pytest.approx(20.0)
    fixed_level = Blind2Unblind(setup(t1="0.8"))
    assert fixed_level.lam(0.7999) == 2.0
    assert fixed_level.lam(0.9) == pytest.approx(2 + 0.11 * 18 / 0.2)
    assert fixed_level.lam(0.999) == pytest.approx(20.0)
    with pytest.raises(BenchError, match="t1 is 'auto' or a fraction"):
        Blind2Unblind(setup(t1="1.5"))
    with pytest.raises(BenchError, match="t1 is 'auto' or a fraction"):
        Blind2Unblind(setup(t1="soon"))


# --- settings and registration --------------------------------------------------------------------

def test_official_network_and_optimiser_settings() -> None:
    nb2nb, b2u = Neighbor2Neighbor(setup()), Blind2Unblind(setup())
    assert (nb2nb.net.config["upsample"], nb2nb.net.config["slope"]) == ("deconv", 0.2)
    assert (b2u.net.config["upsample"], b2u.net.config["slope"]) == ("nearest", 0.1)
    # Neighbor2Neighbor's scaled Kaiming init zeroes the biases; Blind2Unblind keeps PyTorch's default.
    assert not nb2nb.net.enc0.bias.any() and b2u.net.enc0.bias.abs().sum() > 0
    for method, decay in ((nb2nb, 0.0), (b2u, 1e-8)):
        group = make_optimizer(method).param_groups[0]
        assert (group["lr"], group["weight_decay"]) == (3e-4, decay)
        assert [method.lr_factor(t) for t in (0.0, 0.2, 0.99)] == [1, 0.5, 0.0625]
    assert nb2nb.official_budget == {"iterations": 1_108_200, "batch_size": 4, "crop_size": 128}  # 256x256 crops
    assert b2u.official_budget == {"iterations": 1_108_200, "batch_size": 4, "crop_size": 128}


def test_both_are_registered_and_refuse_noise_that_is_not_zero_mean() -> None:
    methods = get_registry().methods
    assert methods["nb2nb"] is Neighbor2Neighbor and methods["b2u"] is Blind2Unblind
    for cls in (Neighbor2Neighbor, Blind2Unblind):
        assert "zero-mean" in cls.incompatibility(SALT)
        assert cls.incompatibility(get_registry().noise_families["poisson"]) is None
