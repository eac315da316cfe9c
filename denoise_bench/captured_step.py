"""One training step, run plainly or recorded once as a CUDA graph and replayed.

On a GPU at the paper's size (batch 1, 128x128 crops) a step is bound by launching a few hundred
operators, not by arithmetic: replaying the whole step (crops, noise, masks, forward, backward, Adam)
as one CUDA graph removes the launches. What a graph needs, and what this module provides:

* **static tensors**: the graph reads and writes the same memory at every replay. The crops are cut on
  the device by :class:`~denoise_bench.crops.DeviceCropSampler` and the noise is drawn there, inside the
  graph, from generators registered with it; the loss lands in one tensor; the gradients are allocated
  by the recorded backward; Adam runs in its ``capturable`` form with its learning rate held in a device
  tensor, which the schedule fills between replays.
* **constants re-recorded when they change**: a loss that reads Python values from the training
  progress (Blind2Unblind's lambda, Neighbor2Neighbor's gamma, IDDP's warm start) names them in
  :meth:`NetworkMethod.graph_key`; a new key records a new graph.
* **a reason where it cannot**: a method whose step reads random numbers back to the host or has
  data-dependent shapes sets ``capture_unsupported`` and trains eagerly, which the run's log says.

Off CUDA the captured step runs the same static-buffer step eagerly (the learning rate in a tensor the
schedule fills; PyTorch's capturable Adam exists only on accelerators), which is what the CPU tests
compare with the plain step. torch.compile's ``reduce-overhead`` mode
captures only the forward of a compiled network and recompiles per shape; recording the step by hand
(``torch.cuda.graphs``) captures the backward and the optimiser too, and costs no compilation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import torch

from denoise_bench.engine import Engine
from denoise_bench.supervision import TrainingView

if TYPE_CHECKING:
    from denoise_bench.network_method import NetworkMethod

# Steps run eagerly (on a side stream) before a graph is recorded: Adam creates its state and cuDNN
# picks its algorithms in them; each is a real training step.
WARMUP_STEPS = 3

TrainingStep = Callable[[float], torch.Tensor]  # progress in [0, 1) -> this step's loss (a device scalar)


class EagerStep:
    """The plain step: draw a batch, forward and loss under the engine's autocast, backward, clip, Adam."""

    def __init__(self, method: NetworkMethod, view: TrainingView, optimizer: torch.optim.Optimizer,
                 batch_size: int, crop: int) -> None:
        self.method, self.view, self.optimizer = method, view, optimizer
        self.batch_size, self.crop = batch_size, crop
        self.engine: Engine = method.setup.engine
        self.device: torch.device = method.setup.device
        self.clip = method.gradient_clip_norm()
        self.step_begin = self.engine.step_begin(self.device)

    def run(self, progress: float) -> torch.Tensor:
        batch = self.view.sample(self.batch_size, self.crop)
        with self.engine.autocast(self.device):
            loss = self.method.training_loss(batch, progress)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.method.net.parameters(), self.clip)
        self.optimizer.step()
        return loss

    def __call__(self, progress: float) -> torch.Tensor:
        self.step_begin()
        return self.run(progress)


class CapturedStep(EagerStep):
    """The step on static tensors, recorded as a CUDA graph on CUDA (see the module docstring)."""

    def __init__(self, method: NetworkMethod, view: TrainingView, optimizer: torch.optim.Optimizer,
                 batch_size: int, crop: int, log: Callable[[str], None]) -> None:
        super().__init__(method, view, optimizer, batch_size, crop)
        self.log = log
        self.rates = make_capturable(optimizer, self.device)
        self.loss = torch.zeros((), device=self.device)
        self.record = self.device.type == "cuda"
        self.graph: Any = None
        self.key: Hashable = object()  # equal to no key: the first step past the warm-up records
        self.steps = 0

    def __call__(self, progress: float) -> torch.Tensor:
        self.pin_rates()
        self.steps += 1
        if not self.record or self.steps <= WARMUP_STEPS:
            self._eager(progress)
            return self.loss
        key = self.method.graph_key(progress)
        if key != self.key:
            self._record(progress, key)
            if not self.record:  # recording failed: this step, and every later one, runs eagerly
                self._eager(progress)
                return self.loss
        self.graph.replay()
        return self.loss

    def pin_rates(self) -> None:
        """Keep every group's rate in its device tensor (the one the graph reads): a schedule that wrote a
        Python number into a group (instead of filling the tensor) has its value copied over."""
        for group, rate in zip(self.optimizer.param_groups, self.rates):
            if group["lr"] is not rate:
                rate.fill_(float(group["lr"]))
                group["lr"] = rate

    def _eager(self, progress: float) -> None:
        if self.device.type != "cuda":
            self.loss.copy_(self.run(progress).detach())
            return
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.loss.copy_(self.run(progress).detach())
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _record(self, progress: float, key: Hashable) -> None:
        self.graph = None  # the previous graph's memory goes back to the pool first
        graph = torch.cuda.CUDAGraph()
        for generator in self.view.generators:
            if generator.device.type == "cuda":
                graph.register_generator_state(generator)
        self.optimizer.zero_grad(set_to_none=True)  # the recorded backward allocates the gradients
        try:
            with torch.cuda.graph(graph):
                self.loss.copy_(self.run(progress).detach())
        except RuntimeError as error:  # e.g. a host sync or a data-dependent shape inside the step
            self.record = False
            self.log(f"{self.method.name}: the training step could not be recorded as a CUDA graph "
                     f"({str(error).splitlines()[0]}); training on eagerly")
            return
        self.graph, self.key = graph, key


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> list[torch.Tensor]:
    """Switch ``optimizer`` (Adam or AdamW) to its capturable form, each group's rate a device tensor;
    returns those tensors. Its state steps move to the device as the optimiser expects. PyTorch has no
    capturable form on a CPU: there only the rate becomes a tensor."""
    capturable = device.type != "cpu"
    rates = []
    for group in optimizer.param_groups:
        group["capturable"] = capturable
        rate = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
        group["lr"] = rate
        rates.append(rate)
    for state in optimizer.state.values():
        if capturable and "step" in state and torch.is_tensor(state["step"]):
            state["step"] = state["step"].to(device=device, dtype=torch.float32)
    return rates


def eager_form(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """An optimiser state dict as the plain step saves it (Python rates, not capturable), so a training
    state saved by a captured run resumes under either step, and its checkpoints look alike."""
    groups = [{**group, "lr": float(group["lr"]), "capturable": False} if "capturable" in group else dict(group)
              for group in optimizer_state["param_groups"]]
    return {**optimizer_state, "param_groups": groups}


def make_step(method: NetworkMethod, view: TrainingView, optimizer: torch.optim.Optimizer, batch_size: int,
              crop: int, log: Callable[[str], None]) -> TrainingStep:
    """The step the engine asks for: captured where the engine says so and the method and data allow it
    (saying why not in the log otherwise), else plain."""
    if not method.setup.engine.capture:
        return EagerStep(method, view, optimizer, batch_size, crop)
    blocker = method.capture_unsupported or (None if view.device_resident else
                                             "its training images are kept in host memory, cropped there")
    if blocker:
        log(f"{method.name}: training step not captured: {blocker}; training eagerly")
        return EagerStep(method, view, optimizer, batch_size, crop)
    return CapturedStep(method, view, optimizer, batch_size, crop, log)
