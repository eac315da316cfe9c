"""Self2Self's partial-convolution U-Net (the official ``network/Punet.py`` and ``pconv_layer.py``).

Encoder: seven 3x3 partial convolutions of ``width`` filters with LeakyReLU 0.1, five 2x max-pools
(the validity mask pooled with them). Decoder: nearest 2x upsampling, concatenation with the
encoder's pooled map of that scale (at full resolution: the masked input), each convolution preceded
by dropout that stays on at prediction time, 2 x ``2 * width`` filters per scale, then 64, 32 and a
``channels`` output with a sigmoid.

The partial convolution keeps the official code's normalisation by default: the window's valid
count is taken over all ``k * k * C_in`` elements but the ratio is ``k * k / count``, and the bias is
added after it, so in the interior every output is scaled by 1 / C_in (a known slip of the Keras
PConv layer the official code builds on; its published numbers were made with it).
``normalisation="nvidia"`` uses the partial-convolution paper's ``k * k * C_in / count`` instead.

Padding: every convolution edge-repeats its input by one pixel (TF's SYMMETRIC padding of one pixel),
and a partial convolution pads its mask with ones, as the official code. Deviation, stated in the
methods table: the Keras PConv layer then zero-pads image and mask once more and convolves VALID, so
each encoder layer grows the map by 2 pixels and the decoder crops top-left; here every map keeps
its size. The evaluator reflect-pads each image to a
multiple of 32 (``DOWNSAMPLE_FACTOR``) so every pooling is exact. Initialisation as the official
Keras layers: Glorot-uniform encoder, He-normal decoder (not truncated), the output layer with gain 1,
zero biases.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

DOWNSAMPLE_FACTOR = 32  # five 2x max-pools
NORMALISATIONS = ("official", "nvidia")
LEAKY_SLOPE = 0.1


def _conv3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A decoder 3x3 convolution; one pixel of edge-repeat padding is TF's SYMMETRIC padding of one pixel."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="replicate")


class PartialConv(nn.Module):
    """A 3x3 convolution over the valid elements only; returns the output and its validity mask."""

    window: torch.Tensor  # a buffer (register_buffer): ones over the k*k*C_in window

    def __init__(self, in_channels: int, out_channels: int, normalisation: str = "official") -> None:
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        self.conv = nn.Conv2d(in_channels, out_channels, 3, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("window", torch.ones(1, in_channels, 3, 3), persistent=False)
        # official: k*k / count; nvidia: k*k*C_in / count (count over the k*k*C_in window either way)
        self.numerator = 9.0 if normalisation == "official" else 9.0 * in_channels
        nn.init.xavier_uniform_(self.conv.weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The official padding: the image edge-repeated by one pixel (TF's SYMMETRIC), the mask by ones.
        x = F.pad(x * mask, (1, 1, 1, 1), mode="replicate")
        with torch.no_grad():
            count = F.conv2d(F.pad(mask, (1, 1, 1, 1), value=1.0), self.window.to(mask.dtype))
            valid = (count > 0).to(x.dtype)
            ratio = self.numerator / count.clamp(min=1.0) * valid
        out = self.conv(x) * ratio + self.bias.view(1, -1, 1, 1)
        return out * valid, valid.expand(-1, out.shape[1], -1, -1)


class PUNet(nn.Module):
    """The Self2Self network: ``forward(masked_input, mask)`` -> sigmoid image."""

    def __init__(self, channels: int, width: int = 48, dropout: float = 0.3, normalisation: str = "official") -> None:
        super().__init__()
        self.dropout = dropout
        self.encoder = nn.ModuleList([PartialConv(channels, width, normalisation)]
                                     + [PartialConv(width, width, normalisation) for _ in range(6)])
        wide = 2 * width
        # four scales below full resolution: concat (upsampled, skip) -> wide -> wide
        self.decoder = nn.ModuleList()
        he_normal: list[nn.Conv2d] = []  # the decoder's and the full-resolution convolutions, in order
        for level in range(4):
            first_in = (width if level == 0 else wide) + width
            pair = [_conv3(first_in, wide), _conv3(wide, wide)]
            self.decoder.append(nn.ModuleList(pair))
            he_normal += pair
        full = [_conv3(wide + channels, 64), _conv3(64, 32)]
        self.full = nn.ModuleList(full)
        self.output = _conv3(32, channels)
        for conv in he_normal + full:
            nn.init.kaiming_normal_(conv.weight, a=0.0, nonlinearity="relu")  # Keras he_normal: std sqrt(2 / fan_in)
            assert conv.bias is not None  # _conv3 makes every convolution with a bias
            nn.init.zeros_(conv.bias)
        nn.init.kaiming_normal_(self.output.weight, nonlinearity="linear")  # gain 1: std sqrt(1 / fan_in)
        assert self.output.bias is not None
        nn.init.zeros_(self.output.bias)

    def _conv(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # dropout before every decoder convolution, on at prediction time too (the official code's)
        return conv(F.dropout(x, self.dropout, training=True))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        skips = [x]
        h, m = x, mask
        for index, pconv in enumerate(self.encoder):
            h, m = pconv(h, m)
            h = F.leaky_relu(h, LEAKY_SLOPE)
            if 1 <= index <= 5:  # pools after encoder convolutions 1-5
                h, m = F.max_pool2d(h, 2, ceil_mode=True), F.max_pool2d(m, 2, ceil_mode=True)
                if index <= 4:
                    skips.append(h)
        for level, pair in enumerate(self.decoder):
            first, second = cast(nn.ModuleList, pair)
            skip = skips[-1 - level]
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = F.leaky_relu(self._conv(first, torch.cat([h, skip], dim=1)), LEAKY_SLOPE)
            h = F.leaky_relu(self._conv(second, h), LEAKY_SLOPE)
        h = F.interpolate(h, size=x.shape[-2:], mode="nearest")
        h = torch.cat([h, skips[0]], dim=1)
        for conv in self.full:
            h = F.leaky_relu(self._conv(conv, h), LEAKY_SLOPE)
        return torch.sigmoid(self._conv(self.output, h))
