"""Deep Image Prior's encoder-decoder with skip connections (``models/skip.py`` of the official code).

The denoising notebook builds it as ``get_net(32, 'skip', 'reflection', skip_n33d=128,
skip_n33u=128, skip_n11=4, num_scales=5, upsample_mode='bilinear')``. Each of the five scales is::

    skip(x)   = conv1x1 -> skip_channels, BN, LReLU
    deeper(x) = conv3x3 stride 2, BN, LReLU, conv3x3, BN, LReLU, [next scale], bilinear up x2
    out       = BN(concat(skip(x), deeper(x))), conv3x3 -> width, BN, LReLU, conv1x1, BN, LReLU

then a final conv1x1 to the image channels and a sigmoid, so the output lies in (0, 1).
Downsampling is by the strided convolution, upsampling bilinear (``align_corners=False``), every
3x3 convolution reflection-padded, LeakyReLU slope 0.2, biases on. With 32 input channels, width 128
and 3 output channels it has 2,217,831 parameters (BatchNorm included), the count of the official
layer list.

Inputs must be multiples of 2^scales (32); the reference crops the image to that, the benchmark
pads. The innermost 3x3 convolution reflects one pixel, so the sides must also be at least
2 * 2^scales (64).
"""

from __future__ import annotations

import torch
from torch import nn

SCALES = 5
DOWNSAMPLE_FACTOR = 2**SCALES
SLOPE = 0.2


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Convolution with reflection padding that keeps the size (divides it by ``stride``)."""
    pad = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    layers.append(nn.Conv2d(in_channels, out_channels, kernel, stride=stride, bias=True))
    return nn.Sequential(*layers)


def _conv_bn_act(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(in_channels, out_channels, kernel, stride), nn.BatchNorm2d(out_channels),
                         nn.LeakyReLU(SLOPE, inplace=True))


class _Scale(nn.Module):
    """One scale of the hourglass; ``inner`` is the next coarser scale (None at the coarsest)."""

    def __init__(self, in_channels: int, width: int, skip_channels: int, inner: _Scale | None) -> None:
        super().__init__()
        self.skip = _conv_bn_act(in_channels, skip_channels, 1) if skip_channels else None
        self.down = nn.Sequential(_conv_bn_act(in_channels, width, 3, stride=2), _conv_bn_act(width, width, 3))
        self.inner = inner
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        merged = skip_channels + width  # the inner scale returns `width` channels, as does this one's down path
        self.merge = nn.Sequential(nn.BatchNorm2d(merged), _conv_bn_act(merged, width, 3), _conv_bn_act(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deeper = self.down(x)
        if self.inner is not None:
            deeper = self.inner(deeper)
        deeper = self.up(deeper)
        h = deeper if self.skip is None else torch.cat([self.skip(x), deeper], dim=1)
        return self.merge(h)


class Hourglass(nn.Module):
    def __init__(self, in_channels: int = 32, out_channels: int = 3, width: int = 128, skip_channels: int = 4,
                 scales: int = SCALES) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "width": width,
                       "skip_channels": skip_channels, "scales": scales}
        self.multiple = 2**scales
        inner: _Scale | None = None
        for level in reversed(range(scales)):  # build from the coarsest scale outwards
            inner = _Scale(in_channels if level == 0 else width, width, skip_channels, inner)
        assert inner is not None
        self.body = inner
        self.head = nn.Sequential(nn.Conv2d(width, out_channels, 1, bias=True), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple or min(h, w) < 2 * self.multiple:
            raise ValueError(f"hourglass input sides must be multiples of {self.multiple} and at least "
                             f"{2 * self.multiple}, got {(h, w)}")
        return self.head(self.body(x))
