"""IDDP: Implicit Deep Denoiser Prior (Lin et al., AAAI 2023).

    L = alpha * ||F(y) - box(y)||^2 + beta * ||F(y2) - sg(F(y))||^2
    y2 = sg(F(y)) + m * (y - sg(F(y))),   m in {-1, +1} per element, p = 0.5, new every iteration

The network's own current estimate ``F(y)`` (taken before this step's update and detached) is the
implicit prior: re-noising it with the sign-flipped estimated noise gives a fresh noisy observation
of (approximately) the same scene, and the network learns to map it back. The weak box-blur anchor
(alpha = 0.001) makes the identity mapping costly. Adam 2e-4, constant for half the run then
linear decay to zero (the paper: 1M + 1M iterations, batch 1, 128x128 crops).

No official code was released. Every choice the paper leaves open is an option, and the methods
table of docs/methods.md names the source of each default: the paper, the first author's released
Noise2Grad code (its convention, not IDDP's code), Neighbor2Neighbor's convention, or ours.

The defaults were chosen by a probe (``results/iddp-probe-cpu``: cpu profile, Train400, Gaussian
sigma in (0, 50], curves on 8 BSD68 images): beta1 {0.9, 0.5} x init {kaiming0.1, normal0.02} on the
shared U-Net, the three-level network, and clamping. No arm beat the anchor, box3 of the input,
within 6000 steps (all between 24.56 and 25.35 dB on BSD68 at sigma=25, the anchor 25.57). The best,
by paired differences over the 68 images, is the first author's Noise2Grad conventions: its
three-level network (also 1.4x faster per step on a CPU), N(0, 0.02) init, beta1 0.5 and the
re-noised input clamped to [0, 1] (+0.25 dB [0.19, 0.30] over the same without clamping; beta1 0.5
beat 0.9 under both inits). Crops are not flipped (not probed; the paper names no augmentation).

Options:

* ``network``: ``unet`` (the suite's shared five-level U-Net, Neighbor2Neighbor's) or ``unet3`` (the
  three-level U-Net of the Noise2Grad code, ``denoise_bench.nets.unet3``).
* ``init``: ``kaiming0.1`` (Neighbor2Neighbor's code), ``normal0.02`` (Noise2Grad's), ``pytorch``.
* ``beta1``: Adam's beta1 (0.9 Neighbor2Neighbor, 0.5 Noise2Grad; beta2 is 0.999 in both).
* ``clamp``: clamp the re-noised input y2 to [0, 1] (Noise2Grad does so to its re-noised input).
* ``flips``: random flips of each training crop (none, vertical, horizontal, both; Noise2Grad's
  augmentation).
* ``blur_kernel``: side of the anchor's box filter (reflect padding).
* ``stop_gradient``: false reproduces the paper's ablation, which blurs.
* ``alpha``, ``beta``: the loss weights (the paper's 0.001 and 1).

Extensions (``Method.extensions``): none is in the paper; at any value other than its default (where it
does nothing, or where the paper sets it) the row is named for it, ``iddp+ema(0.999) (ours)``, on every
table, board and plot, so that it never reads as the paper's method:

* ``warm_start``: ``none``, or ``box3:N``: the first N of the budget's steps fit the anchor alone,
  ``||F(y) - box(y)||^2`` at weight 1, before the paper's loss takes over (is there a path from the
  anchor to the paper's state?). N at or beyond the budget's steps trains the anchor alone (the row is
  named for it all the same; the time probe builds the method on a budget of a few steps). The supervised warm start needs clean images, which a method without
  supervision never sees: it is a method of its own, ``iddp-sup-start``.
* ``ema``: the prior ``F(y)`` taken from an exponential moving average of the network's weights (decay
  ``ema``; 0: the network itself, the paper), a teacher that moves slower than the student.
* ``clip``: clip the gradient's norm to ``clip`` before each update (0: never).
* ``alpha`` and ``beta`` beyond the paper's 0.001 and 1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from denoise_bench.errors import BenchError
from denoise_bench.filters import box_filter
from denoise_bench.hookspecs import hookimpl
from denoise_bench.method import Method
from denoise_bench.nets.init import NETWORK_INITS
from denoise_bench.nets.unet3 import UNet3
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import PIXEL_INDEPENDENT, ZERO_MEAN
from denoise_bench.schedules import constant_then_linear_decay
from denoise_bench.supervision import CleanBatch, NoisyBatch, Supervision

NETWORKS = ("unet", "unet3")


def random_signs(like: torch.Tensor) -> torch.Tensor:
    """+1 or -1 with probability 1/2 for every element (pixel and channel)."""
    return torch.where(torch.rand_like(like) < 0.5, -1.0, 1.0)


def random_flips(batch: torch.Tensor) -> torch.Tensor:
    """Each crop of a (N, C, H, W) batch unchanged, flipped vertically, horizontally or both, with
    probability 1/4 each (as Noise2Grad's ``aligned_dataset``)."""
    choice = torch.randint(0, 4, (batch.shape[0], 1, 1, 1), device=batch.device)
    vertical = torch.where(choice % 2 == 1, batch.flip(-2), batch)
    return torch.where(choice >= 2, vertical.flip(-1), vertical)


class IDDP(NetworkMethod):
    name = "iddp"
    description = "Implicit Deep Denoiser Prior: re-noise the network's own estimate with sign-flipped residuals"
    citation = "Lin et al., Self-Supervised Image Denoising Using Implicit Deep Denoiser Prior, AAAI 2023"
    supervision = Supervision.NONE
    requires = frozenset({ZERO_MEAN, PIXEL_INDEPENDENT})
    learning_rate = 2e-4
    options = {
        "network": "unet3", "init": "normal0.02", "beta1": 0.5, "clamp": True, "flips": False,
        "blur_kernel": 3, "stop_gradient": True, "alpha": 0.001, "beta": 1.0,
        "warm_start": "none", "ema": 0.0, "clip": 0.0,
    }
    extensions = ("warm_start", "ema", "clip", "alpha", "beta")
    # The open choices: recorded in every result's identity, default or not (see Method.identity_options).
    identity_options: ClassVar[tuple[str, ...]] = ("network", "init", "beta1", "clamp", "flips", "blur_kernel")
    # What results made before they were recorded ran with (the suite's first choices, Neighbor2Neighbor's).
    former_defaults = {"network": "unet", "init": "kaiming0.1", "beta1": 0.9, "clamp": False, "flips": False, "blur_kernel": 3}
    # The paper: 1M constant + 1M linearly decaying iterations of batch 1 on 128x128 crops.
    official_budget = {"iterations": 2_000_000, "batch_size": 1, "crop_size": 128}

    @override
    @classmethod
    def check_options(cls, opts: dict[str, Any]) -> None:
        if opts["network"] not in NETWORKS:
            raise BenchError(f"iddp: network={opts['network']!r}; valid: {', '.join(NETWORKS)}")
        if opts["init"] not in NETWORK_INITS:
            raise BenchError(f"iddp: init={opts['init']!r}; valid: {', '.join(NETWORK_INITS)}")
        if not 0.0 <= opts["beta1"] < 1.0:
            raise BenchError(f"iddp: beta1 must be in [0, 1), got {opts['beta1']}")
        if opts["blur_kernel"] < 1 or opts["blur_kernel"] % 2 == 0:
            raise BenchError(f"iddp: blur_kernel must be an odd positive side, got {opts['blur_kernel']}")
        if not (opts["alpha"] >= 0 and opts["beta"] > 0):
            raise BenchError(f"iddp: alpha must be at least 0 and beta above 0, got alpha={opts['alpha']}, beta={opts['beta']}")
        if not 0.0 <= opts["ema"] < 1.0:
            raise BenchError(f"iddp: ema is a decay in [0, 1) (0: off), got {opts['ema']}")
        if opts["ema"] and not opts["stop_gradient"]:
            raise BenchError("iddp: ema needs stop_gradient=true (the teacher's prior takes no gradient)")
        if opts["clip"] < 0:
            raise BenchError(f"iddp: clip is a gradient-norm limit of at least 0 (0: off), got {opts['clip']}")
        cls.warm_steps_of(opts)

    @classmethod
    def warm_steps_of(cls, opts: dict[str, Any]) -> int:
        """The steps of ``warm_start=box3:N`` (0 for ``none``)."""
        text = str(opts["warm_start"])
        if text == "none":
            return 0
        kind, _, steps = text.partition(":")
        if kind != "box3" or not steps.isdigit() or int(steps) < 1:
            raise BenchError(f"iddp: warm_start={text!r}; valid: none, box3:N (N steps fitting the anchor alone)")
        return int(steps)

    @override
    def build_network(self) -> nn.Module:
        self.warm_steps = self.warm_steps_of(self.opts)
        if self.opts["network"] == "unet3":
            return UNet3(self.setup.channels, self.setup.channels, width=self.setup.budget.width)
        return super().build_network()

    @override
    def network_init(self) -> str:
        return str(self.opts["init"])

    @override
    def optimizer_betas(self) -> tuple[float, float]:
        return (float(self.opts["beta1"]), 0.999)

    @override
    def lr_factor(self, progress: float) -> float:
        return constant_then_linear_decay(progress)

    @override
    def gradient_clip_norm(self) -> float | None:
        return float(self.opts["clip"]) or None

    def warming(self, progress: float) -> bool:
        """Whether this step is one of the warm start's (``progress`` is step / budget)."""
        return round(progress * self.setup.budget.iterations) < self.warm_steps

    @override
    def graph_key(self, progress: float) -> Hashable:
        return self.warming(progress)

    @override
    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        y = random_flips(batch.noisy) if self.opts["flips"] else batch.noisy
        estimate = self.net(y)
        anchor = F.mse_loss(estimate, box_filter(y, self.opts["blur_kernel"]))
        if self.warming(progress):
            return anchor
        return self.opts["alpha"] * anchor + self.opts["beta"] * self.consistency(y, estimate)

    def consistency(self, y: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """The paper's second term: the prior re-noised with sign-flipped residuals, mapped back to the prior."""
        prior = self.prior(y, estimate)
        renoised = prior + random_signs(y) * (y - prior)
        if self.opts["clamp"]:
            renoised = renoised.clamp(0.0, 1.0)
        return F.mse_loss(self.net(renoised), prior)

    def prior(self, y: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """``sg(F(y))`` (the paper), ``F(y)`` itself under ``stop_gradient=false``, or the EMA teacher's output."""
        if not self.opts["ema"]:
            return estimate.detach() if self.opts["stop_gradient"] else estimate
        self._update_teacher()
        with torch.no_grad():
            return self.teacher(y)

    def _update_teacher(self) -> None:
        """Move the teacher towards the network's weights as they are now (after the last update): the EMA
        step of the previous update, taken here so that the training loop needs no hook for it."""
        if getattr(self, "teacher", None) is None:
            self.teacher = copy.deepcopy(self.net).requires_grad_(False)
            return
        with torch.no_grad():
            for mine, theirs in zip(self.teacher.parameters(), self.net.parameters()):
                mine.lerp_(theirs, 1.0 - float(self.opts["ema"]))
            for own, source in zip(self.teacher.buffers(), self.net.buffers()):
                own.copy_(source)

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if getattr(self, "teacher", None) is not None:  # training state of an EMA run: resumed bit for bit
            state["teacher"] = self.teacher.state_dict()
        return state

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "teacher" in state:
            self.teacher = copy.deepcopy(self.net).requires_grad_(False)
            self.teacher.load_state_dict(state["teacher"])


class IDDPSupervisedStart(IDDP):
    """IDDP after a supervised warm start: the first ``warm_steps`` steps fit the clean images (MSE), then
    the paper's loss on the noisy ones alone. Not the paper's method, and not self-supervised: it exists to
    ask whether the paper's good state, once reached, is stable under its loss. Declared supervised, so
    that the runner gives it the clean images (a method without supervision never sees them)."""

    name = "iddp-sup-start"
    description = "IDDP's loss after a supervised warm start (this suite's experiment, not the paper's method)"
    supervision = Supervision.CLEAN
    ours = True
    options = IDDP.options | {"warm_steps": 1000}
    identity_options = IDDP.identity_options + ("warm_steps",)

    @override
    @classmethod
    def warm_steps_of(cls, opts: dict[str, Any]) -> int:
        if opts["warm_start"] != "none":
            raise BenchError(f"{cls.name}: warm_start={opts['warm_start']!r}; its warm start is supervised (warm_steps)")
        if opts["warm_steps"] < 0:
            raise BenchError(f"{cls.name}: warm_steps must be at least 0, got {opts['warm_steps']}")
        return int(opts["warm_steps"])

    @override
    def training_loss(self, batch: CleanBatch, progress: float) -> torch.Tensor:  # type: ignore[override]
        if self.warming(progress):
            return F.mse_loss(self.net(batch.noisy), batch.clean)
        return super().training_loss(NoisyBatch(batch.noisy), progress)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(IDDP)
    register(IDDPSupervisedStart)
