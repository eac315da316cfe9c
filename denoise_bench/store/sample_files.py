"""Example crops for visual comparison: the same test image, noisy, clean and as each method sees it.

For the first test image of every (dataset, test setting) the runner saves the centre crop of the
clean image, of its first noisy draw and of every method's estimate as 8-bit PNGs under
``samples/<dataset>/<test setting>/``, so reports can show them side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from denoise_bench.atomic import replacing
from denoise_bench.evaluate import TestCase, centre_crop
from denoise_bench.results import file_slug

SAMPLES = "samples"
SAMPLE_SIZE = 128  # side of the centre crop shown
CLEAN, NOISY = "clean", "noisy"


def sample_dir(run_dir: Path, dataset: str, test_noise: str) -> Path:
    return run_dir / SAMPLES / file_slug(dataset) / file_slug(test_noise)  # a folder's name holds a ':'


def _to_png(image: torch.Tensor, path: Path) -> None:
    """(C, H, W) float in [0, 1] (clipped here) or uint8 -> PNG, written via a temporary name."""
    if image.dtype != torch.uint8:
        image = image.clamp(0, 1).mul(255).add(0.5).floor().to(torch.uint8)
    array = image.permute(1, 2, 0).cpu().numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else np.ascontiguousarray(array))
    with replacing(path) as tmp:  # a unique temporary file: executor jobs may write the same clean/noisy crop
        pil.save(tmp, format="PNG")


def is_sample_case(case: TestCase, first_image: str) -> bool:
    return case.image_id == first_image and case.repeat == 0


def save_sample(run_dir: Path, case: TestCase, method: str, estimate: torch.Tensor) -> None:
    """Save the crop of ``estimate`` (1, C, H, W) as ``<method>.png``, plus the clean and noisy crops."""
    folder = sample_dir(run_dir, case.dataset, str(case.spec))
    _to_png(centre_crop(estimate[0].detach().float(), SAMPLE_SIZE), folder / f"{method}.png")
    if not (folder / f"{CLEAN}.png").exists():
        _to_png(centre_crop(case.clean_u8, SAMPLE_SIZE), folder / f"{CLEAN}.png")
        _to_png(centre_crop(case.noisy[0], SAMPLE_SIZE), folder / f"{NOISY}.png")
        (folder / "image.txt").write_text(f"{case.image_id}\n", encoding="utf-8")
