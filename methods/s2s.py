"""Self2Self with dropout (Quan, Chen, Pang and Ji, CVPR 2020): a dropout network fitted to each image.

    every step:  flip the noisy image y (left-right, up-down, each p = 1/2);
                 b ~ Bernoulli(0.7) per element (pixel and channel);
                 loss = sum((1 - b) * (f(b * y, b) - y)^2) / sum(1 - b)      (the dropped elements only)
    estimate  = clip(mean of 100 passes f(b * y, b), each with a new b, new flips flipped back
                and the decoder's dropout on, 0, 1)

Nothing is learned from a training set: for every test image a freshly initialised partial-convolution
U-Net (``denoise_bench.nets.punet``) is fitted to the noisy image alone; the dropout of its decoder,
kept on at prediction, makes the mean of many passes an ensemble.

Settings of the official code (``demo_denoising.py``), all kept: Adam (0.9, 0.999) at 1e-4 constant,
batch 1, 150,000 iterations per image (the budget's ``per_image_iterations``; ``official_budget``),
100 predictions, input keep probability 0.7, decoder dropout 0.3 (the official script uses 0.2 for
BSD68 at sigma = 25 and 0.3 elsewhere: ``--method-option s2s:dropout=0.2`` reproduces that row).
The official code saves its prediction every 1000 steps; the estimate here is the one at the end.

Implementation choices: the noisy image unclipped (the benchmark's protocol; the official script
adds float noise and does not clip either); the padding deviation of ``PUNet`` (maps keep their size;
the evaluator reflect-pads each image to a multiple of 32); seeding: initialisation, masks, flips
and dropout come from ``setup.seed`` in a forked RNG, so the estimate depends only on the noisy
image and the seed, and the global random state is left as it was.

Cost: about 80 GFLOP per step on a 256x256 image, so the official budget is days per image on a
CPU and about an hour on a GPU; smaller budgets are the profiles' ``per_image_iterations``.

Options: ``width`` (48), ``dropout`` (0.3), ``keep`` (0.7, the input's Bernoulli keep probability),
``predictions`` (100) (under the ``smoke`` profile width 16 and 4 predictions, unless given), ``lr`` (1e-4), ``normalisation`` (``official`` | ``nvidia``, the partial
convolution's ratio; see ``denoise_bench.nets.punet``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from typing_extensions import override

from denoise_bench.errors import BenchError
from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.nets.punet import DOWNSAMPLE_FACTOR, NORMALISATIONS, PUNet
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN
from denoise_bench.per_image_fit import fit_per_image
from denoise_bench.supervision import Supervision


def flip(image: torch.Tensor, left_right: bool, up_down: bool) -> torch.Tensor:
    """The official data_arg: its own inverse."""
    if left_right:
        image = image.flip(-1)
    if up_down:
        image = image.flip(-2)
    return image


def bernoulli_mask(like: torch.Tensor, keep: float) -> torch.Tensor:
    """1 with probability ``keep``, else 0, independently for every element."""
    return (torch.rand_like(like) < keep).to(like.dtype)


def masked_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the dropped elements (mask 0) only, as the official mask_loss."""
    dropped = 1.0 - mask
    return ((output - target) ** 2 * dropped).sum() / dropped.count_nonzero().clamp(min=1)


def random_flips() -> tuple[bool, bool]:
    left_right, up_down = torch.randint(0, 2, (2,)).tolist()
    return bool(left_right), bool(up_down)


def masked_step_loss(net: nn.Module, noisy: torch.Tensor, keep: float) -> torch.Tensor:
    """One step's loss: a flipped, Bernoulli-masked copy of ``noisy`` in, the dropped elements scored."""
    target = flip(noisy, *random_flips())
    mask = bernoulli_mask(target, keep)
    return masked_loss(net(target * mask, mask).float(), target, mask)


def predict(net: nn.Module, noisy: torch.Tensor, predictions: int, keep: float) -> torch.Tensor:
    """The mean of ``predictions`` stochastic passes (new mask, new flips, dropout on), clipped to [0, 1]."""
    total = torch.zeros_like(noisy)
    with torch.no_grad():
        for _ in range(predictions):
            flips = random_flips()
            flipped = flip(noisy, *flips)
            mask = bernoulli_mask(flipped, keep)
            total += flip(net(flipped * mask, mask).float(), *flips)
    return (total / predictions).clamp(0.0, 1.0)


class Self2Self(Method):
    name = "s2s"
    description = "Self2Self: fit a dropout partial-convolution U-Net to Bernoulli-masked copies of each noisy image"
    citation = "Quan, Chen, Pang and Ji, Self2Self With Dropout: Learning Self-Supervised Denoising From Single Image, CVPR 2020"
    supervision = Supervision.NONE
    # A dropped element is predicted from the others: that is the clean value only if the noise is
    # independent between elements and averages to zero.
    requires = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT})
    trainable = False
    input_multiple = DOWNSAMPLE_FACTOR
    pads_to_square = True  # the convention its results were scored under
    options = {"width": 48, "dropout": 0.3, "keep": 0.7, "predictions": 100, "lr": 1e-4, "normalisation": "official"}
    official_budget = {"per_image_iterations": 150_000}  # demo_denoising.py's N_STEP
    # The width-48 network and 100 predictions per test image made a smoke job a minute on one core.
    smoke_options = {"width": 16, "predictions": 4}

    @override
    @classmethod
    def check_options(cls, opts: dict[str, Any]) -> None:
        if opts["normalisation"] not in NORMALISATIONS:
            raise BenchError(f"s2s: normalisation={opts['normalisation']!r}; valid: {', '.join(NORMALISATIONS)}")
        if not 0.0 <= opts["dropout"] < 1.0:
            raise BenchError(f"s2s: dropout must be in [0, 1), got {opts['dropout']}")
        if not 0.0 < opts["keep"] < 1.0:
            raise BenchError(f"s2s: keep must be in (0, 1), got {opts['keep']}")
        if opts["predictions"] < 1:
            raise BenchError(f"s2s: predictions must be positive, got {opts['predictions']}")

    @override
    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        opts = self.opts
        image = noisy.float()
        with torch.random.fork_rng(devices=[image.device] if image.device.type == "cuda" else []):
            torch.manual_seed(self.setup.seed)
            net = PUNet(image.shape[1], width=opts["width"], dropout=opts["dropout"],
                        normalisation=opts["normalisation"]).to(image.device)
            with torch.enable_grad():  # the fit needs gradients even if the caller runs under no_grad
                fit_per_image(net, lambda: masked_step_loss(net, image, opts["keep"]),
                              self.setup.budget.per_image_iterations, lr=opts["lr"], device=image.device,
                              engine=self.setup.engine, progress=self.setup.progress, desc="s2s fit")
            estimate = predict(net, image, opts["predictions"], opts["keep"])
        return estimate.to(noisy.dtype)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(Self2Self)
