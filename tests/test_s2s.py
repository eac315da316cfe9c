"""Self2Self: its masked loss, flips, partial convolution and prediction against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from denoise_bench.methods.s2s import bernoulli_mask, flip, masked_loss, predict
from denoise_bench.nets.punet import PartialConv, PUNet


def test_loss_counts_the_dropped_elements_only() -> None:
    output = torch.tensor([1.0, 2.0, 3.0, 4.0])
    target = torch.tensor([0.0, 0.0, 0.0, 0.0])
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])  # elements 1 and 3 were dropped
    assert masked_loss(output, target, mask).item() == pytest.approx((2.0**2 + 4.0**2) / 2)


def test_flip_is_its_own_inverse_and_flips_the_named_axes() -> None:
    image = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert flip(image, True, False)[0, 0, 0].tolist() == [2.0, 1.0, 0.0]
    assert flip(image, False, True)[0, 0, 0].tolist() == [3.0, 4.0, 5.0]
    for flips in [(False, False), (True, False), (False, True), (True, True)]:
        assert torch.equal(flip(flip(image, *flips), *flips), image)


def test_mask_is_per_element_with_the_keep_probability() -> None:
    torch.manual_seed(0)
    mask = bernoulli_mask(torch.zeros(1, 3, 200, 200), 0.7)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask.mean().item() == pytest.approx(0.7, abs=0.005)
    assert not torch.equal(mask[:, 0], mask[:, 1])  # channels drawn independently


def _ones_conv(in_channels: int, normalisation: str) -> PartialConv:
    conv = PartialConv(in_channels, 1, normalisation)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    return conv


def test_partial_conv_official_ratio_is_one_over_the_input_channels_in_the_interior() -> None:
    # All-ones image, full mask, 3 channels: the convolution sums 27 ones; official ratio 9/27, NVIDIA's 27/27.
    x, mask = torch.ones(1, 3, 5, 5), torch.ones(1, 3, 5, 5)
    out, new_mask = _ones_conv(3, "official")(x, mask)
    assert out[0, 0, 2, 2].item() == pytest.approx(27 * 9 / 27 + 0.5)  # bias after the ratio
    assert torch.equal(new_mask, torch.ones(1, 1, 5, 5))
    out, _ = _ones_conv(3, "nvidia")(x, mask)
    assert out[0, 0, 2, 2].item() == pytest.approx(27 + 0.5)


def test_partial_conv_renormalises_holes_and_marks_empty_windows_invalid() -> None:
    x = torch.ones(1, 1, 5, 5)
    mask = torch.ones(1, 1, 5, 5)
    mask[0, 0, 1:4, 1:4] = 0.0  # a 3x3 hole: the centre's window holds no valid element
    out, new_mask = _ones_conv(1, "official")(x, mask)
    assert new_mask[0, 0, 2, 2].item() == 0.0 and out[0, 0, 2, 2].item() == 0.0
    # next to the centre (2, 1): its window holds 3 valid pixels (column 0); 3 ones * 9/3 = 9, + bias
    assert new_mask[0, 0, 2, 1].item() == 1.0
    assert out[0, 0, 2, 1].item() == pytest.approx(9.0 + 0.5)


def test_network_is_the_official_size_and_keeps_dropout_on_at_prediction() -> None:
    torch.manual_seed(0)
    net = PUNet(3)
    assert sum(p.numel() for p in net.parameters()) == 991_203  # about 0.99M, as Punet.py
    net.eval()
    x, mask = torch.rand(1, 3, 32, 32), torch.ones(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(net(x, mask), net(x, mask))  # dropout stays on
        out = net(x, mask)
    assert out.shape == x.shape and 0.0 < out.min() and out.max() < 1.0  # sigmoid


class Half(nn.Module):
    """Outputs 2 x the masked input: with keep probability 1 the mean of the passes is 2 * y, clipped."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return 2 * x


def test_prediction_flips_back_and_clips_the_mean() -> None:
    y = torch.tensor([[0.1, 0.2, 0.9]]).reshape(1, 1, 1, 3)
    torch.manual_seed(0)
    estimate = predict(Half(), y, predictions=8, keep=1.0)
    assert estimate[0, 0, 0].tolist() == pytest.approx([0.2, 0.4, 1.0])  # flips undone; 1.8 clipped to 1
