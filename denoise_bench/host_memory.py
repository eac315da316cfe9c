"""Keep the memory of freed CPU tensors inside the process, so that a training step does not fault its
activations in from the kernel afresh every time.

glibc's malloc serves every request above its mmap threshold (adjusted at run time, at most 32 MiB on
64-bit) with new pages from ``mmap`` and hands them back with ``munmap`` when the tensor is freed. The
large activations of a training step (a B2U step's 16 masked copies, a DIP feature map of 128 x 256 x 256
floats) exceed it, so each step pays page faults and zeroing for memory it had a moment before. Told to
serve everything from its heap and never to trim it, malloc reuses those blocks instead. Measured on a
2-core Xeon, one thread, fp32, whole processes in alternation (results/history/perf-cpu-avx512bf16/README.md): a
B2U training process 1.46x faster (system time 23 s -> 3.3 s) at 1.34x its peak memory, a DIP fit step
1.27x, the U-Net 1.10x at the same peak memory.

The cost is that memory freed by the process is not returned to the system until it exits (and blocks
of different sizes can fragment the heap a little, the larger peak above), which a benchmark process
(one grid, then exit) can afford. ``DENOISE_BENCH_KEEP_FREED_MEMORY=0`` leaves
malloc as it is; other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

OPT_OUT_VARIABLE = "DENOISE_BENCH_KEEP_FREED_MEMORY"
# mallopt parameters from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest trim threshold it can express (2 GiB of free top)

_state: str | None = None


def keep_freed_memory() -> str:
    """Set glibc's malloc to keep freed memory (once per process); return what is in force, for the record.

    ``"kept"`` when set here, ``"system"`` when left alone (opted out, not glibc, or mallopt refused).
    """
    global _state
    if _state is None:
        _state = "kept" if _wanted() and _set_glibc_options() else "system"
    return _state


def host_memory_state() -> str:
    """What is in force without changing anything: "kept" once :func:`keep_freed_memory` has set it."""
    return _state or "system"


def _wanted() -> bool:
    return os.environ.get(OPT_OUT_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


def _set_glibc_options() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success. Setting both also switches off glibc's dynamic threshold adjustment.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
