"""Shared fixtures. Entry-point autoload is off in tests so installed packages cannot leak in."""

from __future__ import annotations

import os

os.environ["DENOISE_BENCH_DISABLE_PLUGIN_AUTOLOAD"] = "1"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from denoise_bench import plugins  # noqa: E402
from denoise_bench.data import MANIFEST, resolve_data_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    """The standard sets as `bench` finds them ($DENOISE_BENCH_DATA, else ../shared/data beside this checkout)."""
    found = resolve_data_dir(None, beside=(REPO,))
    return found if found is not None and (found / MANIFEST).is_file() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only standard sets (../shared/data or $DENOISE_BENCH_DATA). Required under CI."""
    found = _shared_data()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the standard image sets are missing: set DENOISE_BENCH_DATA or provide ../shared/data")
        pytest.skip("standard image sets not available (set DENOISE_BENCH_DATA)")
    return found


@pytest.fixture(autouse=True)
def _fresh_plugin_state():
    """Every test starts from the built-in plugins only and a seeded RNG."""
    torch.manual_seed(0)
    np.random.seed(0)
    yield
    # Rebuilt from scratch, so plugins a test registered and the failures they caused are both gone.
    plugins.reset_plugin_manager()
