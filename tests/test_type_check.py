"""The type check CI runs (``scripts/dev mypy``, configured in pyproject.toml) catches a hook override that
no longer overrides anything.

The bug it guards against: CVF-SID defined ``make_optimizer`` after NetworkMethod had renamed that hook to
``optimizer(lr)``, so its override silently never ran. A plugin in ``methods/`` or ``datasets/`` marks each
override with ``@override`` and the configuration enables mypy's ``explicit-override`` there, so both a
marked method whose base method is gone and an unmarked override fail the check.

mypy runs once, with the project's configuration, on three small plugin modules written into a ``methods``
package under ``tmp_path`` (the module names the configuration's ``methods.*`` section applies to), with its
cache in ``tmp_path``; the correct module is then checked alone again (from the warm cache) for exit 0.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (it comes with the test extra: pip install -e .[test])")

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
from __future__ import annotations

import torch
from typing_extensions import override

from denoise_bench.network_method import NetworkMethod
from denoise_bench.supervision import NoisyBatch


class Plugin(NetworkMethod):
    name = "plugin"

    @override
    def training_loss(self, batch: NoisyBatch, progress: float) -> torch.Tensor:
        return self.net(batch.noisy).mean()

{hook}
'''
# CVF-SID's bug: the hook under the name it had before NetworkMethod renamed it.
RENAMED = '''
    @override
    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), amsgrad=True)
'''
# The right hook, not marked as an override.
UNMARKED = '''
    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=lr, amsgrad=True)
'''
CORRECT = '''
    @override
    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=lr, amsgrad=True)
'''


def _mypy(*files: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    # From the repository, as CI runs it: denoise_bench is read from the source tree.
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
                           "--cache-dir", str(cache), "--no-error-summary", "--hide-error-context",
                           *map(str, files)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def _errors(output: str, path: Path) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{path}:") and ": error:" in line]


def test_mypy_refuses_a_stale_or_unmarked_hook_override_and_passes_the_right_one(tmp_path: Path) -> None:
    package = tmp_path / "methods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    modules = {}
    for name, hook in (("renamed", RENAMED), ("unmarked", UNMARKED), ("correct", CORRECT)):
        modules[name] = package / f"{name}.py"
        modules[name].write_text(PLUGIN.format(hook=hook))
    cache = tmp_path / "mypy-cache"

    result = _mypy(*modules.values(), cache=cache)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output

    renamed = _errors(output, modules["renamed"])
    assert len(renamed) == 1, output
    assert 'Method "make_optimizer" is marked as an override, but no base method was found' in renamed[0]

    unmarked = _errors(output, modules["unmarked"])
    assert len(unmarked) == 1, output
    assert 'Method "optimizer" is not using @override but is overriding a method' in unmarked[0]
    assert "[explicit-override]" in unmarked[0]

    assert _errors(output, modules["correct"]) == [], output
    alone = _mypy(modules["correct"], cache=cache)
    assert alone.returncode == 0, alone.stdout + alone.stderr
