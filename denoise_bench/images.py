"""8-bit images: reading them from disk, with errors that name the file, and their array layouts.

Only 8-bit files are read. A file with more bits per channel (16-bit PNG, TIFF, PGM/PPM), gray or
colour alike, is refused with a message saying so: cutting it to 8 bits would change the image
without a word (Pillow opens 16-bit colour as 8-bit), and the suite scores 8-bit images throughout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from denoise_bench.errors import BenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
# Modes that are 8 bits per channel and convert losslessly (apart from colour->gray) to L or RGB.
SUPPORTED_MODES = {"L", "RGB", "RGBA", "P", "LA", "1", "CMYK", "YCbCr"}
EIGHT_BITS_ONLY = "denoise-bench reads 8-bit images only; convert it to 8 bits first"


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 -> (H, W, channels) uint8.

    Gray->colour replicates the plane (so every method sees three channels, as the official loaders
    do with ``.convert('RGB')``); colour->gray uses BT.601 luma, rounded, as BSD68 was made from CBSD68.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    have = pixels.shape[2]
    if have == channels:
        return np.ascontiguousarray(pixels)
    if have == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=2)
    if have == 3 and channels == 1:
        luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(np.floor(luma + 0.5), 0, 255).astype(np.uint8)[:, :, None]
    raise BenchError(f"cannot convert an image with {have} channels to {channels}")


def to_chw(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, C) pixels, as datasets and image files hold them, -> a contiguous (C, H, W) tensor, as networks take them.

    Keeps the dtype (uint8 stays uint8); the tensor owns its memory whatever the array's strides.
    """
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()


# What opening or decoding a file that is no (acceptable) image raises; a picture of more pixels than Pillow opens
# by default (a decompression bomb, or a scan too large to denoise at once) among them.
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)

GRAY_MODES = ("L", "1", "LA")  # modes read as one channel; every other supported mode is read as colour


def image_channels(path: Path) -> int:
    """The channels ``path`` holds as :func:`read_image` reads it: 1 for a gray file (``L``, ``1``, ``LA``),
    3 for any other (a colour file whose three planes are equal is colour too). Only its header is read."""
    try:
        with Image.open(path) as img:
            return 1 if img.mode in GRAY_MODES else 3
    except UNREADABLE as exc:
        raise BenchError(f"{path}: not a readable image ({exc})") from None


def read_image(path: Path, channels: int) -> np.ndarray:
    """Read an 8-bit image file as (H, W, channels) uint8, or raise a BenchError naming the file."""
    if not path.is_file():
        raise BenchError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            bits = _bits_per_channel(img)
            if bits > 8:
                raise BenchError(f"{path}: a {bits}-bit image; {EIGHT_BITS_ONLY}")
            if img.mode not in SUPPORTED_MODES:
                raise BenchError(f"{path}: unsupported image mode {img.mode!r} (expected 8-bit gray or colour)")
            img.load()
            rgb_or_l = img.convert("L" if img.mode in GRAY_MODES else "RGB")
            pixels = np.array(rgb_or_l, dtype=np.uint8)  # a writable copy
    except BenchError:
        raise
    except UNREADABLE as exc:
        raise BenchError(f"{path}: not a readable image ({exc})") from None
    return to_channels(pixels, channels)


def _bits_per_channel(img: ImageFile.ImageFile) -> int:
    """How many bits per channel the file holds (Pillow reports 16-bit colour as an 8-bit mode; its decoder
    arguments still say: a raw mode such as ``RGB;16B``, or a PNM maximum above 255)."""
    for tile in img.tile or []:
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        if args and isinstance(args[0], str) and ";16" in args[0]:
            return 16
        if img.format == "PPM" and len(args) > 1 and isinstance(args[1], int) and args[1] > 255:
            return 16
    if img.mode.startswith("I;16"):
        return 16
    if img.mode in ("I", "F"):
        return 32
    return 8


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        raise BenchError(f"image folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
