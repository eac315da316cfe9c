"""CVF-SID's network (the official ``src/model/model.py``): a clean generator and a two-head noise generator.

``forward(x)`` returns ``(noise_w, noise_b, clean)``: ``clean`` from a DnCNN-17 without batch
normalisation and not residual (3x3 conv + ReLU, 15 x [3x3 conv + ReLU], 1x1 conv, linear output);
``noise_w`` (signal-dependent) and ``noise_b`` (signal-independent) from a shared trunk of 10
[3x3 conv + ReLU] applied to ``x - clean``, then one head each of 4 [3x3 conv + ReLU] and a 1x1
conv, each map made zero-mean per image and channel. No down-sampling: any image size works.
"""

from __future__ import annotations

import torch
from torch import nn

CLEAN_LAYERS = 17  # DnCNN-17
NOISE_TRUNK_LAYERS = 10
NOISE_HEAD_LAYERS = 4


def _conv_relu_stack(in_channels: int, width: int, layers: int) -> list[nn.Module]:
    stack: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
    for _ in range(layers - 1):
        stack += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    return stack


def _zero_mean(noise: torch.Tensor) -> torch.Tensor:
    return noise - noise.mean(dim=(-2, -1), keepdim=True)


class CVFNet(nn.Module):
    downsample_factor = 1  # any size: test images need no padding to a multiple

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.config = dict(kind="cvf-sid", channels=channels, width=width)
        # DnCNN-17: 16 conv + ReLU layers and the 1x1 output
        self.clean = nn.Sequential(*_conv_relu_stack(channels, width, CLEAN_LAYERS - 1), nn.Conv2d(width, channels, 1))
        self.trunk = nn.Sequential(*_conv_relu_stack(channels, width, NOISE_TRUNK_LAYERS))
        self.head_w = nn.Sequential(*_conv_relu_stack(width, width, NOISE_HEAD_LAYERS), nn.Conv2d(width, channels, 1))
        self.head_b = nn.Sequential(*_conv_relu_stack(width, width, NOISE_HEAD_LAYERS), nn.Conv2d(width, channels, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        clean = self.clean(x)
        features = self.trunk(x - clean)
        return _zero_mean(self.head_w(features)), _zero_mean(self.head_b(features)), clean
