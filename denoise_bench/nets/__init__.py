"""Networks shared by every trained method."""

from denoise_bench.nets.unet import UNet

__all__ = ["UNet"]
