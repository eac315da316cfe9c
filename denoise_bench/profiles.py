"""Budget profiles: one config, several sizes.

A profile fixes the training budget (iterations, batch, crop), the network width and how much of the
test split is evaluated. Every method in a run gets the same budget; each method keeps its own
optimiser and the *shape* of its published learning-rate schedule, scaled to the iterations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from denoise_bench.errors import BenchError


@dataclass(frozen=True)
class Budget:
    iterations: int  # optimiser steps per training job
    batch_size: int
    crop_size: int  # square training crops
    width: int  # U-Net encoder channels (48 in every official code)
    test_images: int | None  # evaluate the first N test images (None: all)
    test_crop: int | None  # centre-crop test images to N x N (None: full images)
    per_image_iterations: int  # optimisation steps per test image for per-image methods (DIP)

    def as_dict(self) -> dict:
        return asdict(self)

    def override(self, **values: int | None) -> "Budget":
        """Replace single values (``--iterations 500``); None means "keep"."""
        known = {f.name for f in fields(self)}
        for key in values:
            if key not in known:
                raise BenchError(f"unknown budget field {key!r}; fields: {', '.join(sorted(known))}")
        for key, value in values.items():
            if value is not None and isinstance(value, int) and value <= 0:
                raise BenchError(f"budget {key} must be positive, got {value}")
        return replace(self, **{k: v for k, v in values.items() if v is not None})


PROFILES: dict[str, Budget] = {
    # Seconds on a laptop CPU: proves the plumbing, not the numbers. Used by the tests.
    "smoke": Budget(iterations=30, batch_size=2, crop_size=64, width=16, test_images=2, test_crop=96, per_image_iterations=30),
    # Minutes on a 2-core CPU; every trained method clearly beats the noisy input.
    "quick": Budget(iterations=800, batch_size=4, crop_size=64, width=32, test_images=8, test_crop=None, per_image_iterations=500),
    # About an hour per method on one GPU.
    "standard": Budget(iterations=100_000, batch_size=4, crop_size=128, width=48, test_images=None, test_crop=None, per_image_iterations=3000),
    # The IDDP paper's schedule: batch 1, 128x128 crops, 1M constant + 1M linear decay iterations.
    "paper": Budget(iterations=2_000_000, batch_size=1, crop_size=128, width=48, test_images=None, test_crop=None, per_image_iterations=3000),
}


def get_profile(name: str) -> Budget:
    if name not in PROFILES:
        raise BenchError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
