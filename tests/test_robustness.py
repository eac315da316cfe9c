"""A misbehaving plugin, an interrupt, a full disk or an odd path: each ends in one clear line, naming its cause."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from denoise_bench.isolation import call_isolated


def test_ctrl_c_reaches_a_caller_waiting_for_a_denoise_that_blocks() -> None:
    # The kernel may hand SIGINT to any thread not blocking it; here it lands on the isolated one, whose
    # call then blocks. The caller must still raise KeyboardInterrupt at once, not when the call returns.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    release = threading.Event()

    def blocks() -> None:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        release.wait(10)

    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            call_isolated(blocks)
        waited = time.monotonic() - start
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)
    assert waited < 3, f"Ctrl-C took {waited:.1f} s to reach the caller"
