"""Zero-Shot Noise2Noise: the pair downsampler, the loss and the schedule against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from denoise_bench.methods.zsn2n import NoisePredictor, lr_factor, pair_downsample, zsn2n_loss


def test_pair_downsample_averages_each_blocks_two_diagonals() -> None:
    image = torch.tensor([[1.0, 2.0, 3.0, 4.0],
                          [5.0, 6.0, 7.0, 8.0],
                          [9.0, 10.0, 11.0, 12.0],
                          [13.0, 14.0, 15.0, 16.0]]).reshape(1, 1, 4, 4)
    anti, diag = pair_downsample(torch.cat([image, 10 * image], dim=1))
    # top-left block [[1, 2], [5, 6]]: anti-diagonal (2 + 5) / 2, diagonal (1 + 6) / 2
    assert anti[0, 0].tolist() == [[3.5, 5.5], [11.5, 13.5]]
    assert diag[0, 0].tolist() == [[3.5, 5.5], [11.5, 13.5]]  # equal here: the ramp is linear
    assert anti[0, 1].tolist() == [[35.0, 55.0], [115.0, 135.0]]  # each channel on its own
    checker = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).reshape(1, 1, 2, 2)
    anti, diag = pair_downsample(checker)
    assert anti.item() == 1.0 and diag.item() == 0.0


def test_pair_downsample_drops_the_odd_last_row_and_column() -> None:
    anti, diag = pair_downsample(torch.rand(1, 3, 7, 5))
    assert anti.shape == diag.shape == (1, 3, 3, 2)


class Constant(nn.Module):
    """f(x) = c everywhere: denoise(y) = y - c."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.c)


def test_loss_is_residual_plus_consistency_by_hand() -> None:
    # y = [[0, 2], [4, 0]]: D1 y = (2 + 4) / 2 = 3, D2 y = (0 + 0) / 2 = 0. With f = c:
    # residual = 1/2 ((3 - c - 0)^2 + (0 - c - 3)^2); the consistency term vanishes, because
    # D(y - c) = D y - c for these averaging kernels.
    y = torch.tensor([[0.0, 2.0], [4.0, 0.0]]).reshape(1, 1, 2, 2)
    for c in (0.0, 0.5, -1.0):
        expected = 0.5 * ((3 - c) ** 2 + (-c - 3) ** 2)
        assert zsn2n_loss(Constant(c), y).item() == pytest.approx(expected)


def test_consistency_term_counts_when_the_network_is_not_shift_invariant() -> None:
    class Scale(nn.Module):  # f(x) = x / 2: denoise(y) = y / 2 at every scale, so consistency is 0 ...
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / 2

    class Square(nn.Module):  # ... but f(x) = x^2 does not commute with averaging
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x**2

    y = torch.tensor([[0.0, 2.0], [4.0, 0.0]]).reshape(1, 1, 2, 2)
    # Scale: estimates 1.5 and 0; residual 1/2 ((1.5 - 0)^2 + (0 - 3)^2)
    assert zsn2n_loss(Scale(), y).item() == pytest.approx(0.5 * (1.5**2 + 3**2))
    # Square: estimates 3 - 9 = -6 and 0; residual 1/2 (36 + 9); full image y - y^2 = [[0, -2], [-12, 0]]
    # halves: anti (-2 - 12) / 2 = -7, diag 0; consistency 1/2 ((-6 + 7)^2 + 0)
    assert zsn2n_loss(Square(), y).item() == pytest.approx(0.5 * (36 + 9) + 0.5 * 1)


def test_network_is_the_notebooks() -> None:
    net = NoisePredictor(3)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(48, 3, 3, 3), (48,), (48, 48, 3, 3), (48,), (3, 48, 1, 1), (3,)]
    assert sum(p.numel() for p in net.parameters()) == 22_275


@pytest.mark.parametrize(("iterations", "halved_at"), [(3000, (1000, 2000)), (300, (100, 200))])
def test_rate_is_halved_at_a_third_and_two_thirds(iterations: int, halved_at: tuple[int, int]) -> None:
    first, second = halved_at
    assert lr_factor(0, iterations) == lr_factor(first - 1, iterations) == 1.0
    assert lr_factor(first, iterations) == lr_factor(second - 1, iterations) == 0.5
    assert lr_factor(second, iterations) == lr_factor(iterations - 1, iterations) == 0.25
