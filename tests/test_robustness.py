"""A misbehaving plugin, an interrupt, a full disk or an odd path: each ends in one clear line, naming its cause."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from denoise_bench import hookimpl, plugins
from denoise_bench.data import CleanImage, Dataset
from denoise_bench.isolation import call_isolated
from denoise_bench.method import NoiseInfo
from helpers import Median3, MethodPlugin, bench

# A per-image run of seconds: the smoke profile on one small test image.
QUICK = ["--profile", "smoke", "--test-images", "1", "--test-crop", "64", "--noise", "gaussian:sigma=25", "--no-progress"]


def _images(count: int = 2, side: int = 48) -> list[CleanImage]:
    rng = np.random.default_rng(0)
    return [CleanImage(f"im{i}", rng.integers(0, 256, (side, side, 1), dtype=np.uint8)) for i in range(count)]


class TinySet(Dataset):
    """Two gray 48x48 images in each split; ``loader`` decides what ``load`` does."""

    name = "tiny"
    description = "two small gray images (test plugin)"
    channels = 1
    loader: Callable[[], object] = staticmethod(_images)

    def load(self, split: str) -> list[CleanImage]:
        return self.loader()  # type: ignore[return-value]


class DatasetPlugin:
    def __init__(self, cls: type[Dataset]) -> None:
        self.cls = cls

    @hookimpl
    def register_datasets(self, register: Callable[[type[Dataset]], None]) -> None:
        register(self.cls)


def _tiny(loader: Callable[[], object]) -> None:
    """The tiny set with ``loader``, and the median filter to run on it."""
    plugins.register_plugin(DatasetPlugin(type("Tiny", (TinySet,), {"loader": staticmethod(loader)})), name="tiny-set")
    plugins.register_plugin(MethodPlugin(Median3), name="median3-plugin")


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


# --- a plugin's sys.exit is its failure, not the end of `bench` with status 0 -------------------------------

class Exits(Median3):
    name = "exits"

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        raise SystemExit(0)


def test_a_method_calling_sys_exit_fails_its_job_and_the_grid_goes_on(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Exits, Median3), name="exits-plugin")
    result = bench("run", "--methods", "exits,median3", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    jobs = pd.read_csv(tmp_path / "run" / "jobs.csv").set_index("method")
    assert jobs.status.to_dict() == {"exits": "failed", "median3": "done"}
    assert jobs.error["exits"] == "SystemExit: 0"


class ExitsOnRegistering:
    @hookimpl
    def register_methods(self, register: Callable[[type], None]) -> None:
        raise SystemExit(0)


def test_a_hook_calling_sys_exit_skips_its_plugin() -> None:
    plugins.register_plugin(ExitsOnRegistering(), name="exits-on-registering")
    result = bench("list")
    assert result.exit_code == 0, result.output
    assert "warning: plugin 'exits-on-registering' skipped: register_methods raised SystemExit: 0" in result.output


def test_sys_exit_from_plugin_code_anywhere_else_is_one_line_and_not_status_0(tmp_path: Path) -> None:
    def load() -> list[CleanImage]:
        raise SystemExit(0)

    _tiny(load)
    result = bench("run", "--methods", "median3", "--dataset", "tiny", *QUICK, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    assert f"error: SystemExit(0) raised at {__file__}:" in result.output
    assert "Traceback" not in result.output
