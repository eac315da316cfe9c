"""How a network trains, as opposed to what it learns: precision, memory layout, compilation.

At the paper's size (batch 1, 128x128 crops) a GPU spends most of a training step launching
kernels, so the fast settings are compilation with CUDA graphs (``compile="reduce-overhead"``),
which replays the whole step as one graph, the channels-last layout that tensor-core convolutions
want, and bf16 autocast. Each is a switch, recorded in the run's config, and the default is plain
fp32 eager everywhere: on CPU that is also the fastest (torch.compile was measured slower than eager
on a 2-core CPU and costs tens of seconds per graph), and on a GPU each switch should first be
measured with ``bench perf`` (speed) and a short ``bench run`` (that it does not change the scores).

Fallbacks, so a config written for a GPU still runs on a CPU: CUDA graphs need CUDA, so
``reduce-overhead`` compiles in the default mode there; bf16 autocast runs on CPU too (slower,
same numerics as on GPU).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from denoise_bench.errors import BenchError

PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class Engine:
    precision: str = "fp32"  # fp32, or bf16 autocast of the forward passes and losses (weights stay fp32)
    channels_last: bool = False  # NHWC weights and activations
    compile: str = "off"  # torch.compile mode for the network's forward during training

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.compile not in COMPILE_MODES:
            raise BenchError(f"unknown compile mode {self.compile!r}; valid: {', '.join(COMPILE_MODES)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def compile_mode(self, device: torch.device) -> str:
        """The mode actually used on ``device``: CUDA graphs fall back to plain compilation off CUDA."""
        if self.compile == "reduce-overhead" and device.type != "cuda":
            return "default"
        return self.compile

    def uses_cuda_graphs(self, device: torch.device) -> bool:
        return self.compile_mode(device) == "reduce-overhead"

    def autocast(self, device: torch.device) -> Any:
        """Context for one training step's forward passes and loss."""
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    @contextmanager
    def training(self, net: torch.nn.Module, device: torch.device) -> Iterator[None]:
        """Set ``net`` up for training with these switches, and take the compilation off afterwards.

        Only the forward is compiled, as an attribute of this module instance: parameters, state
        dict keys and checkpoints are those of the plain network, and evaluation on whole images of
        every size runs eagerly instead of compiling a graph per image shape.
        """
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        mode = self.compile_mode(device)
        if mode != "off":
            net.forward = torch.compile(net.forward, mode=mode)  # type: ignore[method-assign]
        try:
            yield
        finally:
            if mode != "off":
                del net.forward  # back to the class's eager forward

    def step_begin(self, device: torch.device) -> Callable[[], None]:
        """Called before every training step: with CUDA graphs, a new step may reuse the graph's memory."""
        if self.uses_cuda_graphs(device):
            return torch.compiler.cudagraph_mark_step_begin
        return lambda: None
