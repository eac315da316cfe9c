"""How a network trains, as opposed to what it learns: precision, memory layout, compilation.

At the paper's size (batch 1, 128x128 crops) a GPU spends most of a training step launching
kernels, so the fast settings are compilation with CUDA graphs (``compile="reduce-overhead"``),
which replays the whole step as one graph, the channels-last layout that tensor-core convolutions
want, and bf16 autocast. Each is a switch, recorded in the run's config.

The default precision is ``auto`` (:func:`resolve_engine`): on a CPU with Intel AMX tiles (``amx_bf16``)
it trains in bf16 autocast with channels-last weights, which was measured 2.6x to 3.4x faster per
U-Net step than fp32 at the same PSNR; on other CPUs, and on CUDA until ``scripts/gpu-report`` has
measured the choice there, it trains in fp32. AVX-512 BF16 alone (``avx512_bf16`` without AMX) does
not pay: on such a Xeon every method's step was 0.64x to 1.03x the speed of fp32
(results/history/perf-cpu-avx512bf16). torch.compile stays off by
default: on a 2-core CPU it was measured slower than eager and costs tens of seconds per graph.
Evaluation always runs in fp32, whatever trained the weights.

Fallbacks, so a config written for a GPU still runs on a CPU: CUDA graphs need CUDA, so
``reduce-overhead`` compiles in the default mode there; bf16 autocast runs on CPU too (slower,
same numerics as on GPU).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from denoise_bench.errors import BenchError

PRECISIONS = ("fp32", "bf16")
REQUESTABLE_PRECISIONS = ("auto", *PRECISIONS)
# /proc/cpuinfo flags of CPU units that multiply bf16 matrices natively (AMX tiles, AVX-512 BF16),
# recorded with every run; auto trains in bf16 only with the first (see the module's docstring).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
AUTO_BF16_FLAG = "amx_bf16"
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class Engine:
    precision: str = "fp32"  # fp32, or bf16 autocast of the forward passes and losses (weights stay fp32)
    channels_last: bool = False  # NHWC weights and activations
    compile: str = "off"  # torch.compile mode for the network's forward during training
    # The whole training step on static tensors, recorded once as a CUDA graph and replayed (off CUDA the
    # same static-buffer step runs eagerly): denoise_bench.captured_step.
    capture: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.compile not in COMPILE_MODES:
            raise BenchError(f"unknown compile mode {self.compile!r}; valid: {', '.join(COMPILE_MODES)}")
        if self.capture and self.compile != "off":
            raise BenchError(f"--capture records the whole training step as a CUDA graph; it does not combine with "
                             f"--compile {self.compile} (whose reduce-overhead mode captures the compiled forward)")

    def as_dict(self) -> dict[str, Any]:
        """The engine as config.json records it. ``capture`` is written only when on: a plain step's engine is
        recorded as it was before the captured step existed, so earlier runs stay the same experiment."""
        recorded = asdict(self)
        if not self.capture:
            del recorded["capture"]
        return recorded

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
        """Set ``net`` up for training with these switches, and undo them afterwards.

        Only the forward is compiled, as an attribute of this module instance: parameters, state
        dict keys and checkpoints are those of the plain network, and evaluation on whole images of
        every size runs eagerly instead of compiling a graph per image shape. The weights go back to
        the default layout, so a network evaluated straight after training computes exactly what the
        same weights loaded from a checkpoint compute.
        """
        if self.channels_last:
            # Module.to takes memory_format at run time; torch's overloads leave it out.
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        mode = self.compile_mode(device)
        if mode != "off":
            net.forward = torch.compile(net.forward, mode=mode)  # type: ignore[method-assign]
        try:
            yield
        finally:
            if mode != "off":
                del net.forward  # back to the class's eager forward
            if self.channels_last:
                net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]

    def step_begin(self, device: torch.device) -> Callable[[], None]:
        """Called before every training step: with CUDA graphs, a new step may reuse the graph's memory."""
        if self.uses_cuda_graphs(device):
            return torch.compiler.cudagraph_mark_step_begin
        return lambda: None


CPUINFO = Path("/proc/cpuinfo")


def cpuinfo_value(keys: tuple[str, ...], cpuinfo: Path = CPUINFO) -> str | None:
    """The first non-empty value of one of ``keys`` in /proc/cpuinfo (None where there is none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys and value.strip():
            return value.strip()
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    return frozenset((cpuinfo_value(("flags", "Features"), cpuinfo) or "").split())


def bf16_matrix_flags(flags: frozenset[str] | None = None) -> list[str]:
    """Which of the bf16 matrix-unit flags this CPU has (``auto`` picks bf16 on ``AUTO_BF16_FLAG``)."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def resolve_engine(precision: str = "auto", channels_last: bool | None = None, compile: str = "off",
                   capture: bool = False, *, device: torch.device, flags: frozenset[str] | None = None) -> Engine:
    """The concrete engine for a request: ``precision="auto"`` and ``channels_last=None`` decided here.

    auto is bf16 + channels-last on a CPU with AMX and fp32 (default layout) elsewhere, CUDA included.
    An explicit ``channels_last`` always wins.
    """
    if precision not in REQUESTABLE_PRECISIONS:
        raise BenchError(f"unknown precision {precision!r}; valid: {', '.join(REQUESTABLE_PRECISIONS)}")
    if precision == "auto":
        precision = "bf16" if device.type == "cpu" and AUTO_BF16_FLAG in bf16_matrix_flags(flags) else "fp32"
        if channels_last is None:
            channels_last = precision == "bf16"
    return Engine(precision=precision, channels_last=bool(channels_last), compile=compile, capture=bool(capture))

