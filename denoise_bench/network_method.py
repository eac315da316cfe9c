"""Base class for methods that train the shared U-Net with the shared training loop.

A subclass states only what makes it different: its loss (:meth:`training_loss`), its optimiser
settings and the shape of its learning-rate schedule, and U-Net variant options (or a network of its
own, :meth:`build_network`, and an initialisation of its own, :meth:`network_init`). The budget's
training rule (``lr_rule``, ``init``; see ``denoise_bench.profiles``) can replace the learning rate,
its schedule and the initialisation by one rule for every method: the training loop
(``denoise_bench.training``) makes that choice, a method never looks at the rule.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable
from typing import Any, ClassVar, cast

import torch

from denoise_bench.errors import BenchError
from denoise_bench.method import Method, MethodSetup, NoiseInfo, TrainContext
from torch import nn

from denoise_bench.nets.init import initialise_
from denoise_bench.nets.unet import DOWNSAMPLE_FACTOR, UNet
from denoise_bench.schedules import constant
from denoise_bench.supervision import TrainingView
from denoise_bench.training import train


class NetworkMethod(Method):
    input_multiple = DOWNSAMPLE_FACTOR
    pads_to_square = True  # the convention its results were scored under
    learning_rate: ClassVar[float] = 3e-4
    adam_betas: ClassVar[tuple[float, float]] = (0.9, 0.999)
    weight_decay: ClassVar[float] = 0.0
    amsgrad: ClassVar[bool] = False  # Adam's AMSGrad variant (CVF-SID's official code uses it)
    unet_options: ClassVar[dict[str, Any]] = {}  # e.g. {"upsample": "nearest", "slope": 0.1}
    # Why this method's training step cannot be recorded as a CUDA graph (``--capture``), or None when it can
    # (denoise_bench.captured_step): such a method trains eagerly and the run's log says why.
    capture_unsupported: ClassVar[str | None] = None
    batch_denoise = True  # the network maps each image of a batch on its own

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__(setup)
        torch.manual_seed(setup.seed)  # network initialisation is part of the seeded run
        init = "pytorch" if setup.budget.init == "pytorch" else self.network_init()
        self.net = initialise_(self.build_network(), init).to(setup.device)
        # The evaluator pads test images to a multiple of what the network needs, and no more.
        self.input_multiple = getattr(self.net, "downsample_factor", DOWNSAMPLE_FACTOR)

    def build_network(self) -> nn.Module:
        """The network, as PyTorch initialises it (:meth:`network_init` is applied afterwards): the
        shared U-Net with ``unet_options`` at the budget's width."""
        options = {k: v for k, v in self.unet_options.items() if k != "ne2ne_init"}
        return UNet(self.setup.channels, self.setup.channels, width=self.setup.budget.width, ne2ne_init=False, **options)

    def network_init(self) -> str:
        """The method's own initialisation (a name of ``denoise_bench.nets.NETWORK_INITS``), used unless the
        budget's rule is ``init="pytorch"``: the U-Net's official ``kaiming0.1``, or PyTorch's default
        where ``unet_options`` turns it off (Blind2Unblind's code keeps the default)."""
        return "kaiming0.1" if self.unet_options.get("ne2ne_init", True) else "pytorch"

    def optimizer_betas(self) -> tuple[float, float]:
        """Adam's (beta1, beta2)."""
        return self.adam_betas

    @abstractmethod
    def training_loss(self, batch: Any, progress: float) -> torch.Tensor:
        """The scalar loss of one batch (of the type the method's supervision gets, see
        ``denoise_bench.supervision``); ``progress`` in [0, 1) drives any weight schedule."""

    def graph_key(self, progress: float) -> Hashable:
        """Every Python value that :meth:`training_loss` reads from ``progress`` (or other host state) at this
        step: a recorded step is recorded again whenever it changes. None: the loss never reads it."""
        return None

    def lr_factor(self, progress: float) -> float:
        """Learning-rate multiplier at ``progress`` in [0, 1): the shape of the published schedule."""
        return constant(progress)

    def gradient_clip_norm(self) -> float | None:
        """The norm the training loop clips each step's gradient to before the update; None: no clipping
        (no published recipe of the built-in methods clips)."""
        return None

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """Adam over the network at ``lr`` (which the training loop chooses by the budget's rule)."""
        return torch.optim.Adam(self.net.parameters(), lr=lr, betas=self.optimizer_betas(),
                                weight_decay=self.weight_decay, amsgrad=self.amsgrad)

    def own_schedule(self, optimizer: torch.optim.Optimizer, total: int, view: TrainingView) -> Any:
        """The method's own learning-rate scheduler (stepped once per iteration, its state saved with the
        training state), which the training loop uses under the official rule: :meth:`lr_factor`'s
        shape. ``view`` is there for a schedule that needs data of its own (Noise2Void's validation)."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.lr_factor(step / total))

    def prepare(self, view: TrainingView) -> None:
        """Called by the training loop before its first step (and before a resumed state is loaded):
        for statistics or fixed sets drawn from the view once (Noise2Void's normalisation)."""

    def fit(self, view: TrainingView, context: TrainContext) -> None:
        self.net.train()
        train(self, view, self.setup.budget, context)

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad():
            return self.net(noisy)

    def state_dict(self) -> dict[str, Any]:
        # Every network of the suite records its constructor options as ``config`` (a dict).
        config = cast(dict[str, Any], self.net.config)
        return {"method": self.name, "net_config": dict(config), "net": self.net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("net_config") != self.net.config:
            raise BenchError(f"checkpoint network {state.get('net_config')} does not match this {self.name} network {self.net.config}")
        self.net.load_state_dict(state["net"])
