"""A three-level U-Net in the style of the Noise2Grad code (the IDDP first author's earlier release).

``denoisenet`` of ``HuangxingLin123/Noise2Grad_Pytorch_code`` (``models/networks.py``,
``models/unet_parts.py``) without its Noise2Grad-only noise-approximation head: a double 3x3 conv +
ReLU block at full resolution, three 2x max-pool levels, each followed by a double conv block, then
three bilinear (align_corners=True) upsamplings, each concatenated with its skip (skip first) and
followed by a double conv block, and a linear 3x3 output conv predicting the clean image directly. No
batch norm, no raw-input concatenation, no residual. Channels at width 32 (the release's
``feature_num``): 32-64-128-128 down, 64-32-32 up; 0.84M parameters (grey or colour).
Inputs must be multiples of 8.
"""

from __future__ import annotations

import torch
from torch import nn

UNET3_DOWNSAMPLE_FACTOR = 8  # 2 ** number of pooling levels


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = _double_conv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet3(nn.Module):
    downsample_factor = UNET3_DOWNSAMPLE_FACTOR

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        w = width
        self.config = dict(kind="unet3", in_channels=in_channels, out_channels=out_channels, width=width)
        self.inc = _double_conv(in_channels, w)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(i, o)) for i, o in ((w, 2 * w), (2 * w, 4 * w), (4 * w, 4 * w))
        )
        self.up = nn.ModuleList([_Up(8 * w, 2 * w), _Up(4 * w, w), _Up(2 * w, w)])
        self.outc = nn.Conv2d(w, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % UNET3_DOWNSAMPLE_FACTOR or x.shape[-2] % UNET3_DOWNSAMPLE_FACTOR:
            raise ValueError(f"UNet3 input sides must be multiples of {UNET3_DOWNSAMPLE_FACTOR}, got {tuple(x.shape[-2:])}")
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up in self.up:
            h = up(h, skips.pop())
        return self.outc(h)
