"""A method's ``denoise`` called on a call stack of its own, so that no frame it can walk up to holds
what its caller holds: the evaluator's test case, with the clean copy of the image being denoised.

One daemon thread per process runs the calls, one at a time, while the caller waits for each (waking
every :data:`WAKE_SECONDS`, so that a Ctrl-C reaches it while a call blocks: see :func:`call_isolated`). The
thread takes the caller's grad mode, its number of CPU threads and, for a CUDA device, that device (or
the caller's current one) as its current one, so a call computes exactly what it computes on the
caller's stack. This closes the accidental path (a plugin looking through ``inspect.stack()``); it is
no sandbox: the process's memory (``gc``, other threads' frames) and the image files stay open to
code that searches them, which is why tables and leaderboards flag implausible scores
(``denoise_bench.plausibility``).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch


class _Call:
    """One call: what the thread runs, and what it gives back. Its arguments are dropped once it ran."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], device: torch.device | None) -> None:
        self.fn: Callable[..., Any] | None = fn
        self.args: tuple[Any, ...] = args
        self.grad = torch.is_grad_enabled()
        self.threads = torch.get_num_threads()  # per OS thread under OpenMP: set later in the caller, not here
        # The CUDA device a call runs on: the one named, else the caller's current one (current devices are per thread).
        self.cuda = None if device is None or device.type != "cuda" else (
            device.index if device.index is not None else torch.cuda.current_device())
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        cuda = torch.cuda.device(self.cuda) if self.cuda is not None else nullcontext()
        try:
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
            with cuda, torch.set_grad_enabled(self.grad):
                self.result = self.fn(*self.args)  # type: ignore[misc]
        except BaseException as exc:  # handed to the caller, which raises it
            self.error = exc
        finally:
            self.fn, self.args = None, ()
            self.done.set()


def _serve(calls: queue.SimpleQueue) -> None:
    while True:
        call = calls.get()
        call.run()
        del call  # nothing of a finished call stays in this frame


class _Worker:
    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child has no thread: it starts its own
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=_serve, args=(self.calls,), name="denoise-bench-isolated", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()


# How often a caller waiting for a call wakes. Python runs a signal's handler (Ctrl-C's KeyboardInterrupt) in the
# main thread only, between bytecodes; when the kernel hands SIGINT to the isolated thread, a main thread asleep
# on a lock without a timeout would not run it until the call returned, however long a method's denoise blocks.
WAKE_SECONDS = 0.1

_lock = threading.Lock()
_worker: _Worker | None = None


def call_isolated(fn: Callable[..., Any], *args: Any, device: torch.device | None = None) -> Any:
    """``fn(*args)`` run on the isolated thread; its result, or its exception raised here."""
    global _worker
    with _lock:
        if _worker is None or not _worker.alive():
            _worker = _Worker()
        worker = _worker
    if threading.current_thread() is worker.thread:  # called from inside an isolated call: already apart
        return fn(*args)
    call = _Call(fn, args, device)
    worker.calls.put(call)
    while not call.done.wait(WAKE_SECONDS):  # each wake runs any pending signal handler (see WAKE_SECONDS)
        pass
    if call.error is not None:
        raise call.error
    return call.result
