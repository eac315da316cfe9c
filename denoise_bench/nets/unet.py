"""The Noise2Noise U-Net as re-written in PyTorch by Neighbor2Neighbor (``arch_unet.UNet``).

One network for every trained method, so that comparisons isolate the loss. Five 2x max-pool levels
(inputs must be multiples of 32), 48 encoder channels and 96 decoder channels at width 48, the raw
input concatenated before the output stage, LeakyReLU everywhere except the linear output, no
residual connection. Two switches cover the published variants:

* ``upsample="deconv"`` (Neighbor2Neighbor: 2x2 transposed conv) or ``"nearest"`` (Noise2Noise and
  Blind2Unblind: pixel repeat);
* ``slope`` 0.2 (Neighbor2Neighbor) or 0.1 (Noise2Noise, Blind2Unblind);
* ``ne2ne_init``: Kaiming-normal (fan_in) scaled by 0.1 with zero bias (``kaiming0.1`` of
  ``denoise_bench.nets.init``), as the official code does; off: PyTorch's default.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from denoise_bench.nets.init import initialise_

DOWNSAMPLE_FACTOR = 32  # 2 ** number of pooling levels


class _Up(nn.Module):
    """Upsample by 2 then concatenate the skip connection."""

    def __init__(self, channels: int, mode: Literal["deconv", "nearest"]) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2) if mode == "deconv" else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.deconv is not None:
            x = self.deconv(x)
        else:
            x = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.cat([x, skip], dim=1)


class UNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 48,
        upsample: Literal["deconv", "nearest"] = "deconv",
        slope: float = 0.2,
        ne2ne_init: bool = True,
    ) -> None:
        super().__init__()
        if upsample not in ("deconv", "nearest"):
            raise ValueError(f"upsample must be 'deconv' or 'nearest', not {upsample!r}")
        w, w2 = width, 2 * width
        self.config = dict(in_channels=in_channels, out_channels=out_channels, width=width, upsample=upsample, slope=slope)
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.pool = nn.MaxPool2d(2)
        conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1)  # noqa: E731
        # Encoder: two convs at full resolution, then one conv after each of five poolings.
        self.enc0 = conv(in_channels, w)
        self.enc1 = conv(w, w)
        self.enc = nn.ModuleList(conv(w, w) for _ in range(5))  # enc_conv2 .. enc_conv6
        # Decoder: upsample+concat then two convs, four times; the last upsample meets the input.
        self.ups = nn.ModuleList([_Up(w, upsample)] + [_Up(w2, upsample) for _ in range(4)])
        self.dec_a = nn.ModuleList(conv(2 * w if i == 0 else w2 + w, w2) for i in range(4))
        self.dec_b = nn.ModuleList(conv(w2, w2) for _ in range(4))
        self.out_a = conv(w2 + in_channels, w2)
        self.out_b = conv(w2, w2)
        self.nin_a = nn.Conv2d(w2, w2, 1)
        self.nin_b = nn.Conv2d(w2, w2, 1)
        self.nin_c = nn.Conv2d(w2, out_channels, 1)
        if ne2ne_init:
            initialise_(self, "kaiming0.1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % DOWNSAMPLE_FACTOR or x.shape[-2] % DOWNSAMPLE_FACTOR:
            raise ValueError(f"U-Net input sides must be multiples of {DOWNSAMPLE_FACTOR}, got {tuple(x.shape[-2:])}")
        act = self.act
        skips = [x]
        h = act(self.enc1(act(self.enc0(x))))
        h = self.pool(h)
        skips.append(h)  # pool1
        for i, enc in enumerate(self.enc):
            h = act(enc(h))
            if i < 4:
                h = self.pool(h)
                if i < 3:
                    skips.append(h)  # pool2 .. pool4
        # h is enc_conv6 at 1/32 resolution; skips = [input, pool1, pool2, pool3, pool4]
        for up, conv_a, conv_b, skip in zip(self.ups[:4], self.dec_a, self.dec_b, reversed(skips[1:])):
            h = act(conv_b(act(conv_a(up(h, skip)))))
        h = self.ups[4](h, skips[0])
        h = act(self.out_b(act(self.out_a(h))))
        h = act(self.nin_b(act(self.nin_a(h))))
        return self.nin_c(h)
