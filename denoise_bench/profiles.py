"""Budget profiles: one config, several sizes.

A profile fixes the training budget (iterations, batch, crop), the network width and how much of the
test split is evaluated, and the training rule every method follows:

* ``lr_rule="official"``: each method keeps its own optimiser, learning rate and the *shape* of its
  published schedule, scaled to the iterations; ``"warmup-cosine"``: every method trains with its own
  optimiser (betas, weight decay) and its own published learning rate, but one schedule shape: a
  linear warm-up over the first ``WARMUP_FRACTION`` of the steps to that rate, then a cosine decay
  to zero. The official schedules are tuned for 10^5-10^6 steps; at a few thousand steps a decay to
  zero gets further than a constant or step-halved rate, and one shape for every method keeps the
  comparison fair. The peak stays each method's own rate because a common higher peak broke IDDP:
  at 1e-3 (5x its 2e-4) it reached 24.6 dB on BSD68 after 1500 steps and collapsed to a constant
  image (5.0 dB) by step 3000, its loss being smallest there.
* ``init="own"``: each network starts as its method initialises it: the official code's where there
  is one (0.1-scaled Kaiming, ``kaiming0.1``, for the Noise2Noise / Neighbor2Neighbor U-Net; PyTorch's
  default for Blind2Unblind), and for IDDP, which has no official code, its ``init`` option (see
  ``methods/iddp.py`` for the choice and its source). ``"pytorch"``: PyTorch's default initialisation
  for every network. Runs made before this rule had its name recorded it as ``"official"``; they read
  as ``"own"``. The 0.1 scale makes the first thousands of steps slow (the U-Net was *below* its
  noisy input after 100 steps). Every initialisation tried for IDDP (``kaiming0.1``, ``normal0.02``,
  ``pytorch``) starts it at a near-constant output (spatial standard deviation 2e-7 to 4e-4 against
  the input's 0.24), none near its blur anchor; under PyTorch's default it collapsed to a
  near-constant image on BSD68 crops, so the ``cpu`` profile keeps each network's own.

Every method in a run gets the same budget, except under the ``official`` profile, where each
method gets its own published budget (``Method.official_budget``) on top of it. The rule is part of
the budget, so it is recorded in every run's config and compared by the leaderboard.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any

from denoise_bench.errors import BenchError

class LrRule(str, Enum):
    """The learning-rate rules (their values are what config files and tables say)."""

    OFFICIAL = "official"  # each method's own rate and schedule shape
    WARMUP_COSINE = "warmup-cosine"  # one short-budget shape for every method


LR_RULES = tuple(rule.value for rule in LrRule)
INITS = ("own", "pytorch")
# Names the init rule had in older request files -> its name now (run folders: denoise_bench.migration).
FORMER_INIT_NAMES = {"official": "own"}
WARMUP_FRACTION = 0.05  # of the steps, for the warm-up-cosine rule


# The test-images override that means every test image (a budget holds it as None, which an override means "keep").
ALL_TEST_IMAGES = "all"


@dataclass(frozen=True)
class Budget:
    iterations: int  # optimiser steps per training job
    batch_size: int
    crop_size: int  # square training crops
    width: int  # U-Net encoder channels (48 in every official code)
    test_images: int | None  # evaluate the first N test images (None: all)
    test_crop: int | None  # centre-crop test images to N x N (None: full images)
    per_image_iterations: int  # optimisation steps per test image for per-image methods (DIP)
    lr_rule: str = LrRule.OFFICIAL.value  # a LrRule value (kept as text: it is written as is); see the module docstring
    init: str = "own"
    # The warm-up-cosine rule's peak, as a multiple of each method's own learning rate (one factor for
    # every method, so their rates keep their published ratios); the official rule ignores it.
    lr_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.init in FORMER_INIT_NAMES:
            object.__setattr__(self, "init", FORMER_INIT_NAMES[self.init])
        if self.lr_rule not in LR_RULES:
            raise BenchError(f"unknown learning-rate rule {self.lr_rule!r}; valid: {', '.join(LR_RULES)}")
        if self.init not in INITS:
            raise BenchError(f"unknown initialisation {self.init!r}; valid: {', '.join(INITS)}")
        if not (math.isfinite(self.lr_scale) and self.lr_scale > 0):
            raise BenchError(f"budget lr_scale must be a finite number above 0, got {self.lr_scale}")

    def as_dict(self) -> dict:
        return asdict(self)

    def override(self, **values: Any) -> "Budget":
        """Replace single values (``--iterations 500``); None means "keep"; ``test_images=ALL_TEST_IMAGES``
        scores every test image, whatever the profile's own number."""
        known = {f.name for f in fields(self)}
        for key in values:
            if key not in known:
                raise BenchError(f"unknown budget field {key!r}; fields: {', '.join(sorted(known))}")
        for key, value in values.items():
            if value is not None and isinstance(value, int) and value <= 0:
                raise BenchError(f"budget {key} must be positive, got {value}")
        kept = {k: v for k, v in values.items() if v is not None}
        if kept.get("test_images") == ALL_TEST_IMAGES:
            kept["test_images"] = None
        return replace(self, **kept)


# Budget fields a method's published recipe fixes (``Method.official_budget``), for the official profile.
OFFICIAL_BUDGET_FIELDS = ("iterations", "batch_size", "crop_size", "per_image_iterations")


PROFILES: dict[str, Budget] = {
    # Seconds on a laptop CPU: proves the plumbing, not the numbers. Used by the tests.
    "smoke": Budget(iterations=30, batch_size=2, crop_size=64, width=16, test_images=2, test_crop=96, per_image_iterations=30),
    # The README's first command: a few minutes on a 2-core CPU (one thread), a demo whose table shows the
    # trained networks above the floor (box3 of the input), beside the noisy input and BM3D. It trains under
    # the small profile's rule (PyTorch's init, warm-up + cosine to 3.3x each method's rate): under each
    # method's own init and rate, 600 steps left the supervised U-Net and N2N under the floor (25.79 and
    # 25.82 dB at sigma=25 against 26.04); under this rule they reach 26.61 and 26.60 (bf16 on an AMX Xeon,
    # measured so). Tests the centre 256x256 of each image (a third of skimage's pixels): BM3D costs
    # about 7 s per 512x512 image.
    "quick": Budget(iterations=600, batch_size=4, crop_size=64, width=32, test_images=8, test_crop=256, per_image_iterations=500,
                    lr_rule="warmup-cosine", init="pytorch", lr_scale=3.3),
    # The boards of results/history were made with it; no method converges in it (the small profile does better per
    # core-minute). About 30 core-minutes per training job with bf16 matrix
    # units (AMX), every method under one short-budget rule (warm-up + cosine), each network with its
    # own initialisation. Crops of 128: with 64x64 crops the five-level U-Net's bottleneck is 2x2 and
    # the trained networks shift the brightness of full-size images (measured: the supervised U-Net
    # darkened clean 256x256 inputs by 6.4 grey levels, 64x64 tiles of them by 0.02). PyTorch's
    # default initialisation made IDDP collapse to a constant image (10 dB at 300 steps).
    "cpu": Budget(iterations=6000, batch_size=2, crop_size=128, width=32, test_images=None, test_crop=None,
                  per_image_iterations=1200, lr_rule="warmup-cosine", init="own"),
    # The CPU comparison, trained to its plateau: a width-8 U-Net for 48,000 steps of batch 2. Every network
    # starts from PyTorch's default initialisation and peaks at 3.3x its method's own rate (warm-up + cosine),
    # the rule that got the supervised U-Net furthest per step when measured (width 16, 6000 steps, 8 BSD68
    # images at sigma=25: 28.27 dB, against 26.94 at 1x and 26.67 from its own 0.1-scaled init). The steps are
    # measured (results/convergence-probe, pairs of runs of the supervised U-Net scored on every BSD68 and
    # Set12 image): from 12,000 to 24,000 steps it gained +0.38 dB (every cell +0.26 to +0.51), from 24,000
    # to 48,000 -0.00 (cells -0.14 to +0.21), converged by denoise_bench.report.convergence. A step costs
    # about 30 ms on one AMX core in bf16 (53 ms in fp32), so a job takes about 25 minutes there.
    "small": Budget(iterations=48_000, batch_size=2, crop_size=128, width=8, test_images=None, test_crop=None,
                    per_image_iterations=1200, lr_rule="warmup-cosine", init="pytorch", lr_scale=3.3),
    # About an hour per method on one GPU.
    "standard": Budget(iterations=100_000, batch_size=4, crop_size=128, width=48, test_images=None, test_crop=None, per_image_iterations=3000),
    # The IDDP paper's schedule: batch 1, 128x128 crops, 1M constant + 1M linear decay iterations.
    "paper": Budget(iterations=2_000_000, batch_size=1, crop_size=128, width=48, test_images=None, test_crop=None, per_image_iterations=3000),
    # Each method's own published budget (Method.official_budget) on this base: days per method on a GPU.
    "official": Budget(iterations=100_000, batch_size=4, crop_size=128, width=48, test_images=None, test_crop=None, per_image_iterations=3000),
}

# Profiles whose numbers do not rank methods: their tables carry this warning.
SHORT_BUDGET_WARNINGS = {
    "smoke": "smoke profile: a few dozen training steps to check the plumbing; these numbers rank nothing.",
    "quick": "quick profile: a few hundred training steps, far short of convergence: these numbers show how fast "
             "each method starts to learn, not how methods rank. The small profile trains a smaller network to its "
             "plateau on a CPU (see each board's convergence column); its boards are in results/.",
}

@dataclass(frozen=True)
class NextStep:
    """The run to make after a run of one profile: the same grid at the next size up."""

    profile: str
    dry_run: bool = False  # first as a dry run, which shows its jobs and their time here before anything long starts
    note: str = ""  # said after the command


# The next step after a run of these profiles, printed under its tables with the run's own grid (its methods,
# noise and datasets: denoise_bench.cli.request_options.grid_flags).
NEXT_STEPS = {
    "smoke": NextStep("quick"),
    "quick": NextStep("small", dry_run=True, note="(about half an hour to an hour of training per method: see its time "
                                                  "on this machine, then drop --dry-run)"),
}

# The profile that checks the plumbing: each method runs with its ``smoke_options`` there (Method), unless
# the run gives those options itself.
SMOKE_PROFILE = "smoke"

# Profiles where each method brings its own budget.
PER_METHOD_PROFILES = ("official",)


def get_profile(name: str) -> Budget:
    if name not in PROFILES:
        raise BenchError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def method_budget(profile: str, base: Budget, official: dict[str, int], overrides: dict[str, Any]) -> Budget:
    """The budget one method trains with: the profile's, its published one under ``official``, then
    the user's overrides (``--iterations`` and friends win over both)."""
    budget = base
    if profile in PER_METHOD_PROFILES:
        unknown = set(official) - set(OFFICIAL_BUDGET_FIELDS)
        if unknown:
            raise BenchError(f"official_budget may set {', '.join(OFFICIAL_BUDGET_FIELDS)}; not {', '.join(sorted(unknown))}")
        budget = budget.override(**official)
    return budget.override(**overrides)
