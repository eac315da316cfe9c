"""Networks shared by every trained method, and their initialisations."""

from denoise_bench.nets.init import NETWORK_INITS, initialise_
from denoise_bench.nets.unet import UNet
from denoise_bench.nets.unet3 import UNet3

__all__ = ["NETWORK_INITS", "UNet", "UNet3", "initialise_"]
